"""The protocols of the papers, defined once: which train.py runs a table needs, in which order.

    stages = plan("base2new", "maple", data="/data", output="output", datasets=["caltech101"], seeds=[1, 2])

A plan is a list of stages, each a list of `Run`s (vlprompt.launchers.base): a run's `after` names the runs
of earlier stages it needs (a test needs its training run). Every launcher (local workers, Slurm) and
`vlprompt run` execute these plans; the scripts in scripts/ run the same command lines (the tests compare
them), with the same output tree:

    base2new     train on the base classes (16 shots)   -> test the model on the new classes
    xd           train on ImageNet (all classes)        -> test on the 10 other datasets (cross-dataset)
    imagenet_dg  the same training                      -> test on the 4 ImageNet variants (domain generalization)
    dg           MetaPrompt's leave-one-domain-out DG: train on the other domains of PACS, VLCS, ... (one stage)
    fewshot      CoOp's few-shot protocol: 1/2/4/8/16 shots with the originals' config per shot count
    zeroshot     zero-shot CLIP evaluated on each dataset (one stage)

The epoch a test loads is the one its training run saved last; it is not known when planning (the
training has not run), so a test's argv holds TRAINED_EPOCH after `--load-epoch`, and the launcher
calls `resolve_argv` just before running it: it reads the training run's `<name>/checkpoint` pointer,
as scripts/_protocols.sh does (`load_epoch=` plans a given epoch instead, like the scripts' LOADEP).

This module imports neither torch nor CLIP (`vlprompt run --status` plans without them).
"""
import glob
import os

from .errors import UserError
from .launchers.base import Run
from .run_identity import variant_name

TRAINED_EPOCH = "{trained_epoch}"  # in a test's argv: the epoch its training run saved (resolve_argv)

PROTOCOLS = ("base2new", "xd", "imagenet_dg", "dg", "fewshot", "zeroshot")

# scripts/ folder -> (trainer, base-to-new config, cross-dataset config): the scripts' TRAINER/CFG defaults
METHODS = {
    "cocoop": ("CoCoOp", "vit_b16_c4_ep10_batch1_ctxv1", "vit_b16_c4_ep10_batch1_ctxv1"),
    "maple": ("MaPLe", "vit_b16_c2_ep5_batch4_2ctx", "vit_b16_c2_ep5_batch4_2ctx_cross_datasets"),
    "independent-vlp": ("IVLP", "vit_b16_c2_ep5_batch4_2+2ctx", "vit_b16_c2_ep5_batch4_2+2ctx"),
    "language-prompting": ("IVLP", "vit_b16_c2_ep5_batch4_4ctx_language_only",
                           "vit_b16_c2_ep5_batch4_4ctx_language_only"),
    "vpt": ("VPT", "vit_b16_c2_ep5_batch4_4", "vit_b16_c2_ep5_batch4_4"),
    "metaprompt": ("MetaPrompt", "vit_b16_c2_ep8_batch16_2+2ctx", None),
    "copl": ("CoPL", "vit_b16_c4_ep10_batch1_ctxv1", "vit_b16_c4_ep10_batch1_ctxv1"),
    "coop": ("CoOp", None, None),               # fewshot (scripts/coop/main.sh), xd / imagenet_dg (eval.sh)
    "zsclip": ("ZeroshotCLIP", None, None),     # zeroshot (scripts/zsclip/zeroshot.sh)
}
DG_CONFIG = "vit_b16_c4_ep6_batch32_4+4ctx_dg"  # MetaPrompt's leave-one-domain-out config (scripts/metaprompt/dg.sh)

BASE2NEW_DATASETS = ["imagenet", "caltech101", "oxford_pets", "stanford_cars", "oxford_flowers", "food101",
                     "fgvc_aircraft", "sun397", "dtd", "eurosat", "ucf101"]
XD_TARGETS = BASE2NEW_DATASETS[1:]
IMAGENET_VARIANTS = ["imagenetv2", "imagenet_sketch", "imagenet_a", "imagenet_r"]
DG_DOMAINS = {"pacs": ["art_painting", "cartoon", "photo", "sketch"], "vlcs": ["caltech", "labelme", "pascal", "sun"],
              "office_home": ["art", "clipart", "product", "real_world"],
              "domainnet": ["clipart", "infograph", "painting", "quickdraw", "real", "sketch"]}
FEWSHOT_SHOTS = (1, 2, 4, 8, 16)
# CoOp: M=16 context tokens, shared (CSC False), class token at the end (the originals' main table)
COOP_CONTEXT = {"ctp": "end", "nctx": 16, "csc": False}


