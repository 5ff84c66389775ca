"""CoPL: Contextual Prompt Learning (Goswami et al., "CoPL: Contextual Prompt Learning for
Vision-Language Understanding", AAAI 2024), as a RECONSTRUCTION.

The authors' code is not public and their method section could not be read. The idea is the
paper's abstract (arXiv 2307.00910): prompts are aligned to local (patch) image features and weighted
by how relevant those features are to them. CoCoOp, which CoPL extends, adds one image token to every
prompt token alike. Every equation below is an assumption; the choices left open are the
TRAINER.COPL.* keys, and docs/COPL.md says which is assumed where.

Local features (PATCH_FEATURES). The frozen ViT's last-layer patch tokens, j = 1..N, L2-normalised:
    z_j = ln_post(x_j) @ proj         "after_proj" (default; CLIP's embedding width, like the global g)
    z_j = ln_post(x_j)                "before_proj" (the vision width)

Per-patch Meta-Net. This is CoCoOp's bottleneck h (Linear d -> d/16, ReLU, Linear d/16 -> text
width D), shared by all patches. It gives one conditional token per patch:
    pi_j = h(z_j)

Alignment (SCORE). Each of the M learnable context vectors v_m attends over the patches:
    s_mj = <v_m, pi_j> / sqrt(D)      "scaled_dot" (default)
    s_mj = <v_m, pi_j>                "dot"
    s_mj = v_m^T W_a z_j              "general" (Luong; W_a is learnable and starts at 0)
    alpha_m = softmax_j(s_m)          the alignment vector of token m, a distribution over the patches
    c_m = sum_j alpha_mj pi_j         its context vector

Prompt weights (WEIGHTING). The paper weights each prompt by the relevance of the local features to it:
    w_m = 1                                               "none" (default: every prompt weighted alike)
    r_m = log( (1/N) sum_j exp(s_mj) )                    "relevance": a soft maximum of token m's scores
    w_m = M * softmax_m(r_m)                              over the patches, normalised across the tokens
A token that some patch matches gets a larger weight than one that no patch matches; the weights
average 1, so equal relevance (e.g. "general" at its zero start) gives the unweighted model. The
weight scales the token's context vector: c_m <- w_m c_m.

Dynamic prompt tokens (COMBINE):
    v_m(x) = v_m + c_m                "add" (default)
    v_m(x) = W_c [v_m; c_m] + b_c     "concat"
    v_m(x) = tanh(W_c [v_m; c_m] + b_c)   "tanh" (Luong's attentional state)
W_c starts at [I I] and b_c at 0, so "concat" starts equal to "add", and "tanh" starts close to it
because word embeddings are small.

If the attention is uniform (alpha_mj = 1/N), every context token gets the same shift mean_j h(z_j).
That is CoCoOp with its Meta-Net averaged over the patches. The attention is what lets each context
token weigh the local evidence in its own way.

Classification uses the global feature g = CLIP's image feature:
    t_k(x) = [v_1(x), ..., v_M(x), CLASS_k, "."]
    p(y = k | x) = softmax_k( exp(s) * cos(g, T(t_k(x))) )
The loss is cross-entropy. No auxiliary loss is known.

The prompts depend on the image, so each batch needs B x K text sequences. They are encoded
image-major, several images per text-tower call and at most TRAINER.COPL.PROMPT_BATCH sequences per
call (as CoCoOp does here), never one call per image.
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from vlprompt.classifier import PromptedCLIP, per_image_scaled_logits
from vlprompt.engine import TRAINER_REGISTRY
from vlprompt.errors import ConfigValueError
from vlprompt.prompts import (DEFAULT_PROMPT_BATCH, ClassPrompts, encode_per_image_prompts, learnable_context,
                              meta_net)
from vlprompt.trainer import PromptTrainer
from vlprompt.validation import check_choice

PATCH_FEATURES = ("after_proj", "before_proj")
SCORES = ("scaled_dot", "dot", "general")
COMBINES = ("add", "concat", "tanh")
WEIGHTINGS = ("none", "relevance")
OPTIONS = {"PATCH_FEATURES": PATCH_FEATURES, "SCORE": SCORES, "COMBINE": COMBINES, "WEIGHTING": WEIGHTINGS}


class PromptLearner(nn.Module):
    """The context vectors v_m, the per-patch Meta-Net h, the alignment (W_a for "general"), the
    prompt weights, the combination (W_c for "concat"/"tanh") and the class prompts the dynamic tokens fill."""

    def __init__(self, text_encoder, classnames, patch_dim, n_ctx=16, ctx_init="", score="scaled_dot",
                 combine="add", weighting="none"):
        super().__init__()
        check_choice("score", score, SCORES)
        check_choice("combine", combine, COMBINES)
        check_choice("weighting", weighting, WEIGHTINGS)
        dtype = text_encoder.dtype
        width = text_encoder.width
        ctx_vectors, n_ctx, prompt_prefix = learnable_context(text_encoder, n_ctx, ctx_init)
        print(f"CoPL: patch features into a {patch_dim}-d Meta-Net, score {score}, weighting {weighting}, "
              f"combine {combine}")
        self.score_kind = score
        self.combine_kind = combine
        self.weighting = weighting
        self.ctx = nn.Parameter(ctx_vectors)
        self.meta_net = meta_net(patch_dim, width, dtype)
        if score == "general":
            # W_a = 0 gives uniform attention at the start, so training begins at the CoCoOp-like model.
            self.align = nn.Linear(patch_dim, width, bias=False).to(dtype)
            nn.init.zeros_(self.align.weight)
        if combine != "add":
            # Starts as v_m + c_m: a fresh random layer would wipe out the CTX_INIT word embeddings.
            self.combine = nn.Linear(2 * width, width).to(dtype)
            with torch.no_grad():
                self.combine.weight.copy_(torch.eye(width).repeat(1, 2))
                self.combine.bias.zero_()
        self.class_prompts = ClassPrompts(text_encoder, classnames, prompt_prefix, n_ctx)

    @property
    def eot_indices(self):
        return self.class_prompts.eot_indices

    def patch_tokens(self, patch_features):
        """pi_j = h(z_j): [B, N, d] -> [B, N, D]."""
        return self.meta_net(patch_features.to(self.ctx.dtype))

    def scores(self, patch_features, tokens):
        """s_mj for each image: [B, M, N]."""
        ctx = self.ctx
        keys = self.align(patch_features.to(ctx.dtype)) if self.score_kind == "general" else tokens
        scores = torch.einsum("md,bnd->bmn", ctx, keys)
        if self.score_kind == "scaled_dot":
            scores = scores / math.sqrt(ctx.shape[-1])
        return scores

    @staticmethod
    def alignment(scores):
        """alpha_m = softmax_j(s_m). The softmax runs in float32, so half precision keeps 196 patches stable."""
        return scores.float().softmax(dim=-1).to(scores.dtype)

    @staticmethod
    def relevance_weights(scores):
        """w_m = M softmax_m(log mean_j exp(s_mj)) for scores [B, M, N] -> [B, M] (mean 1), in float32."""
        scores = scores.float()
        relevance = torch.logsumexp(scores, dim=-1) - math.log(scores.shape[-1])
        return relevance.softmax(dim=-1) * scores.shape[1]

    def dynamic_tokens(self, patch_features):
        """(v_m(x) [B, M, D], alignment vectors alpha [B, M, N], prompt weights w [B, M]) for the
        (L2-normalised) patch features z [B, N, d] of each image."""
        tokens = self.patch_tokens(patch_features)
        scores = self.scores(patch_features, tokens)
        alpha = self.alignment(scores)
        context = torch.einsum("bmn,bnd->bmd", alpha.to(tokens.dtype), tokens)  # c_m
        if self.weighting == "relevance":
            weights = self.relevance_weights(scores)
            context = context * weights.unsqueeze(-1).to(context.dtype)  # w_m c_m
        else:
            weights = torch.ones(scores.shape[:2], dtype=torch.float32, device=scores.device)
        ctx = self.ctx.unsqueeze(0).expand_as(context)
        if self.combine_kind == "add":
            return ctx + context, alpha, weights
        mixed = self.combine(torch.cat([ctx, context], dim=-1))
        return (torch.tanh(mixed) if self.combine_kind == "tanh" else mixed), alpha, weights

    def conditioned_context(self, patch_features):
        """Dynamic prompt tokens v_m(x) [B, M, D] and the alignment vectors alpha [B, M, N]."""
        context, alpha, _ = self.dynamic_tokens(patch_features)
        return context, alpha


class CoPLCLIP(PromptedCLIP):
    def __init__(self, clip_model, classnames, n_ctx=16, ctx_init="", patch_features="after_proj",
                 score="scaled_dot", combine="add", prompt_batch=DEFAULT_PROMPT_BATCH, weighting="none"):
        super().__init__(clip_model)
        check_choice("patch_features", patch_features, PATCH_FEATURES)
        if not self.image_encoder.is_vit:
            raise ConfigValueError("CoPL attends over patch features and needs a ViT backbone; this CLIP has a ResNet "
                             "image encoder (use e.g. ViT-B/16)")
        self.patch_features = patch_features
        patch_dim = self.image_encoder.output_dim if patch_features == "after_proj" else self.image_encoder.width
        self.prompt_learner = PromptLearner(self.text_encoder, classnames, patch_dim, n_ctx, ctx_init, score, combine,
                                            weighting)
        self.prompt_batch = prompt_batch

    def encode_image(self, image):
        """The global feature g [B, E] and the local features [B, N, d], both unnormalised."""
        return self.image_encoder(image, return_patch_tokens=True,
                                  project_patches=self.patch_features == "after_proj")

    def logits(self, image, static=None):
        global_features, patch_features = self.encode_image(image)
        global_features = F.normalize(global_features, dim=-1)
        context, _ = self.prompt_learner.conditioned_context(F.normalize(patch_features, dim=-1))
        text_features = encode_per_image_prompts(self.text_encoder, self.prompt_learner.class_prompts, context,
                                                 self.prompt_batch)
        return per_image_scaled_logits(global_features, text_features, self.logit_scale)


@TRAINER_REGISTRY.register()
class CoPL(PromptTrainer):
    CONFIG_NODE = "COPL"
    CONFIG_CHOICES = {**PromptTrainer.CONFIG_CHOICES, **OPTIONS}
    CHECKPOINT_NAME = "prompt_learner"

    CONFIG_DEFAULTS = {
        "N_CTX": 16,  # as CoCoOp; the protocol configs use 4 with CTX_INIT "a photo of a"
        "CTX_INIT": "",
        "PREC": "fp16",  # fp16, fp32, amp (vlprompt adds bf16)
        "PATCH_FEATURES": "after_proj",  # after_proj or before_proj
        "SCORE": "scaled_dot",  # scaled_dot, dot or general
        "COMBINE": "add",  # add, concat or tanh
        "WEIGHTING": "none",  # none or relevance (prompt weights from the patches)
        "PROMPT_BATCH": DEFAULT_PROMPT_BATCH,  # max prompt sequences per text-encoder call (speed only)
    }

    def build_custom_model(self, clip_model, classnames):
        c, option = self.method_cfg, self.method_option
        return CoPLCLIP(clip_model, classnames, c.N_CTX, c.CTX_INIT, option("PATCH_FEATURES"), option("SCORE"),
                        option("COMBINE"), option("PROMPT_BATCH"), option("WEIGHTING"))
