"""IVLP: Independent Vision-Language Prompting, and Deep Language Prompting (the MaPLe paper's baselines).

Language prompts as in MaPLe: the class prompt t_k = [SOT, P_1..P_n, <rest of CTX_INIT>, CLASS_k, ".", EOT],
P initialised from the first n = N_CTX_TEXT token embeddings of CTX_INIT, and new learnable prompts P^i
replacing positions 1..n just before text block i, 1 <= i < J_t (PROMPT_DEPTH_TEXT >= 1).

Vision prompts, independent of the language ones (no coupling): V (N_CTX_VISION tokens) appended after
the patch tokens at the input, and new learnable V^i replacing them just before vision block i,
1 <= i < J_v (PROMPT_DEPTH_VISION; 0 turns vision prompting off, which is Deep Language Prompting,
config vit_b16_c2_ep5_batch4_4ctx_language_only). All deep prompts are N(0, 0.02^2) at the start.

    p(y = k | x) = softmax_k( exp(s) * cos(f(x; V, V^1..), g(t_k; P^1..)) )

The text features and the vision prompts do not depend on the image: computed once per evaluation.

The original kept V and the V^i, P^i inside CLIP's modules (VPT, VPT_shallow); here they live in the
prompt learner with the layer they enter as their name (`text_layer_prompts.<i>`,
`vision.layer_prompts.<i>`), and the released checkpoints are renamed onto them when loaded
(vlprompt.original_checkpoints).
"""
import torch

from vlprompt.engine import TRAINER_REGISTRY
from vlprompt.ivlp import IVLPCLIP, VLPromptLearner  # noqa: F401  (the model lives in the library: PromptSRC shares it)
from vlprompt.original_checkpoints import from_original_state, is_full_model_state
from vlprompt.trainer import PromptTrainer


@TRAINER_REGISTRY.register()
class IVLP(PromptTrainer):
    CONFIG_NODE = "IVLP"
    # 1: the text tower runs on all 77 positions by default (TEXT_FULL_CONTEXT), as the original does; runs of
    # vlprompt 0.1 computed on the cut prompts and are other runs.
    RESULTS_REVISION = 1
    CHECKPOINT_NAME = "VLPromptLearner"

    CONFIG_DEFAULTS = {
        "N_CTX_VISION": 2,  # vision prompt tokens per layer
        "N_CTX_TEXT": 2,  # language prompt tokens per layer
        "CTX_INIT": "a photo of a",  # language prompts only
        "PREC": "fp16",  # fp16, fp32, amp (vlprompt adds bf16)
        "PROMPT_DEPTH_VISION": 9,  # 0: no vision prompts (deep language prompting)
        "PROMPT_DEPTH_TEXT": 9,
        # vlprompt: the original rounds V, V^i and P^i to float16 where they enter the towers, also under
        # PREC fp32/amp (its `.half()`); False keeps them float32 there (a ~1e-4 relative difference in the logits).
        "ROUND_PROMPTS_FP16": True,
        # vlprompt: the text tower runs on all 77 token positions, as the original's. The class prompts cut
        # after their last EOT token (False) give the same function faster, but other rounding in the last
        # bits, which the float16-rounded prompt gradients above turn into a different model over the
        # training (vlprompt.prompted_clip): True trains the original's model from its seed.
        "TEXT_FULL_CONTEXT": True,
    }

    def build_model(self):
        # The original draws its prompts while CLIP is built: keep the generator state from before.
        self.rng_before_clip = torch.get_rng_state()
        super().build_model()

    def build_custom_model(self, clip_model, classnames):
        c = self.method_cfg
        return IVLPCLIP(clip_model, classnames, c.N_CTX_TEXT, c.N_CTX_VISION, c.CTX_INIT,
                        c.PROMPT_DEPTH_TEXT, c.PROMPT_DEPTH_VISION, getattr(self, "rng_before_clip", None),
                        bool(self.method_option("ROUND_PROMPTS_FP16")),
                        full_context=bool(self.method_option("TEXT_FULL_CONTEXT")))

    def adapt_checkpoint_state(self, state_dict):
        if is_full_model_state(state_dict):
            return from_original_state("IVLP", state_dict, self.model)
        return state_dict
