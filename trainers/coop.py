"""CoOp: Context Optimization (Zhou et al., "Learning to Prompt for Vision-Language Models", IJCV 2022).

The prompt for class k is  t_k = [v_1, ..., v_M, CLASS_k, "."]  with M learnable context vectors
v_m, shared by all classes (unified context) or one set per class (class-specific context, CSC);
the class token can also sit in the middle or at the front of the context. CLIP stays frozen:

    p(y = k | x) = softmax_k( exp(s) * cos(f(x), g(t_k)) )

with f the image encoder, g the text encoder and exp(s) CLIP's logit scale; the context vectors are
trained with cross-entropy. The class prompts do not depend on the image, so at evaluation their
features are computed once (PromptedCLIP.static_inputs).
"""
from vlprompt.classifier import TextPromptedCLIP
from vlprompt.dept import DecoupledHead
from vlprompt.engine import TRAINER_REGISTRY
from vlprompt.prompts import CLASS_TOKEN_POSITIONS, ClassPrompts, ContextPrompts, learnable_context
from vlprompt.trainer import PromptTrainer


class PromptLearner(ContextPrompts):
    """The learnable context v_1..v_M and the class prompts it is placed in.

    Initialisation (as the original): from the word embeddings of CTX_INIT when given (then
    M = number of words and the context is unified even with CSC), otherwise N(0, 0.02^2).
    """

    def __init__(self, text_encoder, classnames, n_ctx=16, ctx_init="", csc=False, class_token_position="end"):
        ctx_vectors, n_ctx, prompt_prefix = learnable_context(text_encoder, n_ctx, ctx_init,
                                                              n_cls=len(classnames) if csc else None)
        super().__init__(ctx_vectors,
                         ClassPrompts(text_encoder, classnames, prompt_prefix, n_ctx, class_token_position))


class CoOpCLIP(TextPromptedCLIP):
    """Class prompts g(t_k) are the static inputs; image features are f(x)."""

    def __init__(self, clip_model, classnames, n_ctx, ctx_init, csc, class_token_position):
        super().__init__(clip_model)
        self.prompt_learner = PromptLearner(self.text_encoder, classnames, n_ctx, ctx_init, csc, class_token_position)


@TRAINER_REGISTRY.register()
class CoOp(PromptTrainer):
    CONFIG_NODE = "COOP"
    CHECKPOINT_NAME = "prompt_learner"
    CONFIG_CHOICES = {**PromptTrainer.CONFIG_CHOICES, "CLASS_TOKEN_POSITION": CLASS_TOKEN_POSITIONS}

    CONFIG_DEFAULTS = {
        "N_CTX": 16,  # number of context vectors
        "CSC": False,  # class-specific context
        "CTX_INIT": "",  # e.g. "a photo of a" (then the context has one vector per word)
        "PREC": "fp16",  # fp16, fp32, amp (vlprompt adds bf16)
        "CLASS_TOKEN_POSITION": "end",  # end, middle or front
    }

    def build_custom_model(self, clip_model, classnames):
        c = self.method_cfg
        return CoOpCLIP(clip_model, classnames, c.N_CTX, c.CTX_INIT, c.CSC, c.CLASS_TOKEN_POSITION)


@TRAINER_REGISTRY.register()
class ExtrasLinearProbeCoOp(DecoupledHead, CoOp):
    """CoOp with DePT's decoupled head (vlprompt.dept), under DePT's official name."""
    CHECKPOINT_NAME = "PromptLearner"  # DePT's folder (its whole model there, the trainable tensors here)
