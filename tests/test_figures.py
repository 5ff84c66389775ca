"""The results figures (vlprompt.figures): files written, and nothing clipped from 1 to 15 datasets.

Layout check: after drawing, every visible text artist's window extent (title, legend, tick and axis
labels, notes) lies inside the figure's bounding box.
"""
import pytest

from vlprompt import figures
from vlprompt.paper_numbers import BASE2NEW, BASE2NEW_DATASETS, DG, DG_TARGETS, XD_TARGETS

FIFTEEN = BASE2NEW_DATASETS + DG_TARGETS
LONG_CONFIG = "vit_b16_c2_ep5_batch4_2ctx_with_a_rather_long_variant_name"


def texts_outside(fig):
    """(text, extent) of every visible, non-empty text whose extent leaves the figure."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    box = fig.bbox
    outside = []
    for text in fig.findobj(lambda a: hasattr(a, "get_text") and hasattr(a, "get_window_extent")):
        if not text.get_visible() or not text.get_text().strip():
            continue
        ext = text.get_window_extent(renderer)
        if ext.x0 < box.x0 - 0.5 or ext.y0 < box.y0 - 0.5 or ext.x1 > box.x1 + 0.5 or ext.y1 > box.y1 + 0.5:
            outside.append((text.get_text(), ext.bounds))
    return outside


def visible_texts(fig):
    fig.canvas.draw()
    return [t.get_text() for t in fig.findobj(lambda a: hasattr(a, "get_text") and hasattr(a, "get_window_extent"))
            if t.get_visible() and t.get_text().strip()]


def b2n_table(names, paper=True):
    rows = []
    for i, name in enumerate(names):
        base, new = {1: 80.0 + i % 7, 2: 82.0 + i % 7, 3: 81.0 + i % 7}, {1: 60.0 + i % 5, 2: 64.0 + i % 5, 3: 62.0 + i % 5}
        b, n = sum(base.values()) / 3, sum(new.values()) / 3
        row = {"dataset": name, "base": b, "new": n, "hm": 2 * b * n / (b + n), "base_values": base,
               "new_values": new, "base_seeds": [1, 2, 3], "new_seeds": [1, 2, 3]}
        if paper and name in BASE2NEW["MaPLe"]["per_dataset"]:
            row["paper"] = BASE2NEW["MaPLe"]["per_dataset"][name]
        rows.append(row)
    b, n = sum(r["base"] for r in rows) / len(rows), sum(r["new"] for r in rows) / len(rows)
    return {"kind": "base2new", "method": "MaPLe", "config": LONG_CONFIG, "shots": 16, "paper": "MaPLe",
            "paper_source": "MaPLe paper, Table 1", "rows": rows, "notes": [],
            "average": {"dataset": f"Average ({len(rows)} datasets)", "base": b, "new": n, "hm": 2 * b * n / (b + n)}}


def xd_table(targets):
    columns = {"ImageNet": 70.7, **{t: 40.0 + 3 * i for i, t in enumerate(targets)}}
    xd = [columns[t] for t in XD_TARGETS if t in columns]
    dg = [columns[t] for t in DG_TARGETS if t in columns]
    return {"kind": "xd", "method": "MaPLe", "config": LONG_CONFIG, "columns": columns, "seeds": {},
            "per_seed": {k: [v - 1, v + 1] for k, v in columns.items()},
            "xd_average": (sum(xd) / len(xd), len(xd)) if xd else None,
            "dg_average": (sum(dg) / len(dg), len(dg)) if dg else None}


def dg_table(domains):
    columns = {d: 90.0 - i for i, d in enumerate(domains)}
    return {"kind": "dg", "method": "MetaPrompt", "config": "vit_b16_c2_ep10_dg", "shots": 5, "dataset": "PACSFS",
            "columns": columns, "seeds": {d: [1, 2, 3] for d in domains}, "average": sum(columns.values()) / len(columns),
            "paper": {name: values["PACSFS"] for name, values in DG.items()}}


@pytest.mark.parametrize("n", [1, 15])
def test_base2new_figure_keeps_every_text_inside_at_1_and_15_datasets(n):
    fig = figures.table_figure(b2n_table(FIFTEEN[:n]))
    assert texts_outside(fig) == []
    texts = visible_texts(fig)
    for expected in FIFTEEN[:n] + [f"Avg ({n} datasets)", "Base", "New", "HM", "paper", "whiskers: min-max over seeds",
                                   "Accuracy (%)", "paper: MaPLe (MaPLe paper, Table 1)"]:
        assert expected in texts
    assert "MaPLe / vit_b16_c2_ep5_batch4_2ctx_with_a_rather_long_variant_name / 16 shots: base-to-new" == \
        " ".join(t for t in texts if t.startswith("MaPLe /")).replace("\n", " ")


@pytest.mark.parametrize("n", [1, 15])
def test_cross_dataset_and_dg_figures_keep_every_text_inside(n):
    targets = (XD_TARGETS + DG_TARGETS + ["MyData"])[:n]
    fig = figures.table_figure(xd_table(targets))
    assert texts_outside(fig) == []
    assert "ImageNet (source)" in visible_texts(fig)
    domains = ["art_painting", "cartoon", "photo", "sketch", "clipart", "infograph", "painting", "quickdraw", "real",
               "product", "Art", "Clipart", "Product", "Real_World", "LabelMe"][:n]
    fig = figures.table_figure(dg_table(domains))
    assert texts_outside(fig) == []
    texts = visible_texts(fig)
    assert domains[0] in texts and "Average" in texts and "paper: MetaPrompt (5-shot)" in texts


def test_base2new_bars_whiskers_and_paper_markers_hold_the_numbers():
    table = b2n_table(["Caltech101", "EuroSAT"])
    fig = figures.table_figure(table)
    ax = fig.axes[0]
    heights = sorted(round(p.get_height(), 4) for p in ax.patches)
    rows = table["rows"] + [table["average"]]
    assert heights == sorted(round(r[k], 4) for r in rows for k in ("base", "new", "hm"))
    marked = [y for line in ax.get_lines() if line.get_label() == "paper" for y in line.get_ydata()]
    paper = BASE2NEW["MaPLe"]["per_dataset"]
    assert sorted(marked) == sorted(list(paper["Caltech101"]) + list(paper["EuroSAT"]))
    # Whiskers: min to max over the seeds (base 80..82, new 60..64 for Caltech101).
    segments = [seg for coll in ax.collections for seg in coll.get_segments()]
    spans = sorted((round(s[0][1], 4), round(s[1][1], 4)) for s in segments)
    assert (80.0, 82.0) in spans and (60.0, 64.0) in spans


def test_write_figure_writes_png_pdf_and_svg(tmp_path):
    paths = figures.write_table_figures(b2n_table(["Caltech101"]), str(tmp_path / "tables" / "base2new_MaPLe"))
    assert paths == [str(tmp_path / "tables" / f"base2new_MaPLe.{ext}") for ext in ("png", "pdf", "svg")]
    png, pdf, svg = (open(p, "rb").read() for p in paths)
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and pdf.startswith(b"%PDF-") and b"<svg" in svg[:400]
    assert sorted(p.name for p in (tmp_path / "tables").iterdir()) == [
        "base2new_MaPLe.pdf", "base2new_MaPLe.png", "base2new_MaPLe.svg"]  # no temporary files left


def test_bars_start_at_zero_and_a_missing_value_is_not_a_zero():
    table = b2n_table(["Caltech101", "EuroSAT", "DescribableTextures"])
    table["rows"][1].update(new=None, new_values={}, hm=None)  # EuroSAT has no new result
    table["rows"][2].update(base=0.0, base_values={1: 0.0, 2: 0.0, 3: 0.0})  # a real zero
    fig = figures.table_figure(table)
    ax = fig.axes[0]
    assert ax.get_ylim()[0] == 0
    texts = visible_texts(fig)
    assert texts.count("n/a") == 2 and "0" in texts and "no result" in texts  # new and HM of EuroSAT
    stubs = [p for p in ax.patches if p.get_hatch() == "////"]
    assert len(stubs) == 2 and all(p.get_height() == figures.MISSING_STUB for p in stubs)
    assert texts_outside(fig) == []


def fewshot_table(names, with_zero_shot=True):
    shots = [1, 2, 4, 8, 16]
    rows = [{"dataset": name, "shots": {k: (50.0 + i + 5 * j, 1.0) for j, k in enumerate(shots)},
             "per_seed": {k: [49.0 + i + 5 * j, 51.0 + i + 5 * j] for j, k in enumerate(shots)},
             "zero_shot": 45.0 + i if with_zero_shot else None} for i, name in enumerate(names)]
    average = {"dataset": "Average", "shots": {k: (60.0, None) for k in shots}, "per_seed": {},
               "zero_shot": 46.0 if with_zero_shot else None}
    return {"kind": "fewshot", "method": "CoOp", "config": "rn50", "backbone": "RN50", "all_shots": shots,
            "rows": rows, "average": average, "notes": []}


@pytest.mark.parametrize("n", [1, 11])
def test_fewshot_figure_has_a_panel_per_dataset_and_the_zero_shot_reference(n):
    table = fewshot_table(BASE2NEW_DATASETS[:n])
    fig = figures.table_figure(table)
    assert texts_outside(fig) == []
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title() for ax in visible] == BASE2NEW_DATASETS[:n] + ["Average"]
    first = visible[0]
    line = first.get_lines()[0]
    assert list(line.get_xdata()) == [1, 2, 3, 4, 5] and list(line.get_ydata()) == [50.0, 55.0, 60.0, 65.0, 70.0]
    stars = [ln for ln in first.get_lines() if ln.get_marker() == "*"]
    assert len(stars) == 1 and list(stars[0].get_xdata()) == [0] and list(stars[0].get_ydata()) == [45.0]
    assert [t.get_text() for t in first.get_xticklabels()] == ["0", "1", "2", "4", "8", "16"]
    texts = visible_texts(fig)
    assert "Zero-shot CLIP" in texts and "min-max over seeds" in texts and "CoOp (RN50)" in texts
