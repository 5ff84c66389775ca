"""Mean and std of a metric over the seed directories of an experiment, read from the logs.

    python parse_test_res.py output/base2new/train_base/caltech101/shots_16/CoCoOp/vit_b16_c4_ep10_batch1_ctxv1
    python parse_test_res.py output/base2new/test_new/.../vit_b16_c4_ep10_batch1_ctxv1 --test-log
    python parse_test_res.py output/evaluation/CoCoOp/vit_b16_c4_ep10_batch1_ctxv1_16shots --multi-exp --test-log

The same command line as CoOp's/MaPLe's. Reads logs written by vlprompt and by the original code
(both end signals, 1- or 2-decimal metrics, the newest log of a re-run) and names any run without
a result instead of silently averaging fewer seeds. Runs that record different settings (their
identity.json) are refused with the keys that differ, not averaged (exit status 2, as for every user error).
A shim over vlprompt.parse_logs.main.
"""
import sys

from vlprompt.parse_logs import main

if __name__ == "__main__":
    sys.exit(main())
