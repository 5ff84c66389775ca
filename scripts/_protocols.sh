# shellcheck shell=bash
# What every script in scripts/<method>/ shares. A script is its usage comment and one call,
#   script_job JOB METHOD "$@"
# which runs `$PYTHON -m vlprompt.script_jobs`: it checks the script's arguments, builds the script's
# train.py runs from vlprompt.protocols (the one definition of each protocol, which `vlprompt run` and its
# launchers use too) and runs them, train.py in that same process.
#
# Conventions (the originals' arguments and output tree, with their known bugs fixed):
#   DATA     (required) folder holding the datasets; nothing is hard-coded
#   OUTPUT   root of the output tree (default: <repo>/output), wherever the script is run from
#   PYTHON   interpreter (default: python); this checkout's vlprompt comes first on its path
#   TRAINER, CFG, SHOTS   override a script's method, config name and shot count
#   LOADEP   epoch to evaluate (default: the last epoch the training run saved)
#   VARIANT  name of the variant directory (default: derived from the KEY VALUE options; empty: none)
#   SOURCE_DATASET  the cross-dataset source (default: imagenet); SEEDS  for the scripts that run every seed
#   DRY_RUN=1  print the train.py command lines instead of running them
#   Arguments after the script's own are KEY VALUE config options passed to train.py.
# Every run has an identity (resolved config, data, CLIP weights; see vlprompt/run_identity.py):
# - a variant (KEY VALUE options that change results) gets a directory of its own: the config folder
#   <CFG> becomes <CFG>+KEY=VALUE+..., for training and testing alike, so the test scripts called with the
#   same options find the variant's model;
# - a job whose directory holds a finished run of the same identity is skipped, an interrupted one
#   resumes exactly, and a directory holding another run is refused (train.py lists what differs).
# Bad arguments are one line on stderr and exit status 2, before anything runs.
set -euo pipefail

VLP_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-python}"
export PYTHONPATH="$VLP_ROOT${PYTHONPATH:+:$PYTHONPATH}"

script_job() { exec "$PYTHON" -m vlprompt.script_jobs --script "$0" --repo "$VLP_ROOT" "$@"; }
