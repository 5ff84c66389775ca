"""Tables built from the `result.json` files that every test writes (never from log lines).

    vlprompt results base2new OUTPUT [--trainer MaPLe] [--config CFG] [--paper MaPLe] [--out DIR]
    vlprompt results xd OUTPUT [--trainer MaPLe]
    vlprompt results dg OUTPUT [--trainer MetaPrompt]

Base-to-new: per dataset the mean over seeds of the base accuracy (the final test of the training run on
the base classes, or a reproduce run's test_base) and of the new accuracy (test_new), their harmonic mean,
and the average row: the HM of the averaged base and new, as the papers compute it (averaging the
per-dataset HMs is the known mistake). Runs are grouped by (method, config, shots); a dataset whose seeds
differ between base and new is flagged. Each table is printed and written as Markdown and CSV, with its figure
(PNG, PDF and SVG, drawn by vlprompt.figures) next to them.
"""
import csv
import glob
import io
import json
import os
from collections import defaultdict
from statistics import mean, pstdev

from .fileio import atomic_write
from .paper_numbers import (BASE2NEW, BASE2NEW_DATASETS, DG, DG_TARGETS, XD_TARGETS, default_paper_entry,
                            harmonic_mean)
from .run_identity import differences, is_bookkeeping, overrides_as_pairs, variant_fingerprint


def load_results(root, out=print):
    """Every result.json under root that records its run identity, with its path. Older files (no
    identity) are named and left out: their runs cannot be told apart."""
    found, legacy = [], []
    for path in sorted(glob.glob(os.path.join(glob.escape(root), "**", "result.json"), recursive=True)):
        try:
            with open(path) as f:
                result = json.load(f)
        except (OSError, json.JSONDecodeError) as e:
            out(f"WARNING: cannot read {path} ({e}); skipped")
            continue
        if not isinstance(result, dict) or not isinstance(result.get("identity"), dict) \
                or "fingerprint" not in result["identity"]:
            legacy.append(path)
            continue
        result["_path"] = path
        found.append(result)
    if legacy:
        out(f"WARNING: {len(legacy)} result.json without a run identity (written by vlprompt < 0.2) left out: "
            + ", ".join(legacy[:3]) + (" ..." if len(legacy) > 3 else ""))
    return found


def _select(results, trainer=None, config=None, shots=None):
    return [r for r in results if (trainer is None or r["identity"].get("trainer") == trainer)
            and (config is None or r["identity"].get("config") == config)
            and (shots is None or r["identity"].get("shots") == shots)]


def _origin(identity):
    """Whose model a result measures: trained here, or loaded from a folder without an identity (released
    weights, another codebase's run). Never averaged together."""
    model = identity.get("model")
    if identity.get("kind") == "eval" and model and not model.get("trained_fingerprint"):
        return "released"
    return "trained"


def _variant_label(identity):
    """The KEY VALUE options that make this variant, as given (the scripts' own DATASET.* options left out)."""
    pairs = overrides_as_pairs(identity.get("overrides"))
    return " ".join(f"{k}={v}" for k, v in pairs if not k.startswith("DATASET.") and not is_bookkeeping(k))


def _group(results, with_shots=True):
    """Results that may be averaged together: same trainer, config, (shots,) variant fingerprint (everything
    that changes results except the seed and the data) and model origin. Returns {key: [results]} and, per
    key, a label that tells groups of the same method and config apart."""
    groups = defaultdict(list)
    for r in results:
        ident = r["identity"]
        key = (ident.get("trainer"), ident.get("config"), ident.get("shots") if with_shots else None,
               variant_fingerprint(ident), _origin(ident))
        groups[key].append(r)
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
                diff = differences(reference, groups[key][0]["identity"], ignore=("SEED", "DATASET.*"))
                diff = [d for d in diff if not d.startswith(("evaluated model", "kind of run"))]
                tag = "; ".join(diff[:3]) if diff else "reference"
                labels[key] = (labels[key] + " " if labels[key] else "") + f"[{key[3][:8]}: {tag}]"
    return groups, labels


def _per_seed(runs, what, notes):
    """{seed: result} for one cell; a seed with several results is used only if they agree, and named."""
    by_seed = defaultdict(list)
    for r in runs:
        by_seed[r["identity"].get("seed")].append(r)
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


# ------------------------------------------------------------------------------------- base-to-new
def base2new_tables(root, trainer=None, config=None, shots=None, paper=None, out=print):
    """One table per (method, config, shots, variant, model origin) found under root/base2new."""
    results = _select(load_results(os.path.join(root, "base2new"), out), trainer, config, shots)
    results = [r for r in results if r["identity"].get("subsample") in ("base", "new")]
    groups, labels = _group(results)
    tables = []
    for key, runs in sorted(groups.items(), key=lambda kv: tuple(str(x) for x in kv[0]) + (labels[kv[0]],)):
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
            if base:
                values = list(row["base_per_seed"].values())
                row["base"], row["base_std"] = mean(values), pstdev(values)
            if new:
                values = list(row["new_per_seed"].values())
                row["new"], row["new_std"] = mean(values), pstdev(values)
            if base and new:
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
                       "fingerprint": key[3], "paper": entry, "paper_source": reference.get("source"), "rows": rows,
                       "average": average, "notes": notes})
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
        seeds = ",".join(map(str, row.get("base_seeds", []))) if "base_seeds" in row else ""
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
        writer.writerow([table["method"], table["config"], table["shots"], row["dataset"], _fmt(row.get("base")),
                         _fmt(row.get("base_std")), _fmt(row.get("new")), _fmt(row.get("new_std")), _fmt(row.get("hm")),
                         " ".join(map(str, row.get("base_seeds", []))), _fmt(paper[0]), _fmt(paper[1]), _fmt(paper[2])])
    return buf.getvalue()


