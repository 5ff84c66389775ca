"""Mean and std of a metric over the seed directories of an experiment, read from the logs.

    python parse_test_res.py output/base2new/train_base/caltech101/shots_16/CoCoOp/vit_b16_c4_ep10_batch1_ctxv1
    python parse_test_res.py output/base2new/test_new/.../vit_b16_c4_ep10_batch1_ctxv1 --test-log
    python parse_test_res.py output/evaluation/CoCoOp/vit_b16_c4_ep10_batch1_ctxv1_16shots --multi-exp --test-log

The same command line as CoOp's/MaPLe's. Reads logs written by vlprompt and by the original code
(both end signals, 1- or 2-decimal metrics, the newest log of a re-run) and names any run without
a result instead of silently averaging fewer seeds. Runs that record different settings (their
identity.json) are refused with the keys that differ, not averaged (exit status 2, as for every user error).
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from vlprompt.errors import EXIT_USER_ERROR, UserError, report_user_error  # noqa: E402
from vlprompt.parse_logs import parse_directory, parse_multi_exp  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("directory", type=str, help="path to directory")
    parser.add_argument("--ci95", action="store_true", help="compute 95%% confidence interval")
    parser.add_argument("--test-log", action="store_true", help="parse test-only logs")
    parser.add_argument("--multi-exp", action="store_true", help="parse multiple experiments")
    parser.add_argument("--keyword", default="accuracy", type=str, help="which keyword to extract")
    args = parser.parse_args(argv)
    try:
        if args.multi_exp:
            parse_multi_exp(args.directory, args.keyword, args.test_log, args.ci95)
        else:
            parse_directory(args.directory, args.keyword, args.test_log, args.ci95)
    except UserError as e:
        report_user_error(e)
        return EXIT_USER_ERROR
    return 0


if __name__ == "__main__":
    sys.exit(main())
