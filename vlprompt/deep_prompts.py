"""Deep (per-layer) prompts shared by MaPLe, IVLP and VPT, and the originals' random-draw order.

The first context P of MaPLe/IVLP (`text_context`), per-layer prompts keyed by the block they enter
(`layer_prompts`, `per_layer`), VPT-deep vision prompts (`VisionPrompts`). The originals' checkpoint layout is
vlprompt.original_checkpoints. Trainer files import these from here, never from each other.

Why a seed gives the original's prompts (`clip_constructor_draws`): the original IVLP and VPT create
their prompts *inside* CLIP's modules (image_encoder.VPT, resblocks.<i>.VPT_shallow) while
`clip.build_model` constructs the model, so each prompt is drawn from the global CPU generator right
after the weights of the module that holds it, and CLIP's own random initialisation (overwritten by the
checkpoint, but drawn all the same) comes before and after them. vlprompt builds an unmodified CLIP
first and its prompts afterwards. To get the same numbers from the same seed, the trainer keeps the
generator state from before CLIP was built; the prompt learner rewinds to it and replays the original
constructor's draws in order (throw-away modules of the same shapes, so the generator advances exactly
as there), keeping the prompt draws. Afterwards the generator is where the original's is after building
its model, so the data order and augmentation that follow are the original's too.
"""
import torch
import torch.nn as nn

from .errors import ConfigValueError
from .clip_loader import bpe_length
from .prompts import clean_classname, context_from_phrase, random_context

MAX_WORD_INIT = 4  # the originals initialise from CTX_INIT only when n_ctx <= 4, else randomly


def check_prompt_depth(depth, num_layers, key):
    if not 1 <= depth <= num_layers:
        raise ConfigValueError(f"{key} must be between 1 and the number of layers ({num_layers}), got {depth}")


def text_context(text_encoder, n_ctx, ctx_init):
    """MaPLe/IVLP's first context: (vectors [n_ctx, width], prompt prefix string).

    With CTX_INIT and n_ctx <= 4: the first n_ctx token embeddings of the phrase, and the whole phrase is
    the prefix. Otherwise N(0, 0.02^2) vectors and a prefix of n_ctx "X" tokens.
    """
    if ctx_init and n_ctx <= MAX_WORD_INIT:
        phrase = clean_classname(ctx_init)
        tokens = bpe_length(phrase)
        if tokens < n_ctx:
            raise ConfigValueError(f"CTX_INIT {ctx_init!r} has {tokens} tokens, fewer than the {n_ctx} context vectors "
                                   "(N_CTX) it should initialise: use a longer phrase or a smaller N_CTX")
        if tokens > n_ctx:
            print(f"Note: CTX_INIT {ctx_init!r} has {tokens} tokens and N_CTX is {n_ctx}: the first {n_ctx} are learnable "
                  "(initialised from the phrase) and the rest stays fixed text, as in the original MaPLe/IVLP")
        vectors, _ = context_from_phrase(text_encoder, phrase, n_ctx)
        return vectors, phrase
    if ctx_init:
        print(f"Note: CTX_INIT {ctx_init!r} is not used with N_CTX {n_ctx} > {MAX_WORD_INIT}: the context starts "
              "random, as in the original MaPLe/IVLP")
    return random_context(n_ctx, text_encoder.width, dtype=text_encoder.dtype), " ".join(["X"] * n_ctx)


def layer_prompts(n_ctx, width, depth, drawn=None):
    """New prompts for blocks 1..depth-1, keyed by block index, N(0, 0.02^2), float32 (`drawn[i]` if
    given: values drawn in the original's order by `clip_constructor_draws`)."""
    return nn.ParameterDict({str(i): nn.Parameter(drawn[i] if drawn is not None else random_context(n_ctx, width))
                             for i in range(1, depth)})


def per_layer(prompts, depth):
    """[None, prompts["1"], .., prompts[str(depth - 1)]]: the deep_prompts list of the prompted towers."""
    return [None] + [prompts[str(i)] for i in range(1, depth)]


