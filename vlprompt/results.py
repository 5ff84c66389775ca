"""Tables built from the `result.json` files that every test writes (never from log lines).

    vlprompt results base2new OUTPUT [--trainer MaPLe] [--config CFG] [--shots K] [--paper MaPLe] [--out DIR]
    vlprompt results xd OUTPUT [--trainer MaPLe]
    vlprompt results dg OUTPUT [--trainer MetaPrompt]
    vlprompt results fewshot OUTPUT [--trainer CoOp]
    vlprompt results zeroshot OUTPUT

Every result under OUTPUT is read once and sorted into the protocols by its identity (vlprompt.run_identity),
not by its folder, so the released-weight tree (OUTPUT/released) and your own runs are found alike, and
never averaged together. Results are grouped by what they measure: method, config, the shots the model was
trained with, the variant fingerprint (for an evaluation, that of the model it loads: an evaluation carries
its training identity) and the model's origin (trained here, released weights). A group is one table; a
cell is the mean over seeds; a seed with disagreeing duplicates is left out and named.

Base-to-new: per dataset the mean over seeds of the base accuracy (the final test of the training run on
the base classes, or a released model's test_base) and of the new accuracy (test_new), over the seeds that
have both (the others are named), their harmonic mean, and the average row: the HM of the averaged base and
new, as the papers compute it (averaging the per-dataset HMs is the known mistake). Cross-dataset: the
source's accuracy and each target's. Few-shot: accuracy against shots per dataset, next to zero-shot CLIP,
in CoOp's style. Each table is printed and written as Markdown and CSV, with its figure (PNG, PDF and SVG,
drawn by vlprompt.figures) next to them, in files named by what tells the group apart.
"""
import csv
import glob
import hashlib
import io
import json
import os
import re
from collections import defaultdict
from statistics import mean, pstdev

from .fileio import atomic_write, remove_stale_temp_files
from .paper_numbers import (BASE2NEW, BASE2NEW_DATASETS, DG, DG_TARGETS, XD_TARGETS, default_paper_entry,
                            harmonic_mean)
from .run_identity import (DATA_KEYS, IDENTITY_FORMAT, _digest, _matches, differences, is_bookkeeping,
                           overrides_as_pairs, trained_model, upgrade, variant_fingerprint)

ZERO_SHOT_TRAINERS = ("ZeroshotCLIP", "ZeroshotCLIP2")
KINDS = ("base2new", "xd", "dg", "fewshot", "zeroshot")


# ------------------------------------------------------------------------------------------ reading
def _upgrade_scope():
    """The ConfigScope for reading format-1 identities (they hashed every method's keys): the registered
    trainers and datasets of the codebase (vlprompt.plugins), or None where they cannot be imported."""
    try:
        from .config import config_scope
        from .plugins import find_codebase, load_codebase

        load_codebase(find_codebase("trainers", what="the codebase's trainers/"))
        return config_scope()
    except Exception:  # noqa: BLE001 (without them, format-1 runs are compared among themselves)
        return None


def load_results(root, out=print):
    """Every result.json under root that records its run identity (format 1 upgraded), with its path.
    Files without an identity (written by a codebase's own train.py) are named and left out."""
    found, unidentified, old = [], [], []
    for path in sorted(glob.glob(os.path.join(glob.escape(root), "**", "result.json"), recursive=True)):
        try:
            with open(path) as f:
                result = json.load(f)
        except (OSError, json.JSONDecodeError) as e:
            out(f"WARNING: cannot read {path} ({e}); skipped")
            continue
        if not isinstance(result, dict) or not isinstance(result.get("identity"), dict) \
                or "fingerprint" not in result["identity"] or not isinstance(result.get("metrics"), dict):
            unidentified.append(path)
            continue
        if result["identity"].get("format", 1) < IDENTITY_FORMAT:
            old.append(result)
        result["_path"] = path
        found.append(result)
    if old:
        scope = _upgrade_scope()
        for result in old:
            result["identity"] = upgrade(result["identity"], scope, result)
    if unidentified:
        out(f"WARNING: {len(unidentified)} result.json without a run identity (written by a codebase's own train.py, "
            "not vlprompt's) left out: " + ", ".join(unidentified[:3]) + (" ..." if len(unidentified) > 3 else ""))
    return found


def _origin(identity):
    """Whose model a result measures: trained here ("trained"), or loaded from a folder without an identity
    (released weights, another codebase's run: "released"). Never averaged together."""
    if identity.get("kind") == "eval" and identity.get("model") and not trained_model(identity):
        return "released"
    return "trained"


