"""CLIP's towers run layer by layer with prompts injected: the only code that knows where tokens go.

Every method (CoOp, CoCoOp, MaPLe, IVLP, VPT, MetaPrompt, CoPL) uses these two modules instead of a
forked copy of CLIP's model code. They hold references to the `clip` package's own modules (blocks,
layer norms, embeddings, projections) and compose them; no weights are copied.

Text tower (`PromptedTextEncoder`): the caller passes token embeddings with the input-level prompts
already in place (e.g. [SOT, ctx_1..ctx_n, class-name tokens, ".", EOT]). Deep prompts replace the
hidden states at positions 1..n (right after SOT) just before block i, for i >= 1, with no positional
embedding added — the originals' (MaPLe/IVLP) rule. Attention is causal, so nothing after the EOT
token affects the output: sequences only need to be as long as their longest EOT position + 1, and
the prompt builders in `vlprompt.prompts` cut them there.

Vision tower (`PromptedVisionEncoder`, ViT only): patch embedding, class token and positional
embedding as CLIP does, then the input-level prompts are appended *after* the patch tokens, without
positional embedding, before ln_pre. Deep prompts replace the last n tokens just before block i, for
i >= 1. The output is ln_post(class token) @ proj; patch tokens can be returned too.

`round_prompts_fp16` (an attribute of each tower, False by default): prompts passed through
`_expand_prompts` (the vision tower's input prompts, both towers' deep prompts) are rounded to float16
after being expanded to the batch, forward and gradient, as the original IVLP/VPT code's `.half()` does
before concatenating them with float32 hidden states. Their trainers turn it on to reproduce it.

`full_context` (an attribute of the text tower, False by default): the tower runs on all of CLIP's
context positions (77), the positions after the given prompts holding the padding token's embedding, as
CLIP's own encode_text and the originals do. The cut sequences give the same function but not the same
rounding: the CPU attention kernel (scaled_dot_product_attention, causal) works through a sequence in
blocks whose sizes depend on its length, so a row of a 12-token sequence differs from the same row of the
77-token one in the last bits (~1e-7; measured on an AVX512 CPU, only lengths that are multiples of 16, or
67 and more, agree with 77). That is small alone, but the original's `.half()` also rounds each sequence's
gradient of a deep prompt to float16, which turns some of these differences into whole float16 steps
(5e-4 relative), and SGD amplifies them over the steps (IVLP on the tiny CLIP, 64-wide towers, 16 shots,
2 epochs: 4e-4 to 4e-3 in the final logits, against 0 with the whole context; issue #24). IVLP turns it
on (TEXT_FULL_CONTEXT) so that a seed trains the original's model; it costs 77/L times the text tower's
work on L-token prompts.

Deep prompts are given per layer: `deep_prompts[i]` is used before block i (entry 0 must be None,
the input-level prompts play that role); an entry may be None (that layer carries the previous
layer's outputs forward), a [n, width] tensor shared by the batch, or a [batch, n, width] tensor.
"""
import torch
import torch.nn as nn


def _expand_prompts(prompts, batch, dtype, round_fp16=False):
    if prompts.dim() == 2:
        prompts = prompts.unsqueeze(0).expand(batch, -1, -1)
    elif prompts.shape[0] != batch:
        raise ValueError(f"per-sample prompts have batch size {prompts.shape[0]}, expected {batch}")
    if round_fp16:
        prompts = prompts.half()  # after expanding, so the gradient is rounded per sequence as there
    return prompts.to(dtype)


def _check_deep(deep_prompts, num_layers, kind):
    if deep_prompts is None:
        return [None] * num_layers
    deep_prompts = list(deep_prompts)
    if len(deep_prompts) > num_layers:
        raise ValueError(f"{len(deep_prompts)} deep {kind} prompt entries for a tower with {num_layers} layers")
    if deep_prompts and deep_prompts[0] is not None:
        raise ValueError(f"deep {kind} prompts start at layer 1; entry 0 must be None (input prompts go in the embeddings)")
    return deep_prompts + [None] * (num_layers - len(deep_prompts))


def causal_mask(length, dtype, device):
    """CLIP's additive causal mask (-inf above the diagonal) for a sequence of `length` tokens."""
    return torch.full((length, length), float("-inf"), dtype=dtype, device=device).triu_(1)


