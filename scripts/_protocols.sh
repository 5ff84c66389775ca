# shellcheck shell=bash
# The protocols every method's scripts run, sourced by scripts/<method>/*.sh.
#
# Conventions (the originals' arguments and output tree, with their known bugs fixed):
#   DATA     (required) folder holding the datasets; nothing is hard-coded
#   OUTPUT   root of the output tree (default: <repo>/output), wherever the script is run from
#   PYTHON   interpreter (default: python)
#   TRAINER, CFG, SHOTS   override a script's method, config name and shot count
#   LOADEP   epoch to evaluate (default: the last epoch the training run saved)
#   Arguments after the script's own are KEY VALUE config options passed to train.py.
# A job whose output dir holds result.json is finished and skipped; any other job is (re)run, and
# train.py resumes an interrupted training run from its last checkpoint.
set -euo pipefail

VLP_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-python}"
OUTPUT="${OUTPUT:-$VLP_ROOT/output}"

die() { echo "error: $*" >&2; exit 2; }

usage() { echo "usage: bash $0 $*" >&2; exit 2; }

require_data() {
    [ -n "${DATA:-}" ] || die "set DATA to the folder that holds the datasets (export DATA=/path/to/datasets)"
    [ -d "$DATA" ] || die "DATA=$DATA is not a directory"
}

dataset_config() {
    local file="$VLP_ROOT/configs/datasets/$1.yaml"
    [ -f "$file" ] || die "unknown dataset '$1' (no $file); choose one of: $(cd "$VLP_ROOT/configs/datasets" && ls -- *.yaml | sed 's/\.yaml$//' | tr '\n' ' ')"
    echo "$file"
}

trainer_config() {
    local file="$VLP_ROOT/configs/trainers/$1/$2.yaml"
    [ -f "$file" ] || die "no config $file"
    echo "$file"
}

job_done() { [ -f "$1/result.json" ]; }

skip_notice() { echo "The results exist at $1 (so skip this job)"; }