class ProtocolError(UserError, ValueError):
    pass


def coop_config(backbone, shots, dataset):
    """CoOp's config per shot count (COOP.md): 1 shot *_ep50, 2 and 4 shots *_ep100, 8 and 16 shots the
    200-epoch config; ImageNet *_ep50 throughout."""
    if dataset == "imagenet" or shots == 1:
        return f"{backbone}_ep50"
    return f"{backbone}_ep100" if shots in (2, 4) else backbone


class _Planner:
    def __init__(self, repo, data, output, opts, variant):
        from .plugins import find_codebase

        self.repo = find_codebase("train.py", repo, "vlprompt's codebase (train.py and configs/)")
        self.data, self.output = data, os.path.abspath(output)
        self.opts = [str(o) for o in opts]
        if len(self.opts) % 2:
            raise ProtocolError(f"options must be KEY VALUE pairs; got an odd number: {' '.join(self.opts)}")
        if variant is None:  # as the scripts name it (VARIANT unset)
            self.suffix = variant_name(self.opts)
        else:
            if "/" in variant or variant.startswith("."):
                raise ProtocolError(f"variant {variant!r}: a variant name is one folder-name part (no '/', not "
                                    "starting with '.')")
            self.suffix = f"+{variant}" if variant else ""

    def dataset_config(self, dataset):
        path = os.path.join(self.repo, "configs", "datasets", f"{dataset}.yaml")
        if not os.path.isfile(path):
            known = sorted(os.path.splitext(os.path.basename(p))[0]
                           for p in glob.glob(os.path.join(self.repo, "configs", "datasets", "*.yaml")))
            raise ProtocolError(f"unknown dataset {dataset!r} (no {path}); choose one of: {' '.join(known)}")
        return path

    def trainer_config(self, trainer, cfg):
        path = os.path.join(self.repo, "configs", "trainers", trainer, f"{cfg}.yaml")
        if not os.path.isfile(path):
            raise ProtocolError(f"no config {path}")
        return path

    def out(self, *parts):
        return "/".join([self.output, *map(str, parts)])

    def argv(self, trainer, config_trainer, cfg, dataset, seed, output_dir, *extra):
        """train.py's command line as scripts/_protocols.sh's train_py writes it."""
        head = ["--skip-finished", "--root", self.data]
        if seed is not None:
            head += ["--seed", str(seed)]
        return head + ["--trainer", trainer, "--dataset-config-file", self.dataset_config(dataset),
                       "--config-file", self.trainer_config(config_trainer, cfg), "--output-dir", output_dir,
                       *map(str, extra)]

    def test_argv(self, trainer, cfg, dataset, seed, output_dir, model_dir, load_epoch, *extra):
        epoch = TRAINED_EPOCH if load_epoch is None else str(load_epoch)
        return self.argv(trainer, trainer, cfg, dataset, seed, output_dir, "--model-dir", model_dir,
                         "--load-epoch", epoch, "--eval-only", *extra)


