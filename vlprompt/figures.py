"""The results figures (matplotlib, no display needed): base-to-new, cross-dataset and domain generalization.

Each figure function takes plain, already-aggregated numbers (one value per group and series, the
per-seed values behind each, the papers' values) and returns a matplotlib Figure; `write_figure` saves it
as PNG, PDF and SVG next to the tables. `table_figure` adapts the table dicts of vlprompt.results.

Readable from 1 to 15 groups: the width grows with the number of bars, long x labels are rotated, the
title is wrapped and the legend reflowed until every text lies inside the figure. Bars are the mean over
seeds; whiskers the spread over seeds (min to max of the per-seed values where the table carries them,
else mean ± the table's standard deviation); hollow diamonds the papers' values.
"""
import math
import os
import tempfile
import textwrap

FORMATS = ("png", "pdf", "svg")
COLOURS = {"Base": "#4c78a8", "New": "#f58518", "HM": "#54a24b", "Accuracy": "#4c78a8"}
CATEGORY_COLOURS = {"source": "#4c78a8", "cross-dataset": "#f58518", "domain generalization": "#54a24b",
                    "average": "#72b7b2", "paper": "#bab0ac"}
PALETTE = ("#4c78a8", "#f58518", "#54a24b", "#e45756", "#72b7b2", "#b279a2")


def _matplotlib():
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise ImportError('The results figures need matplotlib: pip install matplotlib (or reinstall vlprompt, '
                          'which requires it)') from None
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    def new_figure(**kwargs):  # drawn by Agg whatever the user's backend: no display, no pyplot state
        fig = Figure(**kwargs)
        FigureCanvasAgg(fig)
        return fig

    return new_figure


def _spread(values):
    """(mean - min, max - mean) of the seeds' values, or None with fewer than two seeds."""
    values = [v for v in values or () if v is not None]
    if len(values) < 2:
        return None
    centre = sum(values) / len(values)
    return centre - min(values), max(values) - centre


def grouped_bar_figure(groups, series, title, ylabel="Accuracy (%)", seeds=None, paper=None, bar_colours=None,
                       legend_extra=None, note=None):
    """A grouped bar chart.

    groups: the x labels. series: {label: [value or None per group]} (the bars, in order). seeds: {label:
    [[per-seed values] per group]} for the whiskers. paper: {label: [paper value or None per group]} drawn
    as markers on the matching bars. bar_colours: one colour per group (single-series charts coloured by
    category), with legend_extra [(label, colour)] to name the categories. note: a line under the axes.
    """
    Figure = _matplotlib()
    from matplotlib.patches import Patch

    groups = [str(g) for g in groups]
    n_groups, n_series = max(1, len(groups)), max(1, len(series))
    rotate = n_groups > 3 or max((len(g) for g in groups), default=0) > 14
    width = min(14.0, max(6.4, 1.4 + n_groups * (0.22 * n_series + 0.2)))
    height = 4.4 + (0.012 * max((len(g) for g in groups), default=0) * 6 if rotate else 0)
    fig = Figure(figsize=(width, height), layout="constrained")
    ax = fig.add_subplot()
    bar_width = 0.8 / n_series
    values_seen, handles, paper_handle, whiskers = [], [], None, False
    for si, (label, values) in enumerate(series.items()):
        xs = [gi + (si - (n_series - 1) / 2) * bar_width for gi in range(len(groups))]
        heights = [math.nan if v is None else v for v in values]
        values_seen += [v for v in values if v is not None]
        colour = bar_colours if bar_colours is not None else COLOURS.get(label, PALETTE[si % len(PALETTE)])
        bars = ax.bar(xs, heights, bar_width * 0.92, color=colour, label=label, zorder=2)
        if bar_colours is None:
            handles.append(bars)
        drawn = [(x, h, _spread(s), s) for x, h, s in zip(xs, heights, (seeds or {}).get(label) or [])]
        drawn = [(x, h, spread, s) for x, h, spread, s in drawn if spread and not math.isnan(h)]
        if drawn:
            whiskers = True
            ax.errorbar([d[0] for d in drawn], [d[1] for d in drawn], yerr=[[d[2][0] for d in drawn],
                                                                            [d[2][1] for d in drawn]],
                        fmt="none", ecolor="#333333", elinewidth=1, capsize=2.5, zorder=3)
            values_seen += [v for d in drawn for v in d[3] if v is not None]
        points = [(x, m) for x, m in zip(xs, (paper or {}).get(label) or []) if m is not None]
        if points:
            values_seen += [m for _, m in points]
            paper_handle, = ax.plot([p[0] for p in points], [p[1] for p in points], linestyle="none", marker="D",
                                    markersize=5, markerfacecolor="white", markeredgecolor="black",
                                    markeredgewidth=1.2, zorder=4, label="paper")
    if bar_colours is not None:
        handles = [Patch(color=c, label=l) for l, c in (legend_extra or [])]
    if paper_handle is not None:
        handles.append(paper_handle)
    if whiskers:
        from matplotlib.lines import Line2D

        handles.append(Line2D([], [], color="#333333", marker="|", markersize=9, linestyle="none",
                              label="spread over seeds"))

    low = min(values_seen, default=0)
    bottom = max(0, math.floor((low - 8) / 10) * 10)
    ax.set_ylim(bottom, 102)  # room for a whisker or marker at 100
    ax.set_yticks(range(bottom, 101, 10 if 100 - bottom > 40 else 5))
    ax.set_xlim(-0.6, len(groups) - 0.4)
    ax.set_xticks(range(len(groups)))
    ax.set_xticklabels(groups, rotation=35 if rotate else 0, ha="right" if rotate else "center",
                       rotation_mode="anchor")
    ax.set_ylabel(ylabel)
    ax.yaxis.grid(True, color="#dddddd", zorder=0)
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    if note:
        ax.set_xlabel(note, fontsize=8, color="#555555")
    _fit_text(fig, title, handles)
    return fig