def run_residual_block(block, x, causal_attn_mask=None):
    """One of CLIP's ResidualAttentionBlocks on x [L, N, D] (sequence first, as CLIP's towers run).

    Composed from the block's own modules instead of calling `block(x)` so that the text tower can run
    on sequences shorter than 77 (CLIP's blocks hold a fixed 77x77 mask) and use the fused causal
    attention kernel. The arithmetic is that of the block's forward.
    """
    h = block.ln_1(x)
    if causal_attn_mask is not None:
        attn = block.attn(h, h, h, need_weights=False, attn_mask=causal_attn_mask, is_causal=True)[0]
    else:
        attn = block.attn(h, h, h, need_weights=False)[0]
    x = x + attn
    return x + block.mlp(block.ln_2(x))


class PromptedTextEncoder(nn.Module):
    """CLIP's text tower over prompt embeddings, with optional deep (per-layer) prompts."""

    round_prompts_fp16 = False  # see the module docstring
    full_context = False  # see the module docstring

    def __init__(self, clip_model):
        super().__init__()
        self.transformer = clip_model.transformer
        self.positional_embedding = clip_model.positional_embedding
        self.ln_final = clip_model.ln_final
        self.text_projection = clip_model.text_projection
        self.token_embedding = clip_model.token_embedding

    @property
    def dtype(self):
        return self.transformer.resblocks[0].mlp.c_fc.weight.dtype

    @property
    def width(self):
        return self.ln_final.weight.shape[0]

    @property
    def num_layers(self):
        return len(self.transformer.resblocks)

    @property
    def context_length(self):
        return self.positional_embedding.shape[0]

    @property
    def output_dim(self):
        return self.text_projection.shape[1]

    def embed_tokens(self, token_ids):
        """Token embeddings of [N, L] ids, in the tower's dtype (as CoOp builds its prompt buffers)."""
        return self.token_embedding(token_ids.to(self.token_embedding.weight.device)).to(self.dtype)

    def forward(self, prompts, eot_indices, deep_prompts=None, n_ctx=None):
        """prompts [N, L, width] (L <= 77) -> text features [N, output_dim].

        eot_indices [N]: position of each sequence's EOT token (where its feature is read).
        deep_prompts: see the module docstring; they replace positions 1..n.
        n_ctx: the number of context slots after SOT that deep prompts replace (the prompt builders'
        n_ctx); a longer deep prompt is refused instead of overwriting class-name tokens. Without it, only
        a deep prompt that would reach the last token (EOT) of the sequence is refused (the bound is read
        from shapes, so it costs no device synchronisation).
        """
        n_seq, length, _ = prompts.shape
        dtype = self.dtype
        deep = _check_deep(deep_prompts, self.num_layers, "text")
        slots = length - 2 if n_ctx is None else int(n_ctx)
        for i, p in enumerate(deep):
            # Longer deep prompts would silently overwrite class-name tokens (or the EOT token itself).
            if p is not None and p.shape[-2] > slots:
                raise ValueError(f"deep text prompts at layer {i} have {p.shape[-2]} tokens; the prompts have "
                                 f"{slots} context slots after SOT for them to replace (deep prompts replace "
                                 "the input context and must not overwrite the class name)")
        if self.full_context:
            prompts = self._padded_to_context(prompts)
            length = prompts.shape[1]
        x = prompts.to(dtype) + self.positional_embedding[:length].to(dtype)
        x = x.permute(1, 0, 2)  # NLD -> LND
        mask = causal_mask(length, dtype, x.device)
        for i, block in enumerate(self.transformer.resblocks):
            if deep[i] is not None:
                p = _expand_prompts(deep[i], n_seq, x.dtype, self.round_prompts_fp16).permute(1, 0, 2)
                x = torch.cat([x[:1], p, x[1 + p.shape[0]:]], dim=0)
            x = run_residual_block(block, x, mask)
        x = x[eot_indices, torch.arange(n_seq, device=x.device)]  # only the EOT rows are needed
        x = self.ln_final(x).to(dtype)
        return x @ self.text_projection

    def _padded_to_context(self, prompts):
        """prompts [N, L, width] extended to [N, context_length, width] with the embedding of the padding
        token (id 0, what CLIP's tokenizer puts after EOT), so the tower sees the original's input."""
        missing = self.context_length - prompts.shape[1]
        if missing <= 0:
            return prompts
        pad = self.token_embedding.weight[0].detach().to(device=prompts.device, dtype=prompts.dtype)
        return torch.cat([prompts, pad.expand(prompts.shape[0], missing, -1)], dim=1)

    def encode_token_ids(self, token_ids):
        """CLIP's encode_text for [N, L] token ids, via this tower (sequences cut at their last EOT)."""
        eot = token_ids.argmax(dim=-1)
        length = int(eot.max()) + 1
        return self.forward(self.embed_tokens(token_ids[:, :length]), eot)


