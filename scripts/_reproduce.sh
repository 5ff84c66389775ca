# shellcheck shell=bash
# Evaluating released (pretrained) weights, sourced by scripts/<method>/reproduce*.sh; also sources the
# protocols (scripts/_protocols.sh) that the other scripts use.
#
# A released run folder has Dassl's layout: <run>/<Name>/model.pth.tar-N (+ <Name>/checkpoint), Name being
# the method's checkpoint folder (MultiModalPromptLearner, VLPromptLearner or prompt_learner).
#   base-to-new:   WEIGHTSPATH/base/seed<S>/<Name>/model.pth.tar-5  (the unzipped folder of one dataset)
#   cross-dataset: WEIGHTSPATH/seed<S>/<Name>/model.pth.tar-2       (the unzipped ImageNet folder)
# The epoch evaluated is the one the folder holds (its checkpoint pointer, else its highest
# model.pth.tar-N), or $LOADEP.
source "$(dirname "${BASH_SOURCE[0]}")/_protocols.sh"

abs_dir() { [ -d "$1" ] || die "no folder $1"; (cd "$1" && pwd); }

# The epoch of the checkpoint a released run folder holds (or $LOADEP).
released_epoch() {
    local dir=$1 pointer file epoch best=""
    if [ -n "${LOADEP:-}" ]; then echo "$LOADEP"; return; fi
    pointer=$(ls "$dir"/*/checkpoint 2>/dev/null | head -n 1 || true)
    if [ -n "$pointer" ]; then
        file=$(head -n 1 "$pointer")
        if [ -f "$(dirname "$pointer")/$file" ]; then echo "${file##*-}"; return; fi
    fi
    for file in "$dir"/*/model.pth.tar-*; do
        [ -f "$file" ] || continue
        epoch=${file##*-}
        case $epoch in ''|*[!0-9]*) continue ;; esac
        if [ -z "$best" ] || [ "$epoch" -gt "$best" ]; then best=$epoch; fi
    done
    [ -n "$best" ] || die "no checkpoint in $dir: expected $dir/<Name>/model.pth.tar-N (Name: MultiModalPromptLearner, VLPromptLearner or prompt_learner)"
    echo "$best"
}

# eval_released MODEL_DIR EPOCH DIR TRAINER CFG DATASET SEED [train.py opts]
eval_released() {
    local model_dir=$1 epoch=$2 dir=$3 trainer=$4 cfg=$5 dataset=$6 seed=$7; shift 7
    resolve_configs "$trainer" "$cfg" "$dataset"
    echo "Evaluating $model_dir (epoch $epoch); results go to $dir"
    train_py --root "$DATA" --seed "$seed" --trainer "$trainer" \
        --dataset-config-file "$DATASET_CFG_FILE" --config-file "$TRAINER_CFG_FILE" \
        --output-dir "$dir" --model-dir "$model_dir" --load-epoch "$epoch" --eval-only "$@"
}

# reproduce_base2new TRAINER CFG DATASET SEED WEIGHTSPATH [opts]: the released base-class model of one
# seed evaluated on the base classes (output/base2new/test_base/...) and on the new classes
# (output/base2new/test_new/...).
reproduce_base2new() {
    local trainer=$1 cfg=$2 dataset=$3 seed=$4 weights=$5; shift 5
    require_data
    weights=$(abs_dir "$weights")
    local model_dir="$weights/base/seed$seed" shots=${SHOTS:-16}
    [ -d "$model_dir" ] || die "no $model_dir: WEIGHTSPATH must be the unzipped folder of one dataset, holding base/seed1 base/seed2 base/seed3"
    local epoch; epoch=$(released_epoch "$model_dir")
    variant_of "$@"
    local tail="$dataset/shots_$shots/$trainer/$cfg$VARIANT_SUFFIX/seed$seed" sub
    for sub in base new; do
        eval_released "$model_dir" "$epoch" "$OUTPUT/base2new/test_$sub/$tail" "$trainer" "$cfg" "$dataset" "$seed" \
            DATASET.NUM_SHOTS "$shots" DATASET.SUBSAMPLE_CLASSES "$sub" "$@"
    done
}

# reproduce_xd TRAINER CFG DATASET SEED WEIGHTSPATH [opts]: the released ImageNet model of one seed
# evaluated on all classes of DATASET (output/evaluation/..., where xd_test.sh writes).
reproduce_xd() {
    local trainer=$1 cfg=$2 dataset=$3 seed=$4 weights=$5; shift 5
    require_data
    weights=$(abs_dir "$weights")
    local model_dir="$weights/seed$seed" shots=${SHOTS:-16}
    [ -d "$model_dir" ] || die "no $model_dir: WEIGHTSPATH must be the unzipped ImageNet folder, holding seed1 seed2 seed3"
    local epoch; epoch=$(released_epoch "$model_dir")
    variant_of "$@"
    eval_released "$model_dir" "$epoch" "$OUTPUT/evaluation/$trainer/${cfg}_${shots}shots$VARIANT_SUFFIX/$dataset/seed$seed" \
        "$trainer" "$cfg" "$dataset" "$seed" "$@"
}