def _trained(r, field):
    """A field of the model a result measures: an evaluation's from its training identity where known."""
    ident = r["identity"]
    trained = trained_model(ident) if ident.get("kind") == "eval" else None
    if trained and field in trained:
        return trained[field]
    return ident.get(field)


def _shots(r):
    return _trained(r, "shots")


def _seed(r):
    return _trained(r, "seed")


def _select(results, trainer=None, config=None, shots=None):
    return [r for r in results if (trainer is None or r["identity"].get("trainer") == trainer)
            and (config is None or r["identity"].get("config") == config)
            and (shots is None or _shots(r) == shots)]


def _variant_label(identity):
    """The KEY VALUE options that make this variant, as given (the scripts' own DATASET.* options left out)."""
    pairs = overrides_as_pairs(identity.get("overrides"))
    return " ".join(f"{k}={v}" for k, v in pairs if not k.startswith("DATASET.") and not is_bookkeeping(k))


def _group(results, key_of=None):
    """Results that may be averaged together: same trainer, config, shots, variant fingerprint and model
    origin (key_of overrides the key). Returns {key: [results]} and, per key, a label that tells groups of
    the same method and config apart."""
    key_of = key_of or (lambda r: (r["identity"].get("trainer"), r["identity"].get("config"), _shots(r),
                                   variant_fingerprint(r["identity"]), _origin(r["identity"])))
    groups = defaultdict(list)
    for r in results:
        groups[key_of(r)].append(r)
    labels = {}
    by_name = defaultdict(list)
    for key, runs in groups.items():
        label = _variant_label(runs[0]["identity"])
        if key[4] == "released":
            label = (label + " " if label else "") + "[released weights]"
        labels[key] = label
        by_name[(key[0], key[1], key[2], label)].append(key)
    for same_name in by_name.values():  # same options, different results-relevant settings: say which
        if len(same_name) > 1:
            reference = groups[same_name[0]][0]["identity"]
            for key in same_name:
                other = groups[key][0]["identity"]
                diff = differences(reference, other, ignore=DATA_KEYS)
                diff = [d for d in diff if not d.startswith(("evaluated model", "kind of run"))]
                tag = "; ".join(diff[:3]) if diff else "reference"
                labels[key] = (labels[key] + " " if labels[key] else "") + f"[{key[3][:8]}: {tag}]"
    return groups, labels


def _per_seed(runs, what, notes):
    """{seed: result} for one cell; a seed with several results is used only if they agree, and named."""
    by_seed = defaultdict(list)
    for r in runs:
        by_seed[_seed(r)].append(r)
    chosen = {}
    for seed, items in sorted(by_seed.items(), key=lambda kv: str(kv[0])):
        if len(items) > 1:
            values = {_accuracy(r) for r in items}
            paths = ", ".join(os.path.relpath(r["_path"]) for r in items)
            if len(values) > 1:
                notes.append(f"{what}: seed {seed} has {len(items)} results that differ ({paths}): left out until "
                             "the stale one is removed")
                continue
            notes.append(f"{what}: seed {seed} has {len(items)} identical results ({paths})")
        chosen[seed] = items[0]
        for warning in items[0].get("warnings") or []:
            notes.append(f"{what}: seed {seed}: {warning}")
    return chosen


def _missing_seeds(cells, notes):
    """Name the seeds that some cells of a table have and others lack."""
    everyone = set().union(*(set(seeds) for seeds in cells.values())) if cells else set()
    for what, seeds in cells.items():
        missing = sorted(everyone - set(seeds), key=str)
        if missing:
            notes.append(f"{what}: no result for seed {', '.join(map(str, missing))}")


def _accuracy(r):
    return float(r["metrics"]["accuracy"])


def _dataset_key(r):
    """A table row: (DATASET.NAME, dataset config name), so two CustomDataset configs are two rows."""
    ident = r["identity"]
    return ident.get("dataset"), ident.get("dataset_config") or ident.get("dataset")


def _row_names(keys):
    """Display names of row keys: the dataset's name, with the config name where one dataset has several."""
    configs = defaultdict(set)
    for name, config in keys:
        configs[name].add(config)
    return {(name, config): name if len(configs[name]) == 1 else f"{name} ({config})" for name, config in keys}


def _ordered_rows(keys, canonical):
    names = _row_names(keys)
    order = {n: i for i, n in enumerate(canonical)}
    return [(k, names[k]) for k in sorted(keys, key=lambda k: (order.get(k[0], len(order)), str(k[0]), str(k[1])))]


