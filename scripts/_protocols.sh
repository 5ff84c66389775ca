# shellcheck shell=bash
# The protocols every method's scripts run, sourced by scripts/<method>/*.sh.
#
# Conventions (the originals' arguments and output tree, with their known bugs fixed):
#   DATA     (required) folder holding the datasets; nothing is hard-coded
#   OUTPUT   root of the output tree (default: <repo>/output), wherever the script is run from
#   PYTHON   interpreter (default: python)
#   TRAINER, CFG, SHOTS   override a script's method, config name and shot count
#   LOADEP   epoch to evaluate (default: the last epoch the training run saved)
#   VARIANT  name of the variant directory (default: derived from the KEY VALUE options; empty: none)
#   Arguments after the script's own are KEY VALUE config options passed to train.py.
# Every run has an identity (resolved config, data, CLIP weights; see vlprompt/run_identity.py):
# - a variant (KEY VALUE options that change results) gets a directory of its own: the config folder
#   <CFG> becomes <CFG>+KEY=VALUE+..., for training and testing alike, so the test scripts called with the
#   same options find the variant's model;
# - a job whose directory holds a finished run of the same identity is skipped, an interrupted one
#   resumes exactly, and a directory holding another run is refused (train.py lists what differs).
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

# The directory suffix of the variant that KEY VALUE options make ("" for none); sets VARIANT_SUFFIX.
# VARIANT=name in the environment names it yourself (<CFG>+name); VARIANT= (set, empty) keeps the plain
# tree. Either way the run identity still refuses a directory that holds another run.
variant_of() {
    [ $(( $# % 2 )) -eq 0 ] || die "options must be KEY VALUE pairs; got an odd number: $*"
    if [ -n "${VARIANT+set}" ]; then
        case $VARIANT in */*|.*) die "VARIANT=$VARIANT: a variant name is one folder-name part (no '/', not starting with '.')" ;; esac
        VARIANT_SUFFIX=${VARIANT:++$VARIANT}
    else
        VARIANT_SUFFIX=$("$PYTHON" -m vlprompt.run_identity variant "$@") || die "cannot name the variant of: $*"
    fi
}

# The epoch a finished training run saved last (what its config trained), or $LOADEP.
trained_epoch() {
    local dir=$1 pointer name
    if [ -n "${LOADEP:-}" ]; then echo "$LOADEP"; return; fi
    if [ ! -d "$dir" ]; then
        local cfg_dir seed_dir others
        cfg_dir=$(dirname "$dir"); seed_dir=$(basename "$dir")
        others=$(cd "$(dirname "$cfg_dir")" 2>/dev/null && ls -d -- "$(basename "${cfg_dir%%+*}")"+*/"$seed_dir" 2>/dev/null | sed 's|/.*||' | tr '\n' ' ' || true)
        [ -z "$others" ] || die "no trained model at $dir, but variants of it were trained: ${others% }. Pass the KEY VALUE options they were trained with (or VARIANT=<name>)"
        die "no trained model at $dir: run the training script first"
    fi
    job_done "$dir" || die "the training run in $dir has not finished (no result.json): run the training script again to resume it, or set LOADEP to evaluate a given epoch"
    pointer=$(ls "$dir"/*/checkpoint 2>/dev/null | head -n 1 || true)
    [ -n "$pointer" ] || die "no checkpoint pointer (<name>/checkpoint) in $dir"
    name=$(head -n 1 "$pointer")
    echo "${name##*-}"
}

# train.py skips a finished run of the same identity itself (--skip-finished) and refuses another one.
train_py() { "$PYTHON" "$VLP_ROOT/train.py" --skip-finished "$@"; }

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
    variant_of "$@"
    local dir="$OUTPUT/base2new/train_base/$dataset/shots_$shots/$trainer/$cfg$VARIANT_SUFFIX/seed$seed"
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
    variant_of "$@"
    local tail="$dataset/shots_$shots/$trainer/$cfg$VARIANT_SUFFIX/seed$seed"
    local model_dir="$OUTPUT/base2new/train_base/$tail" dir="$OUTPUT/base2new/test_new/$tail"
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
    variant_of "$@"
    local dir="$OUTPUT/$dataset/$trainer/${cfg}_${shots}shots$VARIANT_SUFFIX/seed$seed"
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
    variant_of "$@"
    local model_dir="$OUTPUT/$source/$trainer/${cfg}_${shots}shots$VARIANT_SUFFIX/seed$seed"
    local dir="$OUTPUT/evaluation/$trainer/${cfg}_${shots}shots$VARIANT_SUFFIX/$dataset/seed$seed"
    local epoch; epoch=$(trained_epoch "$model_dir")
    train_py --root "$DATA" --seed "$seed" --trainer "$trainer" \
        --dataset-config-file "$DATASET_CFG_FILE" --config-file "$TRAINER_CFG_FILE" \
        --output-dir "$dir" --model-dir "$model_dir" --load-epoch "$epoch" --eval-only "$@"
}