# A finished evaluation in DIR may be skipped only if it evaluated MODEL_DIR: results of other weights
# (e.g. your own training run, written by base2new_test.sh to the same test_new folder) must not be
# reported as the released weights' (or the other way round).
same_model_or_die() {
    local dir=$1 model_dir=$2 same
    same=$("$PYTHON" -c 'import json, os, sys
evaluated = json.load(open(sys.argv[1])).get("model_dir") or ""
print("yes" if evaluated and os.path.realpath(evaluated) == os.path.realpath(sys.argv[2]) else evaluated or "a training run")' \
        "$dir/result.json" "$model_dir") || die "cannot read $dir/result.json"
    [ "$same" = "yes" ] || die "$dir already holds the results of another model ($same), not of $model_dir: move that folder away, or set OUTPUT to another output root"
}

# The epoch a finished training run saved last (what its config trained), or $LOADEP.
trained_epoch() {
    local dir=$1 pointer name
    if [ -n "${LOADEP:-}" ]; then echo "$LOADEP"; return; fi
    [ -d "$dir" ] || die "no trained model at $dir: run the training script first"
    job_done "$dir" || die "the training run in $dir has not finished (no result.json): run the training script again to resume it, or set LOADEP to evaluate a given epoch"
    pointer=$(ls "$dir"/*/checkpoint 2>/dev/null | head -n 1 || true)
    [ -n "$pointer" ] || die "no checkpoint pointer (<name>/checkpoint) in $dir"
    name=$(head -n 1 "$pointer")
    echo "${name##*-}"
}

train_py() { "$PYTHON" "$VLP_ROOT/train.py" "$@"; }

# Config files for a method and a dataset, checked (the caller assigns them: `die` in a command
# substitution used as an argument would not stop the script).
resolve_configs() {  # TRAINER CFG DATASET -> sets DATASET_CFG_FILE, TRAINER_CFG_FILE
    DATASET_CFG_FILE=$(dataset_config "$3")
    TRAINER_CFG_FILE=$(trainer_config "$1" "$2")
}

# base2new_train TRAINER CFG DATASET SEED [opts]: 16-shot training on the base classes; its final test
# is the base accuracy.
base2new_train() {
    local trainer=$1 cfg=$2 dataset=$3 seed=$4; shift 4
    require_data
    resolve_configs "$trainer" "$cfg" "$dataset"
    local shots=${SHOTS:-16}
    local dir="$OUTPUT/base2new/train_base/$dataset/shots_$shots/$trainer/$cfg/seed$seed"
    if job_done "$dir"; then skip_notice "$dir"; return 0; fi
    train_py --root "$DATA" --seed "$seed" --trainer "$trainer" \
        --dataset-config-file "$DATASET_CFG_FILE" --config-file "$TRAINER_CFG_FILE" \
        --output-dir "$dir" DATASET.NUM_SHOTS "$shots" DATASET.SUBSAMPLE_CLASSES base "$@"
}

# base2new_test TRAINER CFG DATASET SEED [opts]: the base-trained model evaluated on the new classes.
base2new_test() {
    local trainer=$1 cfg=$2 dataset=$3 seed=$4; shift 4
    require_data
    resolve_configs "$trainer" "$cfg" "$dataset"
    local shots=${SHOTS:-16}
    local tail="$dataset/shots_$shots/$trainer/$cfg/seed$seed"
    local model_dir="$OUTPUT/base2new/train_base/$tail" dir="$OUTPUT/base2new/test_new/$tail"
    if job_done "$dir"; then same_model_or_die "$dir" "$model_dir"; skip_notice "$dir"; return 0; fi
    local epoch; epoch=$(trained_epoch "$model_dir")
    train_py --root "$DATA" --seed "$seed" --trainer "$trainer" \
        --dataset-config-file "$DATASET_CFG_FILE" --config-file "$TRAINER_CFG_FILE" \
        --output-dir "$dir" --model-dir "$model_dir" --load-epoch "$epoch" --eval-only \
        DATASET.NUM_SHOTS "$shots" DATASET.SUBSAMPLE_CLASSES new "$@"
}

# xd_train TRAINER CFG DATASET SEED [opts]: 16-shot training on all classes of the source (ImageNet).
xd_train() {
    local trainer=$1 cfg=$2 dataset=$3 seed=$4; shift 4
    require_data
    resolve_configs "$trainer" "$cfg" "$dataset"
    local shots=${SHOTS:-16}
    local dir="$OUTPUT/$dataset/$trainer/${cfg}_${shots}shots/seed$seed"
    if job_done "$dir"; then skip_notice "$dir"; return 0; fi
    train_py --root "$DATA" --seed "$seed" --trainer "$trainer" \
        --dataset-config-file "$DATASET_CFG_FILE" --config-file "$TRAINER_CFG_FILE" \
        --output-dir "$dir" DATASET.NUM_SHOTS "$shots" "$@"
}

# xd_test TRAINER CFG DATASET SEED [opts]: the ImageNet-trained model on another dataset (cross-dataset)
# or on an ImageNet variant (domain generalization). Uses all of the target's test set and classes.
xd_test() {
    local trainer=$1 cfg=$2 dataset=$3 seed=$4; shift 4
    require_data
    resolve_configs "$trainer" "$cfg" "$dataset"
    local shots=${SHOTS:-16} source=${SOURCE_DATASET:-imagenet}
    local model_dir="$OUTPUT/$source/$trainer/${cfg}_${shots}shots/seed$seed"
    local dir="$OUTPUT/evaluation/$trainer/${cfg}_${shots}shots/$dataset/seed$seed"
    if job_done "$dir"; then same_model_or_die "$dir" "$model_dir"; skip_notice "$dir"; return 0; fi
    local epoch; epoch=$(trained_epoch "$model_dir")
    train_py --root "$DATA" --seed "$seed" --trainer "$trainer" \
        --dataset-config-file "$DATASET_CFG_FILE" --config-file "$TRAINER_CFG_FILE" \
        --output-dir "$dir" --model-dir "$model_dir" --load-epoch "$epoch" --eval-only "$@"
}