def plan(protocol, method, data, output, datasets=None, seeds=(1, 2, 3), shots=None, opts=(), variant=None,
         trainer=None, cfg=None, backbone=None, load_epoch=None, source="imagenet", repo=None):
    """The stages of a protocol (lists of Run). data: the data root (train.py --root); output: the output
    tree's root; opts: KEY VALUE options for every run; variant: None names the variant directory from
    `opts` as the scripts do, "" keeps the plain tree, a name gives `<CFG>+name` (the scripts' VARIANT);
    trainer, cfg: override the method's (the scripts' TRAINER, CFG); shots: base2new/xd/imagenet_dg one
    number (default 16), dg one number (default 5), fewshot a list (default 1 2 4 8 16); backbone: CoOp's
    and zero-shot CLIP's config family (rn50, vit_b16, ...); load_epoch: the scripts' LOADEP."""
    if protocol not in PROTOCOLS:
        raise ProtocolError(f"unknown protocol {protocol!r}; choose one of: {', '.join(PROTOCOLS)}")
    if method not in METHODS:
        raise ProtocolError(f"unknown method {method!r}; choose one of: {', '.join(sorted(METHODS))}")
    p = _Planner(repo, data, output, opts, variant)
    seeds = [int(s) for s in seeds]
    m_trainer, b2n_cfg, xd_cfg = METHODS[method]
    trainer = trainer or m_trainer
    shots_list = [int(s) for s in (shots if isinstance(shots, (list, tuple)) else [shots] if shots else [])]

    def one_shots(default):
        if len(shots_list) > 1:
            raise ProtocolError(f"the {protocol} protocol takes one shot count, got {shots_list}")
        return shots_list[0] if shots_list else default

    if method == "coop" and protocol in ("xd", "imagenet_dg"):
        return _coop_imagenet(p, protocol, datasets, seeds, cfg or f"{backbone or 'rn50'}_ep50", load_epoch)
    if protocol == "fewshot":
        if method != "coop":
            raise ProtocolError("the few-shot protocol has scripts for coop only (scripts/coop/main.sh)")
        return _coop_fewshot(p, datasets, seeds, shots_list or FEWSHOT_SHOTS, cfg, backbone or "rn50")
    if protocol == "zeroshot":
        if method != "zsclip":
            raise ProtocolError("the zero-shot protocol is zsclip's (scripts/zsclip/zeroshot.sh)")
        return _zeroshot(p, datasets, trainer, cfg or backbone or "vit_b16")
    if protocol == "dg":
        if method != "metaprompt":
            raise ProtocolError("the leave-one-domain-out DG protocol has scripts for metaprompt only")
        return _dg(p, datasets, seeds, one_shots(5), trainer, cfg or DG_CONFIG)
    if b2n_cfg is None:
        raise ProtocolError(f"{method} has no {protocol} protocol")
    k = one_shots(16)
    if protocol == "base2new":
        return _base2new(p, datasets, seeds, k, trainer, cfg or b2n_cfg, load_epoch)
    if xd_cfg is None:
        raise ProtocolError(f"{method} has no cross-dataset protocol; use dg")
    targets = datasets or (XD_TARGETS if protocol == "xd" else IMAGENET_VARIANTS)
    return _xd(p, targets, seeds, k, trainer, cfg or xd_cfg, load_epoch, source)


def _base2new(p, datasets, seeds, shots, trainer, cfg, load_epoch):
    train, test = [], []
    for d in datasets or BASE2NEW_DATASETS:
        for s in seeds:
            tail = f"{d}/shots_{shots}/{trainer}/{cfg}{p.suffix}/seed{s}"
            model_dir, out_dir = p.out("base2new/train_base", tail), p.out("base2new/test_new", tail)
            train.append(Run(f"{d}-seed{s}-train", p.argv(trainer, trainer, cfg, d, s, model_dir, "DATASET.NUM_SHOTS",
                                                            shots, "DATASET.SUBSAMPLE_CLASSES", "base", *p.opts),
                             model_dir))
            test.append(Run(f"{d}-seed{s}-test", p.test_argv(trainer, cfg, d, s, out_dir, model_dir, load_epoch,
                                                             "DATASET.NUM_SHOTS", shots, "DATASET.SUBSAMPLE_CLASSES",
                                                             "new", *p.opts),
                            out_dir, after=[f"{d}-seed{s}-train"]))
    return [train, test]


def _xd(p, targets, seeds, shots, trainer, cfg, load_epoch, source):
    folder = f"{trainer}/{cfg}_{shots}shots{p.suffix}"
    train, test = [], []
    for s in seeds:
        model_dir = p.out(source, folder, f"seed{s}")
        train.append(Run(f"{source}-seed{s}-train", p.argv(trainer, trainer, cfg, source, s, model_dir,
                                                           "DATASET.NUM_SHOTS", shots, *p.opts), model_dir))
        for d in targets:
            out_dir = p.out("evaluation", folder, d, f"seed{s}")
            test.append(Run(f"{d}-seed{s}-test", p.test_argv(trainer, cfg, d, s, out_dir, model_dir, load_epoch,
                                                             *p.opts), out_dir, after=[f"{source}-seed{s}-train"]))
    return [train, test]


def _coop_options(ctp, nctx, csc):
    return ["TRAINER.COOP.N_CTX", nctx, "TRAINER.COOP.CSC", csc, "TRAINER.COOP.CLASS_TOKEN_POSITION", ctp]


def _coop_folder(cfg, shots, p, ctp, nctx, csc):
    return f"CoOp/{cfg}_{shots}shots/nctx{nctx}_csc{csc}_ctp{ctp}{p.suffix}"


