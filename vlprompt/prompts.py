"""Building prompt token sequences for a list of class names, and encoding fixed prompts once.

`ClassPrompts` holds, for every class, the token embeddings of "<prefix> <class name>." split around
the n_ctx slots right after SOT that learnable context vectors fill (CoOp's token_prefix / token_suffix),
cut at the longest EOT position: the text tower is causal, so the padding after EOT never matters.
The class token can sit at the end (default), in the middle or at the front of the context (CoOp).
"""
from collections import OrderedDict

import torch
import torch.nn as nn
import torch.nn.functional as F

from .validation import check_choice
from .clip_loader import bpe_length, tokenize

CLASS_TOKEN_POSITIONS = ("end", "middle", "front")


def clean_classname(name):
    return name.replace("_", " ")


def context_from_phrase(text_encoder, phrase, n_ctx=None):
    """Context vectors initialised from the word embeddings of `phrase` ("a photo of a").

    CoOp/CoCoOp (n_ctx=None): one vector per space-separated word, taken from token positions
    1..n_words. MaPLe/IVLP (n_ctx given): the first n_ctx token embeddings, while the whole phrase stays
    in the prompt as its prefix. Returns (vectors [n_ctx, width], n_ctx).
    """
    phrase = clean_classname(phrase)
    if n_ctx is None:
        n_ctx = len(phrase.split(" "))
    tokens = tokenize(phrase)
    with torch.no_grad():
        embedding = text_encoder.embed_tokens(tokens)
    return embedding[0, 1:1 + n_ctx, :].clone(), n_ctx


def random_context(*shape, dtype=torch.float32, std=0.02):
    """i.i.d. N(0, std^2) context vectors (CoOp's random initialisation)."""
    ctx = torch.empty(*shape, dtype=dtype)
    nn.init.normal_(ctx, std=std)
    return ctx


def learnable_context(text_encoder, n_ctx=16, ctx_init="", n_cls=None):
    """CoOp's context initialisation (CoCoOp and CoPL use it too): (vectors, n_ctx, prompt prefix).

    With CTX_INIT: one vector per word from the phrase's embeddings, n_ctx = the word count, the phrase
    is the prompt's prefix (and the context is shared even if n_cls is given, as in CoOp). Otherwise
    N(0, 0.02^2) vectors — [n_cls, n_ctx, width] if n_cls is given (class-specific), else [n_ctx, width] —
    and a prefix of n_ctx "X" placeholders. Vectors are in the text tower's dtype.
    """
    dtype = text_encoder.dtype
    if ctx_init:
        requested = n_ctx
        vectors, n_ctx = context_from_phrase(text_encoder, ctx_init)
        prompt_prefix = clean_classname(ctx_init)
        if requested is not None and requested != n_ctx:
            print(f"Note: CTX_INIT {ctx_init!r} has {n_ctx} words, so the context has {n_ctx} vectors and N_CTX "
                  f"{requested} is not used (the original CoOp/CoCoOp rule: CTX_INIT decides the length)")
    else:
        if n_cls is not None:
            print("Initializing class-specific contexts")
            vectors = random_context(n_cls, n_ctx, text_encoder.width, dtype=dtype)
        else:
            print("Initializing a generic context")
            vectors = random_context(n_ctx, text_encoder.width, dtype=dtype)
        prompt_prefix = " ".join(["X"] * n_ctx)
    print(f'Initial context: "{prompt_prefix}"')
    print(f"Number of context words (tokens): {n_ctx}")
    return vectors.to(dtype), n_ctx, prompt_prefix


class ContextPrompts(nn.Module):
    """Learnable context vectors `ctx` in fixed class prompts: CoOp's prompt learner, shared by CoOp and the
    methods that keep its prompt and change its initialisation or its training (KgCoOp, ProGrad). ctx is
    [n_ctx, width] (shared) or [n_cls, n_ctx, width] (class-specific); `class_prompts` a ClassPrompts."""

    def __init__(self, ctx_vectors, class_prompts):
        super().__init__()
        self.ctx = nn.Parameter(ctx_vectors)
        self.class_prompts = class_prompts

    @property
    def eot_indices(self):
        return self.class_prompts.eot_indices

    def forward(self):
        """Token embeddings of every class prompt, [n_cls, L, width]."""
        return self.class_prompts(self.ctx)