def _sorted_groups(groups, labels):
    return sorted(groups.items(), key=lambda kv: tuple(str(x) for x in kv[0]) + (labels[kv[0]],))


def _is_dg(r):
    """A leave-one-domain-out result: its run held out target domains."""
    return bool(r.get("target_domains"))


def _is_zero_shot(r):
    ident = r["identity"]
    return ident.get("trainer") in ZERO_SHOT_TRAINERS and not ident.get("model")


# ------------------------------------------------------------------------------------- base-to-new
def base2new_tables(root, trainer=None, config=None, shots=None, paper=None, out=print, results=None):
    """One table per (method, config, shots, variant, model origin) of the base/new results under root."""
    results = _select(load_results(root, out) if results is None else results, trainer, config, shots)
    results = [r for r in results if r["identity"].get("subsample") in ("base", "new")]
    groups, labels = _group(results)
    tables = []
    for key, runs in _sorted_groups(groups, labels):
        method, cfg, k = key[0], key[1], key[2]
        entry = paper or (default_paper_entry(method, cfg) if not labels[key] else None)
        reference = BASE2NEW.get(entry, {}) if entry else {}
        by_dataset = defaultdict(lambda: {"base": [], "new": []})
        for r in runs:
            by_dataset[_dataset_key(r)][r["identity"]["subsample"]].append(r)
        rows, notes, cells = [], [], {}
        for row_key, dataset in _ordered_rows(list(by_dataset), BASE2NEW_DATASETS):
            base = _per_seed(by_dataset[row_key]["base"], f"{dataset} base", notes)
            new = _per_seed(by_dataset[row_key]["new"], f"{dataset} new", notes)
            cells[f"{dataset} base"], cells[f"{dataset} new"] = base, new
            row = {"dataset": dataset, "base_seeds": sorted(base, key=str), "new_seeds": sorted(new, key=str),
                   "base_per_seed": {seed: _accuracy(r) for seed, r in base.items()},
                   "new_per_seed": {seed: _accuracy(r) for seed, r in new.items()}}
            paired = sorted(set(base) & set(new), key=str)
            if base and new and not paired:
                notes.append(f"{dataset}: no seed has both a base and a new result (base: seeds "
                             f"{', '.join(map(str, row['base_seeds']))}; new: {', '.join(map(str, row['new_seeds']))}), "
                             "so it has no HM")
            elif paired and (set(base) ^ set(new)):
                unpaired = sorted(set(base) ^ set(new), key=str)
                notes.append(f"{dataset}: base, new and HM are over seeds {', '.join(map(str, paired))}, the seeds with "
                             f"both halves; seed {', '.join(map(str, unpaired))} has only one and is left out of them")
            row["seeds"] = paired
            for half, chosen in (("base", base), ("new", new)):
                values = [row[f"{half}_per_seed"][s] for s in (paired or sorted(chosen, key=str))]
                if values:
                    row[half], row[f"{half}_std"] = mean(values), pstdev(values)
            if paired:
                row["hm"] = harmonic_mean(row["base"], row["new"])
            paper_row = reference.get("per_dataset", {}).get(row_key[0]) if dataset == row_key[0] else None
            if paper_row:
                row["paper"] = paper_row
            elif dataset == row_key[0] and dataset in reference.get("per_dataset_hm", {}):
                row["paper"] = (None, None, reference["per_dataset_hm"][dataset])
            rows.append(row)
        _missing_seeds(cells, notes)
        complete = [r for r in rows if "hm" in r]
        average = None
        if complete:
            b, n = mean(r["base"] for r in complete), mean(r["new"] for r in complete)
            average = {"dataset": f"Average ({len(complete)} datasets)", "base": b, "new": n, "hm": harmonic_mean(b, n)}
            if "average" in reference and len(complete) == len(BASE2NEW_DATASETS):
                average["paper"] = reference["average"]
            elif "average" in reference:
                notes.append(f"the paper's average is over all {len(BASE2NEW_DATASETS)} datasets and only "
                             f"{len(complete)} have results here, so it is not compared")
        tables.append({"kind": "base2new", "method": method, "config": cfg, "shots": k, "variant": labels[key],
                       "origin": key[4], "fingerprint": key[3], "paper": entry, "paper_source": reference.get("source"),
                       "rows": rows, "average": average, "notes": notes})
    return tables


def _variant_title(table):
    return f" {table['variant']}" if table.get("variant") else ""