def _coop_fewshot(p, datasets, seeds, shots_list, cfg, backbone):
    """scripts/coop/main.sh DATASET CFG end 16 SHOTS False, per dataset and shot count."""
    runs = []
    for d in datasets or BASE2NEW_DATASETS:
        for k in shots_list:
            config = cfg or coop_config(backbone, k, d)
            for s in seeds:
                out_dir = p.out(d, _coop_folder(config, k, p, **COOP_CONTEXT), f"seed{s}")
                runs.append(Run(f"{d}-{k}shots-seed{s}", p.argv(
                    "CoOp", "CoOp", config, d, s, out_dir, *_coop_options(**COOP_CONTEXT), "DATASET.NUM_SHOTS", k,
                    *p.opts), out_dir))
    return [runs]


def _coop_imagenet(p, protocol, datasets, seeds, cfg, load_epoch):
    """CoOp's ImageNet models (main.sh imagenet CFG end 16 16 False) on other datasets (eval.sh)."""
    folder = _coop_folder(cfg, 16, p, **COOP_CONTEXT)
    context = _coop_options(**COOP_CONTEXT)
    train, test = [], []
    for s in seeds:
        model_dir = p.out("imagenet", folder, f"seed{s}")
        train.append(Run(f"imagenet-seed{s}-train", p.argv("CoOp", "CoOp", cfg, "imagenet", s, model_dir, *context,
                                                           "DATASET.NUM_SHOTS", 16, *p.opts), model_dir))
        for d in datasets or (XD_TARGETS if protocol == "xd" else IMAGENET_VARIANTS):
            out_dir = p.out("evaluation", folder, d, f"seed{s}")
            test.append(Run(f"{d}-seed{s}-test", p.test_argv("CoOp", cfg, d, s, out_dir, model_dir, load_epoch,
                                                             *context, *p.opts),
                            out_dir, after=[f"imagenet-seed{s}-train"]))
    return [train, test]


def _zeroshot(p, datasets, trainer, cfg):
    """scripts/zsclip/zeroshot.sh DATASET CFG: no seed, no training (configs/trainers/CoOp/CFG.yaml)."""
    runs = []
    for d in datasets or BASE2NEW_DATASETS + IMAGENET_VARIANTS:
        out_dir = p.out(trainer, f"{cfg}{p.suffix}", d)
        runs.append(Run(d, p.argv(trainer, "CoOp", cfg, d, None, out_dir, "--eval-only", *p.opts), out_dir))
    return [runs]


def _dg(p, datasets, seeds, shots, trainer, cfg):
    """scripts/metaprompt/dg.sh DATASET TARGET SEED SHOTS: each held-out domain x seed."""
    runs = []
    for d in datasets or list(DG_DOMAINS):
        if d not in DG_DOMAINS:
            raise ProtocolError(f"unknown DG dataset {d!r}; choose one of: {' '.join(DG_DOMAINS)}")
        for t in DG_DOMAINS[d]:
            for s in seeds:
                out_dir = p.out("dg", d, f"shots_{shots}", trainer, f"{cfg}{p.suffix}", t, f"seed{s}")
                argv = p.argv(trainer, trainer, cfg, d, s, out_dir, "DATASET.NUM_SHOTS", shots, *p.opts)
                i = argv.index("--output-dir")  # dg_train passes --target-domains before --output-dir
                runs.append(Run(f"{d}-{t}-seed{s}", argv[:i] + ["--target-domains", t] + argv[i:], out_dir))
    return [runs]


# ------------------------------------------------------------------------------------------ execution
def trained_epoch(model_dir):
    """The epoch the finished training run in model_dir saved last (its `<name>/checkpoint` pointer)."""
    if not os.path.isdir(model_dir):
        raise ProtocolError(f"no trained model at {model_dir}: run the training first")
    if not os.path.isfile(os.path.join(model_dir, "result.json")):
        raise ProtocolError(f"the training run in {model_dir} has not finished (no result.json): run it again to "
                            "resume it")
    pointers = sorted(glob.glob(os.path.join(glob.escape(model_dir), "*", "checkpoint")))
    if not pointers:
        raise ProtocolError(f"no checkpoint pointer (<name>/checkpoint) in {model_dir}")
    with open(pointers[0]) as f:
        name = f.readline().strip()
    return name.rsplit("-", 1)[-1]


def resolve_argv(argv):
    """A run's argv with TRAINED_EPOCH replaced by the epoch its --model-dir's training run saved."""
    argv = list(argv)
    if TRAINED_EPOCH in argv:
        argv[argv.index(TRAINED_EPOCH)] = trained_epoch(argv[argv.index("--model-dir") + 1])
    return argv


def all_runs(stages):
    return [run for stage in stages for run in stage]