# --------------------------------------------------------------------- the original constructor's draws
def _normal(n_ctx, width):
    """One prompt as the originals draw it: torch.empty(n, width) then nn.init.normal_(std=0.02)."""
    return random_context(n_ctx, width)


def _block_draws(block):
    """The draws of constructing one of CLIP's ResidualAttentionBlocks: attention, then c_fc, c_proj."""
    width = block.ln_1.weight.shape[0]
    nn.MultiheadAttention(width, block.attn.num_heads)
    nn.Linear(width, width * 4)
    nn.Linear(width * 4, width)


def clip_constructor_draws(clip_model, rng_state, vision=None, text=None):
    """Prompts drawn in the original MaPLe-repository CLIP constructor's order (IVLP, VPT).

    rng_state: the CPU generator state before the original would build CLIP (PromptTrainer keeps it as
    `rng_before_clip`). vision / text: (n_ctx, depth) of the prompts created inside that tower, or None.
    Returns {"vision_input": [n, w] or None, "vision": {block: [n, w]}, "text": {block: [n, w]}} and
    leaves the generator where the original's is after its model is built. ViT backbones only.
    """
    torch.set_rng_state(rng_state)
    drawn = {"vision_input": None, "vision": {}, "text": {}}
    visual = clip_model.visual
    with torch.no_grad():
        # VisionTransformer: conv1, [input prompts], class and positional embeddings, blocks (each followed
        # by its prompt from block 1 on), proj.
        width, patch = visual.conv1.weight.shape[0], visual.conv1.kernel_size
        nn.Conv2d(3, width, kernel_size=patch, stride=patch, bias=False)
        if vision is not None:
            drawn["vision_input"] = _normal(vision[0], width)
        torch.randn(width)
        torch.randn(*visual.positional_embedding.shape)
        for i, block in enumerate(visual.transformer.resblocks):
            _block_draws(block)
            if vision is not None and 1 <= i < vision[1]:
                drawn["vision"][i] = _normal(vision[0], width)
        torch.randn(*visual.proj.shape)
        # Text transformer, token embedding, then CLIP.initialize_parameters.
        text_width = clip_model.ln_final.weight.shape[0]
        for i, block in enumerate(clip_model.transformer.resblocks):
            _block_draws(block)
            if text is not None and 1 <= i < text[1]:
                drawn["text"][i] = _normal(text[0], text_width)
        vocab = clip_model.token_embedding.weight.shape[0]
        nn.Embedding(vocab, text_width)
        torch.empty(vocab, text_width).normal_()
        torch.empty(*clip_model.positional_embedding.shape).normal_()
        for block in clip_model.transformer.resblocks:
            for weight in (block.attn.in_proj_weight, block.attn.out_proj.weight, block.mlp.c_fc.weight,
                           block.mlp.c_proj.weight):
                torch.empty(*weight.shape).normal_()
        torch.empty(*clip_model.text_projection.shape).normal_()
    return drawn


class VisionPrompts(nn.Module):
    """Deep visual prompts (VPT-deep): `input_prompts` appended after the patch tokens, and
    `layer_prompts.<i>` replacing them just before vision block i (1 <= i < depth). float32, as the
    original's (cast to the tower's dtype where injected). `drawn`: values from `clip_constructor_draws`."""

    def __init__(self, vision_encoder, n_ctx, depth, drawn=None):
        super().__init__()
        width = vision_encoder.width  # ViT only
        check_prompt_depth(depth, vision_encoder.num_layers, "PROMPT_DEPTH_VISION")
        if n_ctx < 1:
            raise ConfigValueError(f"N_CTX_VISION must be >= 1 for vision prompts, got {n_ctx}")
        self.depth = depth
        if drawn is None:
            self.input_prompts = nn.Parameter(random_context(n_ctx, width))
            self.layer_prompts = layer_prompts(n_ctx, width, depth)
        else:
            self.input_prompts = nn.Parameter(drawn["vision_input"])
            self.layer_prompts = layer_prompts(n_ctx, width, depth, drawn["vision"])

    def forward(self):
        """(input prompts [n, d_vision], per-layer prompts [None, V^1, ..])."""
        return self.input_prompts, per_layer(self.layer_prompts, self.depth)
