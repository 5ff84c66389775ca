"""Tables built from the `result.json` files that every test writes (never from log lines).

    vlprompt results base2new OUTPUT [--trainer MaPLe] [--config CFG] [--paper MaPLe] [--out DIR]
    vlprompt results xd OUTPUT [--trainer MaPLe]
    vlprompt results dg OUTPUT [--trainer MetaPrompt]

Base-to-new: per dataset the mean over seeds of the base accuracy (the final test of the training run on
the base classes, or a reproduce run's test_base) and of the new accuracy (test_new), their harmonic mean,
and the average row: the HM of the averaged base and new, as the papers compute it (averaging the
per-dataset HMs is the known mistake). Runs are grouped by (method, config, shots); a dataset whose seeds
differ between base and new is flagged. Each table is printed and written as Markdown, CSV and an SVG plot.
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


def load_results(root):
    """Every result.json under root, with its path."""
    out = []
    for path in sorted(glob.glob(os.path.join(root, "**", "result.json"), recursive=True)):
        try:
            with open(path) as f:
                result = json.load(f)
        except (OSError, json.JSONDecodeError) as e:
            print(f"WARNING: cannot read {path} ({e}); skipped")
            continue
        result["_path"] = path
        out.append(result)
    return out


def _select(results, trainer=None, config=None, shots=None):
    return [r for r in results if (trainer is None or r.get("method") == trainer)
            and (config is None or r.get("config") == config) and (shots is None or r.get("shots") == shots)]


def _latest(runs):
    """One result per seed: the latest if a seed ran twice (e.g. train_base and a reproduce's test_base)."""
    by_seed = {}
    for r in sorted(runs, key=lambda r: r.get("finished_at") or ""):
        by_seed[r.get("seed")] = r
    return by_seed


def _accuracy(r):
    return float(r["metrics"]["accuracy"])


def _order(names, canonical):
    return [n for n in canonical if n in names] + sorted(n for n in names if n not in canonical)


# ------------------------------------------------------------------------------------- base-to-new
def base2new_tables(root, trainer=None, config=None, shots=None, paper=None):
    """One table per (method, config, shots) found under root/base2new."""
    results = _select(load_results(os.path.join(root, "base2new")), trainer, config, shots)
    groups = defaultdict(list)
    for r in results:
        if r.get("subsample") in ("base", "new"):
            groups[(r.get("method"), r.get("config"), r.get("shots"))].append(r)
    tables = []
    for (method, cfg, k), runs in sorted(groups.items(), key=lambda kv: tuple(str(x) for x in kv[0])):
        entry = paper or default_paper_entry(method, cfg)
        reference = BASE2NEW.get(entry, {}) if entry else {}
        by_dataset = defaultdict(lambda: {"base": [], "new": []})
        for r in runs:
            by_dataset[r["dataset"]][r["subsample"]].append(r)
        rows, notes = [], []
        for dataset in _order(list(by_dataset), BASE2NEW_DATASETS):
            base = _latest(by_dataset[dataset]["base"])
            new = _latest(by_dataset[dataset]["new"])
            row = {"dataset": dataset, "base_seeds": sorted(base), "new_seeds": sorted(new)}
            if base:
                row["base"], row["base_std"] = mean(map(_accuracy, base.values())), pstdev(map(_accuracy, base.values()))
            if new:
                row["new"], row["new_std"] = mean(map(_accuracy, new.values())), pstdev(map(_accuracy, new.values()))
            if base and new:
                row["hm"] = harmonic_mean(row["base"], row["new"])
            if sorted(base) != sorted(new):
                notes.append(f"{dataset}: base seeds {sorted(base)}, new seeds {sorted(new)}")
            paper_row = reference.get("per_dataset", {}).get(dataset)
            if paper_row:
                row["paper"] = paper_row
            elif dataset in reference.get("per_dataset_hm", {}):
                row["paper"] = (None, None, reference["per_dataset_hm"][dataset])
            rows.append(row)
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
        tables.append({"kind": "base2new", "method": method, "config": cfg, "shots": k, "paper": entry,
                       "paper_source": reference.get("source"), "rows": rows, "average": average, "notes": notes})
    return tables


def _fmt(x):
    return "" if x is None else f"{x:.2f}"


def _diff(ours, theirs):
    return "" if ours is None or theirs is None else f"{ours - theirs:+.2f}"


def base2new_markdown(table):
    title = f"### {table['method']} / {table['config']} / {table['shots']} shots: base-to-new"
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


def bar_chart_svg(title, groups, series, width_per_group=70, height=260):
    """A grouped bar chart (values 0-100) as SVG text. groups: names; series: [(label, colour, values)]."""
    n_series = max(1, len(series))
    width = 60 + width_per_group * max(1, len(groups)) + 20
    plot_h = height - 90
    bar_w = (width_per_group - 14) / n_series
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" '
             f'font-size="10">', f'<text x="10" y="16" font-size="13">{_escape(title)}</text>']
    for tick in range(0, 101, 25):
        y = 30 + plot_h * (1 - tick / 100)
        parts.append(f'<line x1="50" x2="{width - 10}" y1="{y:.1f}" y2="{y:.1f}" stroke="#ddd"/>'
                     f'<text x="44" y="{y + 3:.1f}" text-anchor="end">{tick}</text>')
    for gi, group in enumerate(groups):
        x0 = 57 + gi * width_per_group
        for si, (_, colour, values) in enumerate(series):
            v = values[gi]
            if v is None:
                continue
            h = plot_h * max(0.0, min(100.0, v)) / 100
            parts.append(f'<rect x="{x0 + si * bar_w:.1f}" y="{30 + plot_h - h:.1f}" width="{bar_w - 1:.1f}" '
                         f'height="{h:.1f}" fill="{colour}"><title>{_escape(group)}: {v:.2f}</title></rect>')
        parts.append(f'<text x="{x0 + (width_per_group - 14) / 2:.1f}" y="{30 + plot_h + 12}" text-anchor="end" '
                     f'transform="rotate(-35 {x0 + (width_per_group - 14) / 2:.1f} {30 + plot_h + 12})">'
                     f'{_escape(group)}</text>')
    for si, (label, colour, _) in enumerate(series):
        parts.append(f'<rect x="{60 + si * 110}" y="{height - 14}" width="10" height="10" fill="{colour}"/>'
                     f'<text x="{74 + si * 110}" y="{height - 5}">{_escape(label)}</text>')
    parts.append("</svg>")
    return "\n".join(parts)