# ------------------------------------------------------------------------------- cross-dataset / DG
def xd_tables(root, trainer=None, config=None, shots=None, out=print):
    """Per (method, config, variant, model origin): the ImageNet source accuracy and each target's, averaged
    over seeds; the cross-dataset average over the 10 targets and the domain-generalization average over
    the 4 ImageNet variants."""
    targets = _select(load_results(os.path.join(root, "evaluation"), out), trainer, config)
    sources = [r for r in _select(load_results(os.path.join(root, "imagenet"), out), trainer, config)
               if r["identity"].get("kind") == "train"]
    groups, labels = _group(targets + sources, with_shots=False)
    tables = []
    for key, runs in sorted(groups.items(), key=lambda kv: tuple(str(x) for x in kv[0]) + (labels[kv[0]],)):
        method, cfg = key[0], key[1]
        notes, cells = [], {}
        source_ids = {id(r) for r in sources}
        source = [r for r in runs if id(r) in source_ids]
        per_dataset = defaultdict(list)
        for r in runs:
            if id(r) not in source_ids:
                per_dataset[_dataset_key(r)].append(r)
        chosen = {"ImageNet": _per_seed(source, "ImageNet (source)", notes)} if source else {}
        for row_key, dataset in _ordered_rows(list(per_dataset), XD_TARGETS + DG_TARGETS):
            chosen[dataset] = _per_seed(per_dataset[row_key], dataset, notes)
        _missing_seeds(chosen, notes)
        columns = {"ImageNet": None}
        columns.update({d: mean(map(_accuracy, c.values())) if c else None for d, c in chosen.items()})
        seeds = {d: sorted(c, key=str) for d, c in chosen.items()}
        xd = [columns[d] for d in XD_TARGETS if columns.get(d) is not None]
        dg = [columns[d] for d in DG_TARGETS if columns.get(d) is not None]
        tables.append({"kind": "xd", "method": method, "config": cfg, "variant": labels[key], "fingerprint": key[3],
                       "columns": columns, "seeds": seeds, "notes": notes,
                       "per_seed": {d: [_accuracy(r) for r in c.values()] for d, c in chosen.items()},
                       "xd_average": (mean(xd), len(xd)) if xd else None, "dg_average": (mean(dg), len(dg)) if dg else None})
    return tables


def xd_markdown(table):
    cols = table["columns"]
    out = [f"### {table['method']} / {table['config']}{_variant_title(table)}: cross-dataset and domain generalization "
           "(source ImageNet)", ""]
    for title, names, avg in (("cross-dataset", XD_TARGETS, table["xd_average"]), ("domain generalization", DG_TARGETS,
                                                                                     table["dg_average"])):
        present = [d for d in names if cols.get(d) is not None]
        if not present and title == "domain generalization":
            continue
        header = ["Source: ImageNet"] + present + [f"Average ({avg[1]} targets)" if avg else "Average"]
        values = [_fmt(cols.get("ImageNet"))] + [_fmt(cols[d]) for d in present] + [_fmt(avg[0] if avg else None)]
        out += [f"{title}:", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header),
                "| " + " | ".join(values) + " |", ""]
    out += [f"Note: {n}." for n in table["notes"]]
    return "\n".join(out) + "\n"


def xd_csv(table):
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["method", "config", "dataset", "accuracy", "seeds"])
    for dataset, value in table["columns"].items():
        writer.writerow([table["method"], table["config"], dataset, _fmt(value),
                         " ".join(map(str, table["seeds"].get(dataset, [])))])
    return buf.getvalue()


def dg_tables(root, trainer=None, config=None, shots=None, out=print):
    """MetaPrompt's leave-one-domain-out protocol: per dataset, each held-out domain and their average."""
    results = _select(load_results(os.path.join(root, "dg"), out), trainer, config, shots)
    groups, labels = _group(results)
    tables = []
    for key, runs in sorted(groups.items(), key=lambda kv: tuple(str(x) for x in kv[0]) + (labels[kv[0]],)):
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
                           "variant": labels[key], "fingerprint": key[3], "columns": columns, "seeds": seeds,
                           "per_seed": {t: [_accuracy(r) for r in c.values()] for t, c in chosen.items()},
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


# ---------------------------------------------------------------------------------------- writing
RENDERERS = {
    "base2new": (base2new_tables, base2new_markdown, base2new_csv),
    "xd": (xd_tables, xd_markdown, xd_csv),
    "dg": (dg_tables, dg_markdown, dg_csv),
}


def _slug(*parts):
    return "_".join(str(p).replace("/", "-").replace(" ", "") for p in parts if p is not None)


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
    for table in tables:
        text = markdown(table)
        out(text)
        variant = f"variant-{table['fingerprint'][:8]}" if table.get("variant") else None
        stem = os.path.join(out_dir, _slug(kind, table.get("dataset"), table["method"], table["config"], variant))
        with atomic_write(stem + ".md", "w") as f:
            f.write(text)
        with atomic_write(stem + ".csv", "w") as f:
            f.write(to_csv(table))
        written = [stem + ".md", stem + ".csv"] + write_table_figures(table, stem)
        out(f"Written: {', '.join(written)}\n")
    return tables