def _fit_text(fig, title, handles):
    """Wrap the title and reflow the legend until both lie inside the figure's width."""
    renderer = fig.canvas.get_renderer()
    fig_width = fig.bbox.width
    chars = max(20, int(fig_width / 7.5))
    while True:
        suptitle = fig.suptitle("\n".join(textwrap.wrap(title, chars)) or " ", fontsize=11)
        if suptitle.get_window_extent(renderer).width <= fig_width - 12 or chars <= 20:
            break
        suptitle.remove()
        chars -= 4
    if not handles:
        return
    ncols = len(handles)
    while True:
        legend = fig.legend(handles=handles, loc="outside lower center", ncols=ncols, frameon=False, fontsize=9)
        if legend.get_window_extent(renderer).width <= fig_width - 12 or ncols == 1:
            break
        legend.remove()
        ncols -= 1


def base2new_figure(datasets, base, new, hm, title, seeds=None, paper=None, note=None):
    """Per dataset: base, new and HM bars (seed means), whiskers over seeds, the paper's values as markers.

    base/new/hm: [value or None per dataset]; seeds: {"Base"|"New"|"HM": [[per-seed values] per dataset]};
    paper: {"Base"|"New"|"HM": [value or None per dataset]}.
    """
    return grouped_bar_figure(datasets, {"Base": base, "New": new, "HM": hm}, title, seeds=seeds, paper=paper,
                              note=note)


def accuracy_figure(groups, accuracy, categories, title, seeds=None, note=None):
    """One bar per group (cross-dataset targets, DG domains, averages, papers' rows), coloured by category.

    categories: one of CATEGORY_COLOURS' keys per group; seeds: [[per-seed values] per group]."""
    colours = [CATEGORY_COLOURS.get(c, PALETTE[0]) for c in categories]
    used = [c for c in CATEGORY_COLOURS if c in categories]
    return grouped_bar_figure(groups, {"Accuracy": accuracy}, title, seeds={"Accuracy": seeds} if seeds else None,
                              bar_colours=colours, legend_extra=[(c, CATEGORY_COLOURS[c]) for c in used], note=note)


def write_figure(fig, stem, formats=FORMATS):
    """Save as <stem>.png/.pdf/.svg (each written to a temporary file and renamed); the paths written."""
    os.makedirs(os.path.dirname(os.path.abspath(stem)), exist_ok=True)
    written = []
    for fmt in formats:
        path = f"{stem}.{fmt}"
        fd, tmp = tempfile.mkstemp(prefix=os.path.basename(path) + ".", suffix=".tmp", dir=os.path.dirname(
            os.path.abspath(path)))
        try:
            with os.fdopen(fd, "wb") as f:
                fig.savefig(f, format=fmt, dpi=150, metadata={"Date": None} if fmt in ("pdf", "svg") else None)
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.remove(tmp)
            raise
        written.append(path)
    return written


# ------------------------------------------------------------------------ from vlprompt.results' tables
def _per_seed(row, key):
    """A row's per-seed values for `key` ("base"/"new"), where the table carries them."""
    values = row.get(f"{key}_values") or row.get(f"{key}_per_seed")
    if isinstance(values, dict):
        values = list(values.values())
    return list(values) if values else None