class PromptedVisionEncoder(nn.Module):
    """CLIP's image tower with optional appended (shallow) and replaced (deep) prompt tokens.

    ResNet backbones run CLIP's own forward and accept no prompts.
    """

    round_prompts_fp16 = False  # see the module docstring

    def __init__(self, clip_model):
        super().__init__()
        self.visual = clip_model.visual
        self.is_vit = hasattr(self.visual, "transformer") and hasattr(self.visual, "class_embedding")

    @property
    def dtype(self):
        return self.visual.conv1.weight.dtype

    @property
    def width(self):
        if not self.is_vit:
            raise ValueError("vision prompts need a ViT backbone; this CLIP has a ResNet image encoder")
        return self.visual.conv1.weight.shape[0]

    @property
    def num_layers(self):
        return len(self.visual.transformer.resblocks) if self.is_vit else 0

    @property
    def output_dim(self):
        return self.visual.output_dim

    @property
    def input_resolution(self):
        return self.visual.input_resolution

    def forward(self, images, prompts=None, deep_prompts=None, return_patch_tokens=False, project_patches=True):
        """images [B, 3, H, W] -> image features [B, output_dim] (and the patch tokens).

        prompts: [n, width] or [B, n, width] appended after the patch tokens.
        return_patch_tokens: also return the last layer's patch tokens after ln_post, projected like the
        class token ([B, n_patches, output_dim]) or, with project_patches=False, before proj
        ([B, n_patches, width]).
        """
        wants_tokens = prompts is not None or deep_prompts is not None or return_patch_tokens
        if not self.is_vit:
            if wants_tokens:
                raise ValueError("vision prompts and patch tokens need a ViT backbone; this CLIP has a ResNet image encoder")
            return self.visual(images.to(self.dtype))
        if not wants_tokens:
            return self.visual(images.to(self.dtype))

        v = self.visual
        dtype = self.dtype
        batch = images.shape[0]
        x = v.conv1(images.to(dtype))  # [B, width, grid, grid]
        x = x.reshape(batch, x.shape[1], -1).permute(0, 2, 1)  # [B, grid**2, width]
        n_patches = x.shape[1]
        cls = v.class_embedding.to(x.dtype).expand(batch, 1, -1)
        x = torch.cat([cls, x], dim=1) + v.positional_embedding.to(x.dtype)
        n_prompt = 0
        if prompts is not None:
            p = _expand_prompts(prompts, batch, x.dtype, self.round_prompts_fp16)
            n_prompt = p.shape[1]
            x = torch.cat([x, p], dim=1)
        x = v.ln_pre(x)
        x = x.permute(1, 0, 2)  # NLD -> LND

        deep = _check_deep(deep_prompts, self.num_layers, "vision")
        for i, block in enumerate(v.transformer.resblocks):
            if deep[i] is not None:
                p = _expand_prompts(deep[i], batch, x.dtype, self.round_prompts_fp16).permute(1, 0, 2)
                if p.shape[0] != n_prompt:
                    raise ValueError(f"deep vision prompts at layer {i} have {p.shape[0]} tokens; the input "
                                     f"prompts have {n_prompt} (deep prompts replace the appended ones)")
                x = torch.cat([x[: x.shape[0] - n_prompt], p], dim=0)
            x = run_residual_block(block, x)
        x = x.permute(1, 0, 2)  # LND -> NLD

        features = v.ln_post(x[:, 0, :])
        if v.proj is not None:
            features = features @ v.proj
        if not return_patch_tokens:
            return features
        patches = v.ln_post(x[:, 1:1 + n_patches, :])
        if project_patches and v.proj is not None:
            patches = patches @ v.proj
        return features, patches
