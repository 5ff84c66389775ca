"""The results figures (matplotlib, no display needed): base-to-new, cross-dataset and domain generalization.

Each figure function takes plain, already-aggregated numbers (one value per group and series, the
per-seed values behind each, the papers' values) and returns a matplotlib Figure; `write_figure` saves it
as PNG, PDF and SVG next to the tables. `table_figure` adapts the table dicts of vlprompt.results.

Readable from 1 to 15 groups: the width grows with the number of bars, long x labels are rotated, the
title is wrapped and the legend reflowed until every text lies inside the figure. Bars start at 0 and are
the mean over seeds; whiskers the spread over seeds, min to max of the per-seed values (the legend says
so); hollow diamonds the papers' values; a missing value is a hatched outline marked "n/a", never a bar
of height 0 (a zero is labelled "0"). The few-shot figure follows CoOp's: one panel per dataset and the
average, accuracy against shots, seeds as a min-max band, zero-shot CLIP as a star at 0 shots.
"""
import math
import textwrap

FORMATS = ("png", "pdf", "svg")
COLOURS = {"Base": "#4c78a8", "New": "#f58518", "HM": "#54a24b", "Accuracy": "#4c78a8"}
CATEGORY_COLOURS = {"source": "#4c78a8", "cross-dataset": "#f58518", "domain generalization": "#54a24b",
                    "average": "#72b7b2", "paper": "#bab0ac"}
PALETTE = ("#4c78a8", "#f58518", "#54a24b", "#e45756", "#72b7b2", "#b279a2")
WHISKER_LABEL = "whiskers: min-max over seeds"
MISSING_STUB = 3  # height of the hatched outline that marks a missing value


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
    values_seen, handles, paper_handle, whiskers, missing = [], [], None, False, False
    for si, (label, values) in enumerate(series.items()):
        xs = [gi + (si - (n_series - 1) / 2) * bar_width for gi in range(len(groups))]
        heights = [math.nan if v is None else v for v in values]
        values_seen += [v for v in values if v is not None]
        colour = bar_colours if bar_colours is not None else COLOURS.get(label, PALETTE[si % len(PALETTE)])
        bars = ax.bar(xs, heights, bar_width * 0.92, color=colour, label=label, zorder=2)
        if bar_colours is None:
            handles.append(bars)
        for x, v in zip(xs, values):  # a missing value is not a zero: mark each so that they cannot be confused
            if v is None:
                missing = True
                ax.bar(x, MISSING_STUB, bar_width * 0.92, facecolor="none", edgecolor="#999999", hatch="////",
                       linewidth=0.6, zorder=2)
                ax.text(x, MISSING_STUB + 1, "n/a", ha="center", va="bottom", fontsize=6, color="#777777",
                        rotation=90 if n_groups * n_series > 12 else 0)
            elif v == 0:
                ax.text(x, 1, "0", ha="center", va="bottom", fontsize=6, color="#333333")
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
    from matplotlib.lines import Line2D

    if whiskers:
        handles.append(Line2D([], [], color="#333333", marker="|", markersize=9, linestyle="none",
                              label=WHISKER_LABEL))
    if missing:
        handles.append(Patch(facecolor="none", edgecolor="#999999", hatch="////", label="no result"))

    ax.set_ylim(0, 102)  # bars start at 0; room for a whisker or marker at 100
    ax.set_yticks(range(0, 101, 10))
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
    """Save as <stem>.png/.pdf/.svg (each through vlprompt.fileio.atomic_write: a temporary file renamed into
    place, removed on failure and, if a kill leaves it, by the next write); the paths written."""
    from .fileio import atomic_write

    written = []
    for fmt in formats:
        path = f"{stem}.{fmt}"
        with atomic_write(path, "wb") as f:
            fig.savefig(f, format=fmt, dpi=150, metadata={"Date": None} if fmt in ("pdf", "svg") else None)
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