def _fmt(x):
    return "" if x is None else f"{x:.2f}"


def _diff(ours, theirs):
    return "" if ours is None or theirs is None else f"{ours - theirs:+.2f}"


def base2new_markdown(table):
    title = f"### {table['method']} / {table['config']}{_variant_title(table)} / {table['shots']} shots: base-to-new"
    has_paper = table["paper"] is not None and table["paper_source"] is not None
    header = "| Dataset | Base | New | HM | seeds |"
    line = "|---|---|---|---|---|"
    if has_paper:
        header += " paper Base | paper New | paper HM | Δ HM |"
        line += "---|---|---|---|"
    out = [title, "", header, line]
    for row in table["rows"] + ([table["average"]] if table["average"] else []):
        seeds = ",".join(map(str, row.get("seeds") or row.get("base_seeds") or row.get("new_seeds") or []))
        cells = [row["dataset"], _fmt(row.get("base")), _fmt(row.get("new")), _fmt(row.get("hm")), seeds]
        if has_paper:
            paper = row.get("paper") or (None, None, None)
            cells += [_fmt(paper[0]), _fmt(paper[1]), _fmt(paper[2]), _diff(row.get("hm"), paper[2])]
        out.append("| " + " | ".join(cells) + " |")
    if has_paper:
        out += ["", f"Paper: {table['paper']} ({table['paper_source']})."]
    out += [f"Note: {n}." for n in table["notes"]]
    return "\n".join(out) + "\n"


def base2new_csv(table):
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["method", "config", "shots", "dataset", "base", "base_std", "new", "new_std", "hm", "seeds",
                     "paper_base", "paper_new", "paper_hm"])
    for row in table["rows"] + ([table["average"]] if table["average"] else []):
        paper = row.get("paper") or (None, None, None)
        seeds = row.get("seeds") or row.get("base_seeds") or row.get("new_seeds") or []
        writer.writerow([table["method"], table["config"], table["shots"], row["dataset"], _fmt(row.get("base")),
                         _fmt(row.get("base_std")), _fmt(row.get("new")), _fmt(row.get("new_std")), _fmt(row.get("hm")),
                         " ".join(map(str, seeds)), _fmt(paper[0]), _fmt(paper[1]), _fmt(paper[2])])
    return buf.getvalue()


# ------------------------------------------------------------------------------- cross-dataset / DG
def xd_tables(root, trainer=None, config=None, shots=None, out=print, results=None):
    """Per (method, config, shots, variant, model origin) that has evaluations on other datasets: the source
    accuracy (the training run's final test) and each target's, averaged over seeds; the cross-dataset
    average over the 10 targets and the domain-generalization average over the 4 ImageNet variants."""
    results = _select(load_results(root, out) if results is None else results, trainer, config, shots)
    results = [r for r in results if r["identity"].get("subsample", "all") == "all" and not _is_dg(r)
               and not _is_zero_shot(r)]
    groups, labels = _group(results)
    tables = []
    for key, runs in _sorted_groups(groups, labels):
        targets = [r for r in runs if r["identity"].get("kind") == "eval"]
        if not targets:
            continue  # training runs that nothing was evaluated from: the few-shot table's
        method, cfg = key[0], key[1]
        notes = []
        sources = [r for r in runs if r["identity"].get("kind") == "train"]
        source_names = sorted({_trained(r, "dataset") for r in targets if _trained(r, "dataset")}) or \
            sorted({r["identity"].get("dataset") for r in sources})
        source_name = "/".join(source_names) if source_names else "released weights"
        per_dataset = defaultdict(list)
        for r in targets:
            per_dataset[_dataset_key(r)].append(r)
        chosen = {}
        if sources:
            chosen[source_name] = _per_seed(sources, f"{source_name} (source)", notes)
        for row_key, dataset in _ordered_rows(list(per_dataset), XD_TARGETS + DG_TARGETS):
            chosen[dataset] = _per_seed(per_dataset[row_key], dataset, notes)
        _missing_seeds(chosen, notes)
        columns = {source_name: None}
        columns.update({d: mean(map(_accuracy, c.values())) if c else None for d, c in chosen.items()})
        seeds = {d: sorted(c, key=str) for d, c in chosen.items()}
        xd = [columns[d] for d in XD_TARGETS if columns.get(d) is not None]
        dg = [columns[d] for d in DG_TARGETS if columns.get(d) is not None]
        tables.append({"kind": "xd", "method": method, "config": cfg, "shots": key[2], "variant": labels[key],
                       "origin": key[4], "fingerprint": key[3], "source": source_name, "columns": columns,
                       "seeds": seeds, "notes": notes,
                       "per_seed": {d: [_accuracy(r) for r in c.values()] for d, c in chosen.items()},
                       "xd_average": (mean(xd), len(xd)) if xd else None, "dg_average": (mean(dg), len(dg)) if dg else None})
    return tables