def meta_net(in_dim, out_dim, dtype=torch.float32):
    """CoCoOp's Meta-Net: Linear(in -> in/16) -> ReLU -> Linear(in/16 -> out), with the original's names."""
    return nn.Sequential(OrderedDict([
        ("linear1", nn.Linear(in_dim, in_dim // 16)),
        ("relu", nn.ReLU(inplace=True)),
        ("linear2", nn.Linear(in_dim // 16, out_dim)),
    ])).to(dtype)


class ClassPrompts(nn.Module):
    """Fixed token embeddings of one prompt per class, with n_ctx slots after SOT for context vectors.

    Buffers are not persistent: they are rebuilt from the class names of the dataset at hand, so a
    model trained on base classes evaluates new classes, and checkpoints stay small.
    """

    def __init__(self, text_encoder, classnames, prompt_prefix, n_ctx, class_token_position="end"):
        super().__init__()
        check_choice("CLASS_TOKEN_POSITION", class_token_position, CLASS_TOKEN_POSITIONS)
        names = [clean_classname(name) for name in classnames]
        self.classnames = names
        self.n_cls = len(names)
        self.n_ctx = n_ctx
        self.class_token_position = class_token_position
        self.prompt_texts = [f"{prompt_prefix} {name}." for name in names]
        tokens = tokenize(self.prompt_texts)
        eot = tokens.argmax(dim=-1)
        length = int(eot.max()) + 1
        with torch.no_grad():
            embedding = text_encoder.embed_tokens(tokens[:, :length])
        self.tokenized_prompts = tokens
        self.register_buffer("token_prefix", embedding[:, :1, :].clone(), persistent=False)  # SOT
        self.register_buffer("token_suffix", embedding[:, 1 + n_ctx:, :].clone(), persistent=False)  # name . EOT
        self.register_buffer("eot_indices", eot, persistent=False)
        self.name_lens = [bpe_length(name) for name in names]
        if class_token_position != "end":
            self.register_buffer("gather_index", self._gather_index(length), persistent=False)

    @property
    def seq_len(self):
        return self.token_prefix.shape[1] + self.n_ctx + self.token_suffix.shape[1]

    def _gather_index(self, length):
        """For "middle"/"front": where each output position reads from in cat([prefix, suffix, ctx])."""
        n_suffix = length - 1 - self.n_ctx
        ctx_at = 1 + n_suffix  # first ctx row in the pooled tensor
        half = self.n_ctx // 2 if self.class_token_position == "middle" else 0
        rows = []
        for name_len in self.name_lens:
            name = list(range(1, 1 + name_len))
            rest = list(range(1 + name_len, 1 + n_suffix))
            ctx = list(range(ctx_at, ctx_at + self.n_ctx))
            rows.append([0] + ctx[:half] + name + ctx[half:] + rest)
        return torch.tensor(rows, dtype=torch.long)

    def forward(self, ctx):
        """ctx [n_ctx, width] (shared) or [n_cls, n_ctx, width] (class-specific) -> [n_cls, L, width]."""
        if ctx.dim() == 2:
            ctx = ctx.unsqueeze(0).expand(self.n_cls, -1, -1)
        prefix, suffix = self.token_prefix, self.token_suffix
        ctx = ctx.to(prefix.dtype)
        if self.class_token_position == "end":
            return torch.cat([prefix, ctx, suffix], dim=1)
        pool = torch.cat([prefix, suffix, ctx], dim=1)
        index = self.gather_index.unsqueeze(-1).expand(-1, -1, pool.shape[-1])
        return pool.gather(1, index)

    def per_image(self, ctx):
        """ctx [B, n_ctx, width] (one context per image) -> [B * n_cls, L, width], image-major.

        Only the "end" position (CoCoOp/CoPL's layout)."""
        if self.class_token_position != "end":
            raise ValueError("per-image prompts support only CLASS_TOKEN_POSITION 'end'")
        batch = ctx.shape[0]
        prefix, suffix = self.token_prefix, self.token_suffix
        shape = (batch, self.n_cls)
        prompts = torch.cat([
            prefix.unsqueeze(0).expand(*shape, -1, -1),
            ctx.to(prefix.dtype).unsqueeze(1).expand(*shape, -1, -1),
            suffix.unsqueeze(0).expand(*shape, -1, -1),
        ], dim=2)
        return prompts.reshape(batch * self.n_cls, prompts.shape[2], prompts.shape[3])


@torch.no_grad()
def encode_texts(text_encoder, texts, batch_size=1000, normalize=True):
    """Text features of fixed strings, `batch_size` strings per text-tower call. [N, output_dim]."""
    features = []
    device = text_encoder.text_projection.device
    for start in range(0, len(texts), batch_size):
        tokens = tokenize(texts[start:start + batch_size]).to(device)
        f = text_encoder.encode_token_ids(tokens)
        features.append(F.normalize(f, dim=-1) if normalize else f)
    return torch.cat(features)


@torch.no_grad()
def encode_class_templates(text_encoder, classnames, templates, batch_size=1000):
    """Zero-shot classifier weights: per template normalised features, averaged, re-normalised.

    One template gives CLIP's plain zero-shot classifier. [n_cls, output_dim], L2-normalised.
    """
    names = [clean_classname(name) for name in classnames]
    total = None
    for template in templates:
        f = encode_texts(text_encoder, [template.format(name) for name in names], batch_size)
        total = f if total is None else total + f
    return F.normalize(total / len(templates), dim=-1)


# Prompt sequences per text-encoder call when every image has its own class prompts (CoCoOp, CoPL): bounds
# the memory of a batch of per-image prompts; any value gives the same features.
DEFAULT_PROMPT_BATCH = 8192


def encode_per_image_prompts(text_encoder, class_prompts, context, max_sequences=DEFAULT_PROMPT_BATCH,
                             normalize=True):
    """Normalised (normalize=False: raw) class text features for each image's own context vectors (CoCoOp, CoPL).

    context [B, n_ctx, width] -> [B, n_cls, output_dim]. The B x n_cls prompts are encoded image-major,
    as many images per text-tower call as fit in `max_sequences` sequences (at least one image), so
    memory stays bounded and there is no Python loop per image.
    """
    n_cls = class_prompts.n_cls
    images_per_call = max(1, max_sequences // n_cls)
    features = []
    for start in range(0, context.shape[0], images_per_call):
        chunk = context[start:start + images_per_call]
        prompts = class_prompts.per_image(chunk)
        eot = class_prompts.eot_indices.repeat(chunk.shape[0])
        f = text_encoder(prompts, eot).view(chunk.shape[0], n_cls, -1)
        features.append(F.normalize(f, dim=-1) if normalize else f)
    return torch.cat(features)
