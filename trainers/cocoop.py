"""CoCoOp: Conditional Context Optimization (Zhou et al., "Conditional Prompt Learning for
Vision-Language Models", CVPR 2022).

A lightweight Meta-Net h (Linear -> ReLU -> Linear, bottleneck width/16) turns the image feature into
one token pi(x) = h(f(x)) that shifts every context vector: v_m(x) = v_m + pi(x). The prompt for
class k is t_k(x) = [v_1(x), ..., v_M(x), CLASS_k, "."], so each image has its own class prompts:

    p(y = k | x) = softmax_k( exp(s) * cos(f(x), g(t_k(x))) )

The original runs the text encoder once per image in a Python loop. Here the prompts of a batch of
images are encoded together, image-major, in chunks of at most TRAINER.COCOOP.PROMPT_BATCH sequences
(a vlprompt addition that bounds memory; the result is the same as the loop).
"""
import torch.nn as nn
import torch.nn.functional as F

from vlprompt.classifier import PromptedCLIP
from vlprompt.dept import DecoupledHead
from vlprompt.engine import TRAINER_REGISTRY
from vlprompt.prompts import (DEFAULT_PROMPT_BATCH, ClassPrompts, encode_per_image_prompts, learnable_context,
                              meta_net)
from vlprompt.trainer import PromptTrainer


class PromptLearner(nn.Module):
    """Context vectors v_m, the Meta-Net h, and the class prompts they fill."""

    def __init__(self, text_encoder, classnames, vis_dim, n_ctx=16, ctx_init=""):
        super().__init__()
        ctx_vectors, n_ctx, prompt_prefix = learnable_context(text_encoder, n_ctx, ctx_init)
        self.ctx = nn.Parameter(ctx_vectors)
        self.meta_net = meta_net(vis_dim, text_encoder.width, text_encoder.dtype)
        self.class_prompts = ClassPrompts(text_encoder, classnames, prompt_prefix, n_ctx)

    @property
    def eot_indices(self):
        return self.class_prompts.eot_indices

    def conditioned_context(self, image_features):
        """v_m + h(f(x)) for each image: [B, n_ctx, width] (the same shift for every m)."""
        bias = self.meta_net(image_features.to(self.ctx.dtype))
        return self.ctx.unsqueeze(0) + bias.unsqueeze(1)


class CoCoOpCLIP(PromptedCLIP):
    def __init__(self, clip_model, classnames, n_ctx, ctx_init, prompt_batch=DEFAULT_PROMPT_BATCH):
        super().__init__(clip_model)
        self.prompt_learner = PromptLearner(self.text_encoder, classnames, self.image_encoder.output_dim,
                                            n_ctx, ctx_init)
        self.prompt_batch = prompt_batch

    def features(self, image, static=None):
        """f(x) [B, E] and g(t_k(x)) [B, K, E], unnormalised (logits_from_features normalises both)."""
        image_features = self.image_encoder(image)
        context = self.prompt_learner.conditioned_context(F.normalize(image_features, dim=-1))
        text_features = encode_per_image_prompts(self.text_encoder, self.prompt_learner.class_prompts, context,
                                                 self.prompt_batch, normalize=False)
        return image_features, text_features


@TRAINER_REGISTRY.register()
class CoCoOp(PromptTrainer):
    CONFIG_NODE = "COCOOP"
    CHECKPOINT_NAME = "prompt_learner"

    CONFIG_DEFAULTS = {
        "N_CTX": 16,  # number of context vectors
        "CTX_INIT": "",  # e.g. "a photo of a" (then the context has one vector per word)
        "PREC": "fp16",  # fp16, fp32, amp (vlprompt adds bf16)
        "PROMPT_BATCH": DEFAULT_PROMPT_BATCH,  # vlprompt: max prompt sequences per text-encoder call (speed only)
    }

    def build_custom_model(self, clip_model, classnames):
        c = self.method_cfg
        return CoCoOpCLIP(clip_model, classnames, c.N_CTX, c.CTX_INIT, self.method_option("PROMPT_BATCH"))


@TRAINER_REGISTRY.register()
class ExtrasLinearProbeCoCoOp(DecoupledHead, CoCoOp):
    """CoCoOp with DePT's decoupled head (vlprompt.dept), under DePT's official name."""
    CHECKPOINT_NAME = "PromptLearner"  # DePT's folder (its whole model there, the trainable tensors here)
