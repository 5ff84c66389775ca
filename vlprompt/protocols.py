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
                 (PromptSRC's: its few-shot config, on all classes, tested on the test set)
DePT's methods (coop_dept, ...: its runner's config names) write its runner's tree under base2new/<runner>/.
    zeroshot     zero-shot CLIP evaluated on each dataset (one stage)

The epoch a test loads is the one its training run saved last; it is not known when planning (the
training has not run), so a test's RunSpec holds TRAINED_EPOCH as its load_epoch, and the launcher
calls `resolve_spec` just before running it: it reads the training run's `<name>/checkpoint` pointer,
as scripts/_protocols.sh does (`load_epoch=` plans a given epoch instead, like the scripts' LOADEP).

This module imports neither torch nor CLIP (`vlprompt run --status` plans without them).
"""
import glob
import os

from .errors import UserError
from .run_identity import variant_name
from .run_spec import TRAINED_EPOCH, Run, RunSpec

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
    "kgcoop": ("KgCoOp", "vit_b16_ep100_ctxv1", "vit_b16_ep100_ctxv1"),  # its configs hold W 8.0 (docs/KGCOOP.md)
    "prograd": ("ProGrad", "vit_b16_ep100_ctxv1", "vit_b16_ep100_ctxv1"),  # few-shot: CoOp's main.sh (docs/PROGRAD.md)
    "coop": ("CoOp", None, None),               # fewshot (scripts/coop/main.sh), xd / imagenet_dg (eval.sh)
    "zsclip": ("ZeroshotCLIP", None, None),     # zeroshot (scripts/zsclip/zeroshot.sh)
    "promptsrc": ("PromptSRC", "vit_b16_c2_ep20_batch4_4+4ctx", "vit_b16_c2_ep20_batch4_4+4ctx_cross_datasets"),
    # DePT: the names of its runner's configs (parallel_runner.py --cfg coop_dept), one config for both protocols
    "coop_dept": ("ExtrasLinearProbeCoOp", "vit_b16_ep10_bs4_lr35", "vit_b16_ep10_bs4_lr35"),
    "cocoop_dept": ("ExtrasLinearProbeCoCoOp", "vit_b16_c4_ep10_batch1_ctxv1", "vit_b16_c4_ep10_batch1_ctxv1"),
    "kgcoop_dept": ("ExtrasLinearProbeKgCoOp", "vit_b16_ep10_ctxv1_bs4_lr35", "vit_b16_ep10_ctxv1_bs4_lr35"),
    "maple_dept": ("ExtrasLinearProbeMaPLe", "vit_b16_c2_ep10_batch4_2ctx", "vit_b16_c2_ep10_batch4_2ctx"),
}
# Methods whose runs use DePT's runner's output tree (its train_base/test_new folders under base2new/<runner>/).
DEPT_RUNNERS = ("coop_dept", "cocoop_dept", "kgcoop_dept", "maple_dept")
# Few-shot protocols other than CoOp's: the method's config, and per-dataset options its README prescribes
# (PromptSRC's few-shot config: GPA mean 30 / std 30, but 45 / 5 for these five datasets).
FEWSHOT_CONFIGS = {"promptsrc": "vit_b16_c2_ep50_batch4_4+4ctx_few_shot"}
FEWSHOT_DATASET_OPTIONS = {
    "promptsrc": {d: ["TRAINER.PROMPTSRC.GPA_MEAN", "45", "TRAINER.PROMPTSRC.GPA_STD", "5"]
                  for d in ("stanford_cars", "oxford_flowers", "fgvc_aircraft", "dtd", "eurosat")},
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
FEWSHOT_METHODS = ("coop", "prograd")  # CoOp's few-shot protocol and script (ProGrad's prograd.sh is its main.sh)
# CoOp: M=16 context tokens, shared (CSC False), class token at the end (the originals' main table)
COOP_CONTEXT = {"ctp": "end", "nctx": 16, "csc": False}


class ProtocolError(UserError, ValueError):
    pass


def dg_domains(dataset):
    """The domains of a leave-one-domain-out DG dataset (its config name), in the readers' order."""
    if dataset not in DG_DOMAINS:
        raise ProtocolError(f"unknown DG dataset {dataset!r}; choose one of: {' '.join(DG_DOMAINS)}")
    return DG_DOMAINS[dataset]


def fewshot_options(method, dataset, cfg):
    """The options a method's few-shot protocol adds for a dataset (only with its own few-shot config)."""
    if cfg != FEWSHOT_CONFIGS.get(method):
        return []
    return list(FEWSHOT_DATASET_OPTIONS.get(method, {}).get(dataset, []))


def coop_config(backbone, shots, dataset):
    """CoOp's config per shot count (COOP.md): 1 shot *_ep50, 2 and 4 shots *_ep100, 8 and 16 shots the
    200-epoch config; ImageNet *_ep50 throughout."""
    if dataset == "imagenet" or shots == 1:
        return f"{backbone}_ep50"
    return f"{backbone}_ep100" if shots in (2, 4) else backbone


def variant_suffix(opts, variant=None):
    """The suffix of a variant's config folder: `variant` None names it from the KEY VALUE options as the
    scripts do (VARIANT unset), "" keeps the plain tree, a name gives "+name" (the scripts' VARIANT)."""
    opts = [str(o) for o in opts]
    if variant is not None and ("/" in variant or variant.startswith(".")):
        raise ProtocolError(f"VARIANT={variant}: a variant name is one folder-name part (no '/', not starting "
                            "with '.')")
    if len(opts) % 2:
        raise ProtocolError(f"options must be KEY VALUE pairs; got an odd number: {' '.join(opts)}")
    if variant is None:
        return variant_name(opts)
    return f"+{variant}" if variant else ""


class Planner:
    """Builds the runs of the protocols: one method per kind of run, each the train.py command line and output
    directory of one script of scripts/ (named in its docstring). The plans below and the scripts
    (vlprompt.script_jobs) both build their runs here.

    data: train.py's --root; output: the output tree's root; opts: KEY VALUE options for every run; variant:
    None names the variant directory from `opts` as the scripts do, "" keeps the plain tree, a name gives
    `<CFG>+name` (the scripts' VARIANT)."""

    def __init__(self, repo, data, output, opts=(), variant=None):
        from .plugins import find_codebase

        self.repo = find_codebase("train.py", repo, "vlprompt's codebase (train.py and configs/)")
        self.data, self.output = data, os.path.abspath(output)
        self.opts = [str(o) for o in opts]
        self.suffix = variant_suffix(self.opts, variant)

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

    def spec(self, trainer, config_trainer, cfg, dataset, seed, output_dir, *opts, **flags):
        """One run of a script (a finished one is skipped); opts: KEY VALUE options; flags: other RunSpec fields."""
        return RunSpec(trainer=trainer, config_file=self.trainer_config(config_trainer, cfg),
                       dataset_config_file=self.dataset_config(dataset), output_dir=output_dir, root=self.data,
                       seed=-1 if seed is None else int(seed), opts=tuple(str(o) for o in opts), skip_finished=True,
                       **flags)

    def test_spec(self, trainer, cfg, dataset, seed, output_dir, model_dir, load_epoch, *opts):
        """An evaluation of the model in model_dir (load_epoch None: the epoch its training run saved last)."""
        epoch = TRAINED_EPOCH if load_epoch is None else int(load_epoch)
        return self.spec(trainer, trainer, cfg, dataset, seed, output_dir, *opts, model_dir=model_dir,
                         load_epoch=epoch, eval_only=True)

    # base-to-new (scripts/<method>/base2new_*.sh) ----------------------------------------------------
    def b2n_tail(self, trainer, cfg, dataset, seed, shots):
        return f"{dataset}/shots_{shots}/{trainer}/{cfg}{self.suffix}/seed{seed}"

    def b2n_dirs(self, trainer, cfg, dataset, seed, shots, runner=None):
        """(training dir, test dir): the originals' tree, or with `runner` (a DePT runner config, e.g. coop_dept)
        DePT's: base2new/<runner>/{train_base,test_new}/<TRAINER>/<dataset>/shots<S>/<CFG>/seed<S>."""
        if runner:
            tail = f"{trainer}/{dataset}/shots{shots}/{cfg}{self.suffix}/seed{seed}"
            return self.out("base2new", runner, "train_base", tail), self.out("base2new", runner, "test_new", tail)
        tail = self.b2n_tail(trainer, cfg, dataset, seed, shots)
        return self.out("base2new/train_base", tail), self.out("base2new/test_new", tail)

    def base2new_train(self, trainer, cfg, dataset, seed, shots=16, runner=None):
        """base2new_train.sh: 16-shot training on the base classes; its final test is the base accuracy."""
        out_dir = self.b2n_dirs(trainer, cfg, dataset, seed, shots, runner)[0]
        return Run(f"{dataset}-seed{seed}-train", self.spec(
            trainer, trainer, cfg, dataset, seed, out_dir, "DATASET.NUM_SHOTS", shots, "DATASET.SUBSAMPLE_CLASSES",
            "base", *self.opts))

    def base2new_test(self, trainer, cfg, dataset, seed, shots=16, load_epoch=None, runner=None):
        """base2new_test.sh: the base-trained model evaluated on the new classes."""
        model_dir, out_dir = self.b2n_dirs(trainer, cfg, dataset, seed, shots, runner)
        return Run(f"{dataset}-seed{seed}-test", self.test_spec(
            trainer, cfg, dataset, seed, out_dir, model_dir, load_epoch, "DATASET.NUM_SHOTS", shots,
            "DATASET.SUBSAMPLE_CLASSES", "new", *self.opts), after=[f"{dataset}-seed{seed}-train"])

    # cross-dataset and ImageNet DG (xd_*.sh) -------------------------------------------------------
    def xd_folder(self, trainer, cfg, shots):
        return f"{trainer}/{cfg}_{shots}shots{self.suffix}"

    def xd_dirs(self, trainer, cfg, dataset, seed, shots, runner=None, source=None):
        """The folder of a run on `dataset`: the source's training (source None) or a target's test. With a DePT
        runner config its tail is DePT's <TRAINER>/<dataset>/shots<S>/<CFG>/seed<S> (under imagenet/<runner>/ and
        evaluation/<runner>/, where the tables look for sources and targets)."""
        if runner:
            tail = f"{trainer}/{dataset}/shots{shots}/{cfg}{self.suffix}/seed{seed}"
            return self.out(dataset, runner, tail) if source is None else self.out("evaluation", runner, tail)
        folder = self.xd_folder(trainer, cfg, shots)
        if source is None:
            return self.out(dataset, folder, f"seed{seed}")
        return self.out("evaluation", folder, dataset, f"seed{seed}")

    def xd_train(self, trainer, cfg, source, seed, shots=16, runner=None, extra=()):
        """xd_train.sh: training on all classes of the source dataset (ImageNet). extra: options before the
        user's (a few-shot protocol's per-dataset ones)."""
        out_dir = self.xd_dirs(trainer, cfg, source, seed, shots, runner)
        subsample = ["DATASET.SUBSAMPLE_CLASSES", "all"] if runner else []  # DePT's runner says so
        return Run(f"{source}-seed{seed}-train", self.spec(trainer, trainer, cfg, source, seed, out_dir,
                                                           "DATASET.NUM_SHOTS", shots, *subsample, *extra, *self.opts))

    def xd_test(self, trainer, cfg, target, seed, shots=16, load_epoch=None, source="imagenet", runner=None):
        """xd_test.sh: the source model on all classes and the whole test set of another dataset."""
        model_dir = self.xd_dirs(trainer, cfg, source, seed, shots, runner)
        out_dir = self.xd_dirs(trainer, cfg, target, seed, shots, runner, source=source)
        extra = ["DATASET.NUM_SHOTS", shots, "DATASET.SUBSAMPLE_CLASSES", "all"] if runner else []
        return Run(f"{target}-seed{seed}-test", self.test_spec(trainer, cfg, target, seed, out_dir, model_dir,
                                                               load_epoch, *extra, *self.opts),
                   after=[f"{source}-seed{seed}-train"])

    # CoOp (scripts/coop/main.sh, eval.sh; ProGrad's main.sh is CoOp's with its trainer) ----------------
    def coop_folder(self, cfg, shots, ctp, nctx, csc, trainer="CoOp"):
        return f"{trainer}/{cfg}_{shots}shots/nctx{nctx}_csc{csc}_ctp{ctp}{self.suffix}"

    def coop_train(self, dataset, cfg, seed, shots, ctp="end", nctx=16, csc=False, trainer="CoOp"):
        """main.sh DATASET CFG CTP NCTX SHOTS CSC, one seed: few-shot training, then the test set."""
        out_dir = self.out(dataset, self.coop_folder(cfg, shots, ctp, nctx, csc, trainer), f"seed{seed}")
        return Run(f"{dataset}-{shots}shots-seed{seed}", self.spec(
            trainer, trainer, cfg, dataset, seed, out_dir, *_coop_options(ctp, nctx, csc), "DATASET.NUM_SHOTS", shots,
            *self.opts))

    def coop_test(self, dataset, cfg, seed, load_epoch=None, ctp="end", nctx=16, csc=False, shots=16):
        """eval.sh DATASET CFG, one seed: the ImageNet model trained with `shots` (SHOTS, default 16: main.sh
        imagenet CFG end 16 16 False)."""
        folder = self.coop_folder(cfg, shots, ctp, nctx, csc)
        model_dir, out_dir = self.out("imagenet", folder, f"seed{seed}"), self.out("evaluation", folder, dataset,
                                                                                  f"seed{seed}")
        return Run(f"{dataset}-seed{seed}-test", self.test_spec(
            "CoOp", cfg, dataset, seed, out_dir, model_dir, load_epoch, *_coop_options(ctp, nctx, csc), *self.opts),
            after=[f"imagenet-{shots}shots-seed{seed}"])

    # zero-shot CLIP (scripts/zsclip/zeroshot.sh) -----------------------------------------------------
    def zeroshot(self, trainer, cfg, dataset):
        """zeroshot.sh DATASET CFG: no seed, no training (configs/trainers/CoOp/CFG.yaml)."""
        out_dir = self.out(trainer, f"{cfg}{self.suffix}", dataset)
        return Run(dataset, self.spec(trainer, "CoOp", cfg, dataset, None, out_dir, *self.opts, eval_only=True))

    # leave-one-domain-out DG (scripts/metaprompt/dg.sh) ----------------------------------------------
    def dg_train(self, trainer, cfg, dataset, target, seed, shots):
        """dg.sh DATASET TARGET SEED SHOTS: training on the other domains; its final test is the held-out one."""
        domains = dg_domains(dataset)
        if target not in domains:
            raise ProtocolError(f"{target!r} is not a domain of {dataset}; choose one of: {' '.join(domains)}")
        out_dir = self.out("dg", dataset, f"shots_{shots}", trainer, f"{cfg}{self.suffix}", target, f"seed{seed}")
        return Run(f"{dataset}-{target}-seed{seed}", self.spec(trainer, trainer, cfg, dataset, seed, out_dir,
                                                               "DATASET.NUM_SHOTS", shots, *self.opts,
                                                               target_domains=(target,)))

    # released weights (scripts/<method>/reproduce*.sh) -----------------------------------------------
    # Their evaluations get a tree of their own, OUTPUT/released/..., laid out as your own runs' tree, so the
    # two never share (or refuse each other's) folders; `vlprompt results` reads both and never mixes them.
    def released_base2new(self, trainer, cfg, dataset, seed, model_dir, epoch, shots=16):
        """reproduce.sh: a released base-class model evaluated on the base and on the new classes."""
        tail = self.b2n_tail(trainer, cfg, dataset, seed, shots)
        return [Run(f"{dataset}-seed{seed}-test-{sub}", self.test_spec(
            trainer, cfg, dataset, seed, self.out(f"released/base2new/test_{sub}", tail), model_dir, epoch,
            "DATASET.NUM_SHOTS", shots, "DATASET.SUBSAMPLE_CLASSES", sub, *self.opts)) for sub in ("base", "new")]

    def released_fewshot(self, trainer, cfg, dataset, seed, shots, model_dir, epoch):
        """reproduce_few_shot.sh (PromptSRC): a released K-shot model on its dataset's test set
        (released/few_shot/<dataset>/<TRAINER>/<CFG>_<K>shots/seed<S>)."""
        out_dir = self.out("released/few_shot", dataset, self.xd_folder(trainer, cfg, shots), f"seed{seed}")
        return Run(f"{dataset}-{shots}shots-seed{seed}-test", self.test_spec(
            trainer, cfg, dataset, seed, out_dir, model_dir, epoch, "DATASET.NUM_SHOTS", shots, *self.opts))

    def released_xd(self, trainer, cfg, dataset, seed, model_dir, epoch, shots=16):
        """reproduce_xd.sh: a released ImageNet model on all classes of a dataset."""
        out_dir = self.out("released/evaluation", self.xd_folder(trainer, cfg, shots), dataset, f"seed{seed}")
        return Run(f"{dataset}-seed{seed}-test", self.test_spec(trainer, cfg, dataset, seed, out_dir, model_dir, epoch,
                                                                *self.opts))


def plan(protocol, method, data, output, datasets=None, seeds=(1, 2, 3), shots=None, opts=(), variant=None,
         trainer=None, cfg=None, backbone=None, load_epoch=None, source="imagenet", repo=None):
    """The stages of a protocol (lists of Run). data, output, opts, variant: as Planner's; trainer, cfg:
    override the method's (the scripts' TRAINER, CFG); shots: base2new/xd/imagenet_dg one number (default
    16), dg one number (default 5), fewshot a list (default 1 2 4 8 16); backbone: CoOp's and zero-shot
    CLIP's config family (rn50, vit_b16, ...); load_epoch: the scripts' LOADEP."""
    if protocol not in PROTOCOLS:
        raise ProtocolError(f"unknown protocol {protocol!r}; choose one of: {', '.join(PROTOCOLS)}")
    if method not in METHODS:
        raise ProtocolError(f"unknown method {method!r}; choose one of: {', '.join(sorted(METHODS))}")
    p = Planner(repo, data, output, opts, variant)
    seeds = [int(s) for s in seeds]
    m_trainer, b2n_cfg, xd_cfg = METHODS[method]
    trainer = trainer or m_trainer
    shots_list = [int(s) for s in (shots if isinstance(shots, (list, tuple)) else [shots] if shots else [])]

    def one_shots(default):
        if len(shots_list) > 1:
            raise ProtocolError(f"the {protocol} protocol takes one shot count, got {shots_list}")
        return shots_list[0] if shots_list else default

    if method == "coop" and protocol in ("xd", "imagenet_dg"):
        targets = datasets or (XD_TARGETS if protocol == "xd" else IMAGENET_VARIANTS)
        config = cfg or f"{backbone or 'rn50'}_ep50"
        return [[p.coop_train("imagenet", config, s, 16, **COOP_CONTEXT) for s in seeds],
                [p.coop_test(d, config, s, load_epoch, **COOP_CONTEXT) for s in seeds for d in targets]]
    if protocol == "fewshot" and method in FEWSHOT_CONFIGS:  # e.g. scripts/promptsrc/few_shot.sh
        config = cfg or FEWSHOT_CONFIGS[method]
        return [[p.xd_train(trainer, config, d, s, k, extra=fewshot_options(method, d, config))
                 for d in datasets or BASE2NEW_DATASETS for k in shots_list or FEWSHOT_SHOTS for s in seeds]]
    if protocol == "fewshot":
        if method not in FEWSHOT_METHODS:
            raise ProtocolError(f"the few-shot protocol has scripts for {' and '.join(FEWSHOT_METHODS)} only "
                                "(scripts/<method>/main.sh), and promptsrc's (scripts/promptsrc/few_shot.sh)")
        return [[p.coop_train(d, cfg or coop_config(backbone or "rn50", k, d), s, k, trainer=trainer, **COOP_CONTEXT)
                 for d in datasets or BASE2NEW_DATASETS for k in shots_list or FEWSHOT_SHOTS for s in seeds]]
    if protocol == "zeroshot":
        if method != "zsclip":
            raise ProtocolError("the zero-shot protocol is zsclip's (scripts/zsclip/zeroshot.sh)")
        return [[p.zeroshot(trainer, cfg or backbone or "vit_b16", d)
                 for d in datasets or BASE2NEW_DATASETS + IMAGENET_VARIANTS]]
    if protocol == "dg":
        if method != "metaprompt":
            raise ProtocolError("the leave-one-domain-out DG protocol has scripts for metaprompt only")
        k, config = one_shots(5), cfg or DG_CONFIG
        return [[p.dg_train(trainer, config, d, t, s, k)
                 for d in datasets or list(DG_DOMAINS) for t in dg_domains(d) for s in seeds]]
    if b2n_cfg is None:
        raise ProtocolError(f"{method} has no {protocol} protocol")
    k = one_shots(16)
    runner = method if method in DEPT_RUNNERS else None
    if protocol == "base2new":
        config = cfg or b2n_cfg
        pairs = [(d, s) for d in datasets or BASE2NEW_DATASETS for s in seeds]
        return [[p.base2new_train(trainer, config, d, s, k, runner) for d, s in pairs],
                [p.base2new_test(trainer, config, d, s, k, load_epoch, runner) for d, s in pairs]]
    if xd_cfg is None:
        raise ProtocolError(f"{method} has no cross-dataset protocol; use dg")
    config = cfg or xd_cfg
    targets = datasets or (XD_TARGETS if protocol == "xd" else IMAGENET_VARIANTS)
    return [[p.xd_train(trainer, config, source, s, k, runner) for s in seeds],
            [p.xd_test(trainer, config, t, s, k, load_epoch, source, runner) for s in seeds for t in targets]]


def _coop_options(ctp, nctx, csc):
    return ["TRAINER.COOP.N_CTX", nctx, "TRAINER.COOP.CSC", csc, "TRAINER.COOP.CLASS_TOKEN_POSITION", ctp]


# ------------------------------------------------------------------------------------------ execution
def _pointed_checkpoint(model_dir):
    """(folder, file name) that a run folder's first `<name>/checkpoint` pointer names, or None."""
    pointers = sorted(glob.glob(os.path.join(glob.escape(model_dir), "*", "checkpoint")))
    if not pointers:
        return None
    with open(pointers[0]) as f:
        return os.path.dirname(pointers[0]), f.readline().strip()


def trained_epoch(model_dir, suffix=""):
    """The epoch the finished training run in model_dir saved last (its `<name>/checkpoint` pointer). suffix:
    the variant suffix of model_dir's config folder, to name the variants that were trained when it was not."""
    if not os.path.isdir(model_dir):
        cfg_dir, seed_dir = os.path.split(model_dir.rstrip("/"))
        parent, folder = os.path.split(cfg_dir)
        stem = folder[:-len(suffix)] if suffix and folder.endswith(suffix) else folder
        others = sorted(name for name in (os.listdir(parent) if os.path.isdir(parent) else [])
                        if name != folder and (name == stem or name.startswith(stem + "+"))
                        and os.path.isdir(os.path.join(parent, name, seed_dir)))
        if others:
            raise ProtocolError(f"no trained model at {model_dir}, but variants of it were trained: {' '.join(others)}."
                                " Pass the KEY VALUE options they were trained with (or VARIANT=<name>)")
        raise ProtocolError(f"no trained model at {model_dir}: run the training script first")
    if not os.path.isfile(os.path.join(model_dir, "result.json")):
        raise ProtocolError(f"the training run in {model_dir} has not finished (no result.json): run the training "
                            "script again to resume it, or set LOADEP to evaluate a given epoch")
    pointed = _pointed_checkpoint(model_dir)
    if pointed is None:
        raise ProtocolError(f"no checkpoint pointer (<name>/checkpoint) in {model_dir}")
    return pointed[1].rsplit("-", 1)[-1]


def released_epoch(model_dir):
    """The epoch of the checkpoint a released run folder holds: its `<Name>/checkpoint` pointer when the file
    it names exists, else its highest `<Name>/model.pth.tar-N`."""
    pointed = _pointed_checkpoint(model_dir)
    if pointed is not None and pointed[1] and os.path.isfile(os.path.join(*pointed)):
        return pointed[1].rsplit("-", 1)[-1]
    files = glob.glob(os.path.join(glob.escape(model_dir), "*", "model.pth.tar-*"))
    epochs = [int(e) for e in (path.rsplit("-", 1)[-1] for path in files if os.path.isfile(path)) if e.isdigit()]
    if not epochs:
        raise ProtocolError(f"no checkpoint in {model_dir}: expected {model_dir}/<Name>/model.pth.tar-N (Name: "
                            "MultiModalPromptLearner, VLPromptLearner or prompt_learner)")
    return str(max(epochs))


def resolve_spec(spec, suffix=""):
    """A run's spec with TRAINED_EPOCH replaced by the epoch its model_dir's training run saved (suffix: as
    trained_epoch's)."""
    if spec.load_epoch == TRAINED_EPOCH:
        return spec.replace(load_epoch=int(trained_epoch(spec.model_dir, suffix)))
    return spec


def resolve_argv(argv, suffix=""):
    """resolve_spec for a train.py command line."""
    argv = list(argv)
    if TRAINED_EPOCH in argv:
        argv[argv.index(TRAINED_EPOCH)] = trained_epoch(argv[argv.index("--model-dir") + 1], suffix)
    return argv


def all_runs(stages):
    return [run for stage in stages for run in stage]