def _seed_hms(row):
    base, new = row.get("base_values") or row.get("base_per_seed"), row.get("new_values") or row.get("new_per_seed")
    if isinstance(base, dict) and isinstance(new, dict):
        common = sorted(set(base) & set(new))
        return [2 * base[s] * new[s] / (base[s] + new[s]) for s in common if base[s] + new[s] > 0]
    return None


def _std_whiskers(row, key):
    """Without per-seed values: mean ± the table's standard deviation as the spread."""
    mean, std = row.get(key), row.get(f"{key}_std")
    if mean is None or not std:
        return None
    return [mean - std, mean + std]


def base2new_table_figure(table):
    rows = list(table["rows"]) + ([table["average"]] if table.get("average") else [])
    names = [r["dataset"].replace("Average ", "Avg ") for r in rows]
    seeds = {"Base": [_per_seed(r, "base") or _std_whiskers(r, "base") for r in rows],
             "New": [_per_seed(r, "new") or _std_whiskers(r, "new") for r in rows],
             "HM": [_seed_hms(r) for r in rows]}
    paper = None
    if any(r.get("paper") for r in rows):
        papers = [r.get("paper") or (None, None, None) for r in rows]
        paper = {label: [p[i] for p in papers] for i, label in enumerate(("Base", "New", "HM"))}
    variant = f" {table['variant']}" if table.get("variant") else ""
    title = f"{table['method']} / {table['config']}{variant} / {table.get('shots')} shots: base-to-new"
    note = f"paper: {table['paper']} ({table['paper_source']})" if paper and table.get("paper_source") else None
    return base2new_figure(names, [r.get("base") for r in rows], [r.get("new") for r in rows],
                           [r.get("hm") for r in rows], title, seeds=seeds, paper=paper, note=note)


def xd_table_figure(table, xd_targets, dg_targets):
    columns, per_seed = table["columns"], table.get("per_seed") or {}
    groups, values, categories, seeds = [], [], [], []

    def add(name, value, category, seed_values=None):
        if value is not None:
            groups.append(name)
            values.append(value)
            categories.append(category)
            seeds.append(seed_values)

    add("ImageNet (source)", columns.get("ImageNet"), "source", per_seed.get("ImageNet"))
    for name in xd_targets:
        add(name, columns.get(name), "cross-dataset", per_seed.get(name))
    if table.get("xd_average"):
        add(f"Avg ({table['xd_average'][1]} targets)", table["xd_average"][0], "average")
    for name in dg_targets:
        add(name, columns.get(name), "domain generalization", per_seed.get(name))
    if table.get("dg_average"):
        add(f"Avg ({table['dg_average'][1]} variants)", table["dg_average"][0], "average")
    for name in sorted(set(columns) - set(xd_targets) - set(dg_targets) - {"ImageNet"}):
        add(name, columns[name], "cross-dataset", per_seed.get(name))
    variant = f" {table['variant']}" if table.get("variant") else ""
    title = f"{table['method']} / {table['config']}{variant}: cross-dataset and domain generalization (source ImageNet)"
    return accuracy_figure(groups, values, categories, title, seeds=seeds)


def dg_table_figure(table):
    per_seed = table.get("per_seed") or {}
    groups = list(table["columns"]) + ["Average"]
    values = list(table["columns"].values()) + [table["average"]]
    categories = ["domain generalization"] * len(table["columns"]) + ["average"]
    seeds = [per_seed.get(name) for name in table["columns"]] + [None]
    for name, value in (table.get("paper") or {}).items():
        groups.append(f"paper: {name}")
        values.append(value)
        categories.append("paper")
        seeds.append(None)
    variant = f" {table['variant']}" if table.get("variant") else ""
    title = f"{table['dataset']} / {table['method']} / {table['config']}{variant} ({table.get('shots')}-shot): " \
            "leave-one-domain-out"
    return accuracy_figure(groups, values, categories, title, seeds=seeds)


def table_figure(table):
    """The figure for one of vlprompt.results' tables (by its "kind")."""
    kind = table.get("kind")
    if kind == "base2new":
        return base2new_table_figure(table)
    if kind == "xd":
        from .paper_numbers import DG_TARGETS, XD_TARGETS

        return xd_table_figure(table, XD_TARGETS, DG_TARGETS)
    if kind == "dg":
        return dg_table_figure(table)
    raise ValueError(f"no figure for tables of kind {kind!r}")


def write_table_figures(table, stem):
    """Draw `table` and write <stem>.png/.pdf/.svg; the paths written."""
    return write_figure(table_figure(table), stem)