def xd_markdown(table):
    cols, source = table["columns"], table.get("source", "ImageNet")
    shots = f" / {table['shots']} shots" if table.get("shots") not in (None, -1) else ""
    out = [f"### {table['method']} / {table['config']}{_variant_title(table)}{shots}: cross-dataset and domain "
           f"generalization (source {source})", ""]
    for title, names, avg in (("cross-dataset", XD_TARGETS, table["xd_average"]), ("domain generalization", DG_TARGETS,
                                                                                     table["dg_average"])):
        present = [d for d in names if cols.get(d) is not None]
        if not present and title == "domain generalization":
            continue
        header = [f"Source: {source}"] + present + [f"Average ({avg[1]} targets)" if avg else "Average"]
        values = [_fmt(cols.get(source))] + [_fmt(cols[d]) for d in present] + [_fmt(avg[0] if avg else None)]
        out += [f"{title}:", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header),
                "| " + " | ".join(values) + " |", ""]
    others = [d for d in cols if d != source and d not in XD_TARGETS and d not in DG_TARGETS and cols[d] is not None]
    if others:
        out += ["other targets:", "", "| " + " | ".join(others) + " |", "|" + "---|" * len(others),
                "| " + " | ".join(_fmt(cols[d]) for d in others) + " |", ""]
    out += [f"Note: {n}." for n in table["notes"]]
    return "\n".join(out) + "\n"


def xd_csv(table):
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["method", "config", "shots", "dataset", "accuracy", "seeds"])
    for dataset, value in table["columns"].items():
        writer.writerow([table["method"], table["config"], table.get("shots"), dataset, _fmt(value),
                         " ".join(map(str, table["seeds"].get(dataset, [])))])
    return buf.getvalue()


def dg_tables(root, trainer=None, config=None, shots=None, out=print, results=None):
    """MetaPrompt's leave-one-domain-out protocol: per dataset, each held-out domain and their average."""
    results = [r for r in _select(load_results(root, out) if results is None else results, trainer, config, shots)
               if _is_dg(r)]
    groups, labels = _group(results)
    tables = []
    for key, runs in _sorted_groups(groups, labels):
        method, cfg, k = key[0], key[1], key[2]
        per_dataset = defaultdict(lambda: defaultdict(list))
        for r in runs:
            target = (r.get("target_domains") or ["?"])[0]
            per_dataset[_dataset_key(r)][target].append(r)
        for row_key, dataset in _ordered_rows(list(per_dataset), []):
            per_target = per_dataset[row_key]
            notes = []
            chosen = {t: _per_seed(items, f"target {t}", notes) for t, items in sorted(per_target.items())}
            _missing_seeds(chosen, notes)
            columns = {t: mean(map(_accuracy, c.values())) for t, c in chosen.items() if c}
            seeds = {t: sorted(c, key=str) for t, c in chosen.items() if c}
            paper = {name: values[row_key[0]] for name, values in DG.items() if row_key[0] in values} \
                if not labels[key] else {}
            tables.append({"kind": "dg", "method": method, "config": cfg, "shots": k, "dataset": dataset,
                           "variant": labels[key], "origin": key[4], "fingerprint": key[3], "columns": columns,
                           "seeds": seeds, "per_seed": {t: [_accuracy(r) for r in c.values()] for t, c in chosen.items()},
                           "average": mean(columns.values()) if columns else None, "paper": paper, "notes": notes})
    return tables


def dg_markdown(table):
    names = list(table["columns"])
    header = ["target domain"] + names + ["Average"]
    values = [f"{table['method']} ({table['shots']}-shot)"] + [_fmt(table["columns"][n]) for n in names] + \
             [_fmt(table["average"])]
    out = [f"### {table['dataset']} / {table['config']}{_variant_title(table)}: leave-one-domain-out", "",
           "| " + " | ".join(header) + " |", "|" + "---|" * len(header), "| " + " | ".join(values) + " |"]
    for name, value in table["paper"].items():
        out.append("| " + " | ".join([f"paper: {name}"] + [""] * len(names) + [_fmt(value)]) + " |")
    out += [""] + [f"Note: {n}." for n in table["notes"]] if table["notes"] else []
    return "\n".join(out) + "\n"


