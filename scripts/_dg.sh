# shellcheck shell=bash
# Few-shot leave-one-domain-out domain generalization (MetaPrompt's protocol), sourced by
# scripts/<method>/dg*.sh. The conventions are scripts/_protocols.sh's (DATA, OUTPUT, PYTHON, TRAINER,
# CFG, finished jobs skipped, interrupted ones resumed); the output tree is
#   $OUTPUT/dg/<dataset>/shots_<K>/<TRAINER>/<CFG>/<target domain>/seed<S>
source "$(dirname "${BASH_SOURCE[0]}")/_protocols.sh"

# The domains of a DG dataset (its config name), in the readers' order (DATASET.ID indexes it).
dg_domains() {
    case "$1" in
        pacs) echo "art_painting cartoon photo sketch" ;;
        vlcs) echo "caltech labelme pascal sun" ;;
        office_home) echo "art clipart product real_world" ;;
        domainnet) echo "clipart infograph painting quickdraw real sketch" ;;
        *) die "unknown DG dataset '$1'; choose one of: pacs vlcs office_home domainnet" ;;
    esac
}

# dg_train TRAINER CFG DATASET TARGET SEED SHOTS [opts]: train on the other domains of DATASET (SHOTS
# images per class per domain); the run's final test is the accuracy on the held-out TARGET domain.
dg_train() {
    local trainer=$1 cfg=$2 dataset=$3 target=$4 seed=$5 shots=$6; shift 6
    require_data
    local domains
    domains=$(dg_domains "$dataset")
    [[ " $domains " == *" $target "* ]] || die "'$target' is not a domain of $dataset; choose one of: $domains"
    resolve_configs "$trainer" "$cfg" "$dataset"
    variant_of "$@"
    local dir="$OUTPUT/dg/$dataset/shots_$shots/$trainer/$cfg$VARIANT_SUFFIX/$target/seed$seed"
    train_py --root "$DATA" --seed "$seed" --trainer "$trainer" \
        --dataset-config-file "$DATASET_CFG_FILE" --config-file "$TRAINER_CFG_FILE" \
        --target-domains "$target" --output-dir "$dir" DATASET.NUM_SHOTS "$shots" "$@"
}