def base2new_table_figure(table):
    rows = list(table["rows"]) + ([table["average"]] if table.get("average") else [])
    names = [r["dataset"].replace("Average ", "Avg ") for r in rows]
    seeds = {"Base": [_per_seed(r, "base") for r in rows], "New": [_per_seed(r, "new") for r in rows],
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

    source = table.get("source", "ImageNet")
    add(f"{source} (source)", columns.get(source), "source", per_seed.get(source))
    for name in xd_targets:
        add(name, columns.get(name), "cross-dataset", per_seed.get(name))
    if table.get("xd_average"):
        add(f"Avg ({table['xd_average'][1]} targets)", table["xd_average"][0], "average")
    for name in dg_targets:
        add(name, columns.get(name), "domain generalization", per_seed.get(name))
    if table.get("dg_average"):
        add(f"Avg ({table['dg_average'][1]} variants)", table["dg_average"][0], "average")
    for name in sorted(set(columns) - set(xd_targets) - set(dg_targets) - {source}):
        add(name, columns[name], "cross-dataset", per_seed.get(name))
    variant = f" {table['variant']}" if table.get("variant") else ""
    title = f"{table['method']} / {table['config']}{variant}: cross-dataset and domain generalization (source {source})"
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


def zeroshot_table_figure(table):
    rows = [r for r in table["rows"]]
    variant = f" {table['variant']}" if table.get("variant") else ""
    return accuracy_figure([r["dataset"] for r in rows], [r["accuracy"] for r in rows], ["source"] * len(rows),
                           f"{table['method']} / {table['config']}{variant}: zero-shot accuracy")


def fewshot_figure(panels, shots, title, method_label, zero_shot_label="Zero-shot CLIP"):
    """CoOp's few-shot figure: one panel per dataset (and the average), accuracy against the number of labelled
    images per class. panels: [(name, {k: mean}, {k: [per-seed values]}, zero-shot accuracy or None)]; shots:
    the shot counts, in order. The method is a line with markers and a band from the lowest to the highest
    seed; zero-shot CLIP a star at 0 shots and a dashed line across the panel."""
    Figure = _matplotlib()
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    n = max(1, len(panels))
    ncols = min(4, n)
    nrows = math.ceil(n / ncols)
    fig = Figure(figsize=(3.2 * ncols + 0.4, 2.7 * nrows + 1.0), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False)
    xs = list(range(1, len(shots) + 1))
    colour, star_colour = PALETTE[0], PALETTE[3]
    band = zero = False
    for index, (name, means, per_seed, zero_shot) in enumerate(panels):
        ax = axes[index // ncols][index % ncols]
        present = [(x, k) for x, k in zip(xs, shots) if means.get(k) is not None]
        ax.plot([x for x, _ in present], [means[k] for _, k in present], marker="o", markersize=4, color=colour,
                linewidth=1.5, zorder=3)
        spans = [(x, min(per_seed[k]), max(per_seed[k])) for x, k in present if len(per_seed.get(k) or ()) > 1]
        if spans:
            band = True
            ax.fill_between([x for x, _, _ in spans], [lo for _, lo, _ in spans], [hi for _, _, hi in spans],
                            color=colour, alpha=0.2, linewidth=0, zorder=2)
        if zero_shot is not None:
            zero = True
            ax.axhline(zero_shot, color=star_colour, linestyle="--", linewidth=1, zorder=2.5)
            ax.plot([0], [zero_shot], marker="*", markersize=11, color=star_colour, linestyle="none", zorder=4)
        for x, k in zip(xs, shots):
            if means.get(k) is None:
                ax.text(x, 0.02, "n/a", transform=ax.get_xaxis_transform(), ha="center", fontsize=6, color="#777777")
        ax.set_title(name, fontsize=10)
        ax.set_xticks([0] + xs)
        ax.set_xticklabels(["0"] + [("all" if k == -1 else str(k)) for k in shots], fontsize=8)
        ax.set_xlim(-0.5, len(shots) + 0.5)
        ax.tick_params(axis="y", labelsize=8)
        ax.grid(True, color="#e5e5e5", zorder=0)
        for side in ("top", "right"):
            ax.spines[side].set_visible(False)
        if index % ncols == 0:
            ax.set_ylabel("Accuracy (%)", fontsize=9)
        if index // ncols == nrows - 1:
            ax.set_xlabel("Labelled images per class", fontsize=9)
    for index in range(n, nrows * ncols):
        axes[index // ncols][index % ncols].set_visible(False)
    handles = [Line2D([], [], color=colour, marker="o", markersize=4, label=method_label)]
    if band:
        handles.append(Patch(color=colour, alpha=0.2, label="min-max over seeds"))
    if zero:
        handles.append(Line2D([], [], color=star_colour, marker="*", markersize=10, linestyle="--",
                              label=zero_shot_label))
    _fit_text(fig, title, handles)
    return fig


def fewshot_table_figure(table):
    shots = table["all_shots"]
    panels = [(r["dataset"], {k: v[0] for k, v in r["shots"].items()}, r.get("per_seed") or {}, r.get("zero_shot"))
              for r in table["rows"]]
    if table.get("average"):
        avg = table["average"]
        panels.append(("Average", {k: v[0] for k, v in avg["shots"].items()}, {}, avg.get("zero_shot")))
    variant = f" {table['variant']}" if table.get("variant") else ""
    title = f"{table['method']} / {table['config']}{variant}: few-shot"
    return fewshot_figure(panels, shots, title, f"{table['method']} ({table.get('backbone') or table['config']})")


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
    if kind == "fewshot":
        return fewshot_table_figure(table)
    if kind == "zeroshot":
        return zeroshot_table_figure(table)
    raise ValueError(f"no figure for tables of kind {kind!r}")


def write_table_figures(table, stem):
    """Draw `table` and write <stem>.png/.pdf/.svg; the paths written."""
    return write_figure(table_figure(table), stem)