def _escape(text):
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def base2new_svg(table):
    rows = table["rows"] + ([table["average"]] if table["average"] else [])
    groups = [r["dataset"].replace("Average ", "Avg ") for r in rows]
    series = [("base", "#4c78a8", [r.get("base") for r in rows]), ("new", "#f58518", [r.get("new") for r in rows]),
              ("HM", "#54a24b", [r.get("hm") for r in rows])]
    if any(r.get("paper") for r in rows):
        series.append(("paper HM", "#bbbbbb", [(r.get("paper") or (None, None, None))[2] for r in rows]))
    return bar_chart_svg(f"{table['method']} {table['config']}: base-to-new", groups, series)


# ------------------------------------------------------------------------------- cross-dataset / DG
def xd_tables(root, trainer=None, config=None, shots=None):
    """Per (method, config, shots): the ImageNet source accuracy and each target's, averaged over seeds;
    the cross-dataset average over the 10 targets and the domain-generalization average over the 4
    ImageNet variants."""
    targets = _select(load_results(os.path.join(root, "evaluation")), trainer, config)
    sources = _select(load_results(os.path.join(root, "imagenet")), trainer, config)
    tables = []
    keys = sorted({(r.get("method"), r.get("config")) for r in targets + sources}, key=lambda k: tuple(map(str, k)))
    for method, cfg in keys:
        per_dataset = defaultdict(list)
        for r in targets:
            if (r.get("method"), r.get("config")) == (method, cfg):
                per_dataset[r["dataset"]].append(r)
        source = [r for r in sources if (r.get("method"), r.get("config")) == (method, cfg) and r.get("mode") == "train"]
        columns = {"ImageNet": mean(map(_accuracy, _latest(source).values())) if source else None}
        seeds = {"ImageNet": sorted(_latest(source))}
        for dataset, runs in per_dataset.items():
            latest = _latest(runs)
            columns[dataset] = mean(map(_accuracy, latest.values()))
            seeds[dataset] = sorted(latest)
        xd = [columns[d] for d in XD_TARGETS if columns.get(d) is not None]
        dg = [columns[d] for d in DG_TARGETS if columns.get(d) is not None]
        tables.append({"kind": "xd", "method": method, "config": cfg, "columns": columns, "seeds": seeds,
                       "xd_average": (mean(xd), len(xd)) if xd else None, "dg_average": (mean(dg), len(dg)) if dg else None})
    return tables