def dg_csv(table):
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["method", "config", "shots", "dataset", "target", "accuracy", "seeds"])
    for target, value in table["columns"].items():
        writer.writerow([table["method"], table["config"], table["shots"], table["dataset"], target, _fmt(value),
                         " ".join(map(str, table["seeds"][target]))])
    return buf.getvalue()


# ----------------------------------------------------------------------------- few-shot and zero-shot
# The few-shot protocol trains each shot count with its own config (CoOp: 50 epochs for 1 shot, 100 for 2
# and 4, 200 for 8 and 16): one curve groups runs that differ only in those epochs.
CURVE_FREE_KEYS = DATA_KEYS + ("TEST.*", "OPTIM.MAX_EPOCH")
_EPOCH_SUFFIX = re.compile(r"_ep\d+(?=_|$)")


def _curve_key(r, free=CURVE_FREE_KEYS):
    ident = r["identity"]
    settings = {k: v for k, v in ident["settings"].items() if not _matches(k, free)}
    variant = _digest({"settings": settings, "clip_sha256": ident.get("clip_sha256"),
                       "precision": ident.get("precision"), "device": ident.get("device")})
    family = _EPOCH_SUFFIX.sub("", ident.get("config") or "")
    return ident.get("trainer"), family, None, variant, _origin(ident)


def _curves(runs):
    """Few-shot curves: runs that differ only in the shots and the epochs the protocol gives each shot count.
    Runs are first grouped by everything but the data (so one setting per shot count), then the groups of
    one curve key are joined while their shot counts do not overlap: a second schedule for a shot count
    already on the curve (another MAX_EPOCH) starts a curve of its own instead of joining its seeds."""
    exact = defaultdict(list)
    for r in runs:
        exact[(_curve_key(r), _curve_key(r, DATA_KEYS + ("TEST.*",))[3])].append(r)
    curves = defaultdict(list)  # curve key -> [(shot counts, runs)]
    for (key, _), members in sorted(exact.items(), key=lambda kv: (-len(kv[1]), str(kv[0]))):
        shots = {_shots(r) for r in members}
        for index, (taken, joined) in enumerate(curves[key]):
            if not taken & shots:
                taken |= shots
                joined.extend(members)
                break
        else:
            curves[key].append((shots, list(members)))
    groups = {}
    for key, parts in curves.items():
        for index, (_, members) in enumerate(parts):
            groups[key if index == 0 else key[:3] + (f"{key[3]}-{index}",) + key[4:]] = members
    return groups


def _backbone(ident):
    return (ident.get("config_values") or {}).get("MODEL.BACKBONE.NAME")


def zeroshot_tables(root, trainer=None, config=None, shots=None, out=print, results=None):
    """Zero-shot CLIP: per (trainer, config, variant) the accuracy on each dataset."""
    results = [r for r in (load_results(root, out) if results is None else results) if _is_zero_shot(r)
               and (trainer is None or r["identity"]["trainer"] == trainer)
               and (config is None or r["identity"].get("config") == config)]
    groups, labels = _group(results, key_of=lambda r: (r["identity"]["trainer"], r["identity"].get("config"), None,
                                                       variant_fingerprint(r["identity"]), "trained"))
    tables = []
    for key, runs in _sorted_groups(groups, labels):
        notes, by_dataset = [], defaultdict(list)
        for r in runs:
            by_dataset[_dataset_key(r)].append(r)
        rows = []
        for row_key, dataset in _ordered_rows(list(by_dataset), BASE2NEW_DATASETS + DG_TARGETS):
            chosen = _per_seed(by_dataset[row_key], dataset, notes)
            rows.append({"dataset": dataset, "key": row_key[0], "accuracy": mean(map(_accuracy, chosen.values()))
                         if chosen else None})
        tables.append({"kind": "zeroshot", "method": key[0], "config": key[1], "shots": None, "variant": labels[key],
                       "origin": key[4], "fingerprint": key[3], "backbone": _backbone(runs[0]["identity"]),
                       "clip_sha256": runs[0]["identity"].get("clip_sha256"), "rows": rows, "notes": notes})
    return tables