def xd_markdown(table):
    cols = table["columns"]
    out = [f"### {table['method']} / {table['config']}: cross-dataset and domain generalization (source ImageNet)", ""]
    for title, names, avg in (("cross-dataset", XD_TARGETS, table["xd_average"]), ("domain generalization", DG_TARGETS,
                                                                                     table["dg_average"])):
        present = [d for d in names if cols.get(d) is not None]
        if not present and title == "domain generalization":
            continue
        header = ["Source: ImageNet"] + present + [f"Average ({avg[1]} targets)" if avg else "Average"]
        values = [_fmt(cols.get("ImageNet"))] + [_fmt(cols[d]) for d in present] + [_fmt(avg[0] if avg else None)]
        out += [f"{title}:", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header),
                "| " + " | ".join(values) + " |", ""]
    return "\n".join(out)


def xd_csv(table):
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["method", "config", "dataset", "accuracy", "seeds"])
    for dataset, value in table["columns"].items():
        writer.writerow([table["method"], table["config"], dataset, _fmt(value),
                         " ".join(map(str, table["seeds"].get(dataset, [])))])
    return buf.getvalue()


def dg_tables(root, trainer=None, config=None, shots=None):
    """MetaPrompt's leave-one-domain-out protocol: per dataset, each held-out domain and their average."""
    results = _select(load_results(os.path.join(root, "dg")), trainer, config, shots)
    groups = defaultdict(lambda: defaultdict(list))
    for r in results:
        target = (r.get("target_domains") or ["?"])[0]
        groups[(r.get("method"), r.get("config"), r.get("shots"), r.get("dataset"))][target].append(r)
    tables = []
    for (method, cfg, k, dataset), per_target in sorted(groups.items(), key=lambda kv: tuple(map(str, kv[0]))):
        columns = {t: mean(map(_accuracy, _latest(runs).values())) for t, runs in sorted(per_target.items())}
        seeds = {t: sorted(_latest(runs)) for t, runs in per_target.items()}
        paper = {name: values[dataset] for name, values in DG.items() if dataset in values}
        tables.append({"kind": "dg", "method": method, "config": cfg, "shots": k, "dataset": dataset,
                       "columns": columns, "seeds": seeds, "average": mean(columns.values()), "paper": paper})
    return tables


def dg_markdown(table):
    names = list(table["columns"])
    header = ["target domain"] + names + ["Average"]
    values = [f"{table['method']} ({table['shots']}-shot)"] + [_fmt(table["columns"][n]) for n in names] + \
             [_fmt(table["average"])]
    out = [f"### {table['dataset']} / {table['config']}: leave-one-domain-out", "",
           "| " + " | ".join(header) + " |", "|" + "---|" * len(header), "| " + " | ".join(values) + " |"]
    for name, value in table["paper"].items():
        out.append("| " + " | ".join([f"paper: {name}"] + [""] * len(names) + [_fmt(value)]) + " |")
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
    "base2new": (base2new_tables, base2new_markdown, base2new_csv, base2new_svg),
    "xd": (xd_tables, xd_markdown, xd_csv, None),
    "dg": (dg_tables, dg_markdown, dg_csv, None),
}


def _slug(*parts):
    return "_".join(str(p).replace("/", "-").replace(" ", "") for p in parts if p is not None)


def build(kind, root, out_dir=None, trainer=None, config=None, shots=None, paper=None, out=print):
    """Build, print and write the tables of one protocol; returns the tables (empty if no results)."""
    collect, markdown, to_csv, svg = RENDERERS[kind]
    kwargs = {"paper": paper} if kind == "base2new" else {}
    tables = collect(root, trainer, config, shots, **kwargs)
    if not tables:
        out(f"No {kind} results (result.json) under {root}"
            + (f" for trainer {trainer}" if trainer else "") + (f", config {config}" if config else ""))
        return tables
    out_dir = out_dir or os.path.join(root, "tables")
    for table in tables:
        text = markdown(table)
        out(text)
        stem = os.path.join(out_dir, _slug(kind, table.get("dataset"), table["method"], table["config"]))
        with atomic_write(stem + ".md", "w") as f:
            f.write(text)
        with atomic_write(stem + ".csv", "w") as f:
            f.write(to_csv(table))
        written = [stem + ".md", stem + ".csv"]
        if svg is not None:
            with atomic_write(stem + ".svg", "w") as f:
                f.write(svg(table))
            written.append(stem + ".svg")
        out(f"Written: {', '.join(written)}\n")
    return tables