def zeroshot_markdown(table):
    out = [f"### {table['method']} / {table['config']}{_variant_title(table)}: zero-shot", "",
           "| Dataset | Accuracy |", "|---|---|"]
    out += [f"| {r['dataset']} | {_fmt(r['accuracy'])} |" for r in table["rows"]]
    present = [r["accuracy"] for r in table["rows"] if r["accuracy"] is not None]
    if present:
        out.append(f"| Average ({len(present)} datasets) | {_fmt(mean(present))} |")
    out += [""] + [f"Note: {n}." for n in table["notes"]] if table["notes"] else []
    return "\n".join(out) + "\n"


def zeroshot_csv(table):
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["method", "config", "dataset", "accuracy"])
    for row in table["rows"]:
        writer.writerow([table["method"], table["config"], row["dataset"], _fmt(row["accuracy"])])
    return buf.getvalue()


def fewshot_tables(root, trainer=None, config=None, shots=None, out=print, results=None):
    """CoOp's few-shot protocol: per method curve (trainer, config family, variant, origin), the accuracy
    per dataset and shot count (mean and spread over seeds), the average over the datasets that have every
    shot count, and zero-shot CLIP with the same CLIP weights as the reference at 0 shots."""
    results = load_results(root, out) if results is None else results
    zero_shot = zeroshot_tables(root, results=results, out=out)
    trained = [r for r in _select(results, trainer, None, shots) if r["identity"].get("kind") == "train"
               and r["identity"].get("subsample", "all") == "all" and not _is_dg(r)
               and (config is None or _curve_key(r)[1] == _EPOCH_SUFFIX.sub("", config))]
    curves = _curves(trained)
    groups, labels = _group([r for members in curves.values() for r in members],
                            key_of=lambda r: next(k for k, members in curves.items() if any(m is r for m in members)))
    tables = []
    for key, runs in _sorted_groups(groups, labels):
        notes, cells, rows = [], {}, []
        by_dataset = defaultdict(lambda: defaultdict(list))
        for r in runs:
            by_dataset[_dataset_key(r)][_shots(r)].append(r)
        all_shots = sorted({k for per_k in by_dataset.values() for k in per_k}, key=lambda k: (k == -1, k))
        epochs = defaultdict(set)
        for r in runs:
            epochs[_shots(r)].add((r["identity"].get("config_values") or {}).get("OPTIM.MAX_EPOCH"))
        clip = runs[0]["identity"].get("clip_sha256")
        reference = {}
        # zero-shot CLIP with the same CLIP weights; its plain setting first where there are several
        for zs in sorted((z for z in zero_shot if z["clip_sha256"] == clip), key=lambda z: bool(z["variant"])):
            for row in zs["rows"]:
                if row["accuracy"] is not None:
                    reference.setdefault(row["key"], row["accuracy"])
        for row_key, dataset in _ordered_rows(list(by_dataset), BASE2NEW_DATASETS):
            row = {"dataset": dataset, "shots": {}, "per_seed": {}, "zero_shot": reference.get(row_key[0])}
            for k in all_shots:
                chosen = _per_seed(by_dataset[row_key].get(k, []), f"{dataset} {k} shots", notes)
                cells[f"{dataset} {k} shots"] = chosen
                if chosen:
                    values = [_accuracy(r) for r in chosen.values()]
                    row["shots"][k] = (mean(values), pstdev(values))
                    row["per_seed"][k] = values
            rows.append(row)
        _missing_seeds({k: v for k, v in cells.items() if v}, notes)
        complete = [r for r in rows if len(r["shots"]) == len(all_shots)]
        average = None
        if complete:
            average = {"dataset": f"Average ({len(complete)} datasets)",
                       "shots": {k: (mean(r["shots"][k][0] for r in complete), None) for k in all_shots},
                       "per_seed": {},
                       "zero_shot": mean(r["zero_shot"] for r in complete) if all(r["zero_shot"] is not None
                                                                                 for r in complete) else None}
            if len(complete) < len(rows):
                notes.append(f"the average is over the {len(complete)} datasets that have every shot count")
        if not reference:
            notes.append("no zero-shot CLIP result with the same CLIP weights under this output tree (run the "
                         "zeroshot protocol) to draw as the reference")
        schedule = ", ".join(f"{k} shots: {'/'.join(str(e) for e in sorted(epochs[k], key=str))} epochs"
                             for k in all_shots)
        notes.append(f"epochs per shot count: {schedule}")
        tables.append({"kind": "fewshot", "method": key[0], "config": key[1], "shots": None, "variant": labels[key],
                       "origin": key[4], "fingerprint": key[3], "backbone": _backbone(runs[0]["identity"]),
                       "all_shots": all_shots, "rows": rows, "average": average, "notes": notes})
    return tables


def fewshot_markdown(table):
    shots = table["all_shots"]
    title = f"### {table['method']} / {table['config']}{_variant_title(table)}: few-shot (accuracy against shots)"
    header = ["Dataset", "zero-shot CLIP"] + [f"{k} shots" if k != -1 else "all" for k in shots]
    out = [title, "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in table["rows"] + ([table["average"]] if table["average"] else []):
        cells = [row["dataset"], _fmt(row.get("zero_shot"))]
        for k in shots:
            value = row["shots"].get(k)
            cells.append("" if value is None else _fmt(value[0]) + (f" ± {value[1]:.2f}" if value[1] else ""))
        out.append("| " + " | ".join(cells) + " |")
    out += ["", "± is the standard deviation over seeds."] + [f"Note: {n}." for n in table["notes"]]
    return "\n".join(out) + "\n"


def fewshot_csv(table):
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["method", "config", "dataset", "shots", "accuracy", "std", "seeds_values", "zero_shot"])
    for row in table["rows"] + ([table["average"]] if table["average"] else []):
        for k in table["all_shots"]:
            value = row["shots"].get(k)
            if value is not None:
                writer.writerow([table["method"], table["config"], row["dataset"], k, _fmt(value[0]), _fmt(value[1]),
                                 " ".join(_fmt(v) for v in row["per_seed"].get(k, [])), _fmt(row.get("zero_shot"))])
    return buf.getvalue()


# ---------------------------------------------------------------------------------------- writing
RENDERERS = {
    "base2new": (base2new_tables, base2new_markdown, base2new_csv),
    "xd": (xd_tables, xd_markdown, xd_csv),
    "dg": (dg_tables, dg_markdown, dg_csv),
    "fewshot": (fewshot_tables, fewshot_markdown, fewshot_csv),
    "zeroshot": (zeroshot_tables, zeroshot_markdown, zeroshot_csv),
}


def _slug(text, limit=60):
    text = re.sub(r"[^A-Za-z0-9._=+-]+", "-", str(text)).strip("-")
    if len(text) > limit:
        text = text[:limit - 11] + "~" + hashlib.sha256(text.encode()).hexdigest()[:10]
    return text


def table_stem(kind, table):
    """The file name of one table: the protocol, dataset (DG), method, config, shots, and what tells the group
    apart from the others of the same method and config (its variant's options or fingerprint, the model's
    origin), so two groups never write the same files."""
    parts = [kind, table.get("dataset"), table["method"], table["config"]]
    if table.get("shots") not in (None, 16) or kind in ("dg",):
        parts.append(f"{table['shots']}shot")
    label = (table.get("variant") or "").replace("[released weights]", "")
    options = label.split("[", 1)[0].strip()
    if options:
        parts.append(f"variant-{_slug(options)}")
    if "[" in label:  # same options, different settings (e.g. CLIP weights): the fingerprint tells them apart
        parts.append(table["fingerprint"][:8])
    if table.get("origin") == "released":
        parts.append("released")
    return "_".join(_slug(p) for p in parts if p not in (None, ""))


def build(kind, root, out_dir=None, trainer=None, config=None, shots=None, paper=None, out=print):
    """Build, print and write the tables of one protocol; returns the tables (empty if no results)."""
    collect, markdown, to_csv = RENDERERS[kind]
    kwargs = {"paper": paper} if kind == "base2new" else {}
    tables = collect(root, trainer, config, shots, out=out, **kwargs)
    if not tables:
        out(f"No {kind} results (result.json) under {root}"
            + (f" for trainer {trainer}" if trainer else "") + (f", config {config}" if config else ""))
        return tables
    from .figures import write_table_figures  # matplotlib: imported only when there is something to draw

    out_dir = out_dir or os.path.join(root, "tables")
    remove_stale_temp_files(out_dir)  # what a killed table or figure write left, whatever its name
    stems = {}
    for table in tables:
        stem = table_stem(kind, table)
        if stem in stems:  # never overwrite another group's files
            stem = f"{stem}_{table['fingerprint'][:8]}-{table.get('origin')}"
        stems[stem] = table
    for stem, table in stems.items():
        text = markdown(table)
        out(text)
        path = os.path.join(out_dir, stem)
        with atomic_write(path + ".md", "w") as f:
            f.write(text)
        with atomic_write(path + ".csv", "w") as f:
            f.write(to_csv(table))
        written = [path + ".md", path + ".csv"] + write_table_figures(table, path)
        out(f"Written: {', '.join(written)}\n")
    return tables
