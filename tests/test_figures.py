"""reports.figures builds each chart once from plain dicts, without Plotly's per-property validation: these
tests hold every figure to what validated Plotly makes of the same JSON (so no property is misspelt and none is
in a form plotly.js would read differently), and to the layout the Reports tab relies on."""

from __future__ import annotations

import json

import numpy as np
import pytest

from reports import figures as F


def _runs(k: int) -> list[dict]:
    out = []
    for i in range(k):
        out.append(dict(run_id=f"r20260101-000000-{i:04x}", name=None if i % 2 else f"run <b>{i}</b>", engine="openai",
                        model="org/gpt-4o", prompt_id="ghost_probing", prompt_version=str(i),
                        accuracy=None if i == 1 else 0.7, accuracy_ci=None if i == 1 else [0.6, 0.8],
                        f1=0.6, f1_ci=[0.5, 0.7], balanced_accuracy=0.55,
                        balanced_accuracy_ci=None if i == 2 else [0.5, 0.6], n=40 + i, label_set="demo",
                        policy="counted_wrong", planned=50, scored=40, not_predicted=10 if i % 2 else 0, cell=f"c{i}"))
    return out


def _curves(k: int) -> list[dict]:
    rng = np.random.default_rng(1)
    y, s = (rng.random(200) < 0.5).tolist(), np.round(rng.random(200), 2).tolist()
    return [{"name": f"run {j}", "y": y, "s": s, "auroc": 0.5, "auroc_ci": [0.4, 0.6] if j else None, "n": 200}
            for j in range(k)]


def _figures(lang: str) -> dict:
    m = dict(run_id="r1", tp=1, fp=2, tn=3, fn=4, label_set="demo", n=10, policy="counted_wrong", name="x",
             unparsed=2, errors=1)
    lat = [dict(engine="openai", model="org/gpt-4o" if i else None, n=10, q1=1, p50=2, q3=3, min=0, max=5, mean=2.5)
           for i in range(3)]
    cost = [dict(label=f"r{i}", usd=None if i == 3 else (0.0 if i == 4 else 1.0),
                 usd_per_call=None if i in (3, 4) else 0.01, model_calls=100, reason="no price" if i == 3 else None,
                 price={"provider": "openai", "sku": "gpt-4o", "as_of": "2026-01-01"}) for i in range(6)]
    return {
        "bars1": F.metric_bars(_runs(1), lang=lang),
        "bars6": F.metric_bars(_runs(6), lang=lang),
        "cells": F.metric_bars(_runs(3), label_key="cell", title="By prompt <i>version</i>", lang=lang),
        "confusion": F.confusion_heatmap(m, lang=lang),
        "confusion_titled": F.confusion_heatmap(m, title="t", lang=lang),
        "roc1": F.roc_figure(_curves(1), lang=lang),
        "roc3": F.roc_figure(_curves(3), lang=lang),
        "pr2": F.pr_figure(_curves(2), lang=lang),
        "latency": F.latency_box(lat, lang=lang),
        "cost": F.cost_per_video(cost, lang=lang),
    }


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_every_figure_is_what_validated_plotly_makes_of_it(lang):
    import plotly.graph_objects as go

    for name, fig in _figures(lang).items():
        sent = json.loads(fig.to_json())
        # validated Plotly raises on an unknown property and rewrites a non-canonical form (a bare title string,
        # a named colour scale, magic underscores): the fast figure must already be in the canonical form
        assert json.loads(go.Figure(sent).to_json()) == sent, name


def test_layout_the_tab_relies_on():
    figs = _figures("en")
    for name in ("roc1", "roc3", "pr2"):  # legends under the plot, so long names cannot squash the square
        lay = figs[name].to_dict()["layout"]
        assert lay["legend"]["orientation"] == "h" and lay["legend"]["y"] < 0 and lay["legend"]["yanchor"] == "top"
        assert lay["height"] == 460 + 22 * int(name[-1])
    assert [t["type"] for t in figs["roc3"].to_dict()["data"]] == ["scatter"] * 4  # chance line + 3 curves
    bars = figs["bars6"].to_dict()
    assert [t["type"] for t in bars["data"]] == ["bar"] * 3 and bars["layout"]["barmode"] == "group"
    assert bars["layout"]["yaxis"]["range"] == [0, 1.05] and bars["layout"]["title"]["text"].startswith("Accuracy")
    # one undefined accuracy and one missing interval: a labelled gap, and the hatch note for partial runs
    notes = [a["text"] for a in bars["layout"]["annotations"]]
    assert "accuracy: undefined" in notes and any("partial" in t for t in notes)
    assert figs["bars1"].to_dict()["layout"].get("annotations") is None  # nothing to note: no empty list
    heat = figs["confusion"].to_dict()
    assert heat["data"][0]["colorscale"][0] == [0.0, "rgb(247,251,255)"] and heat["layout"]["height"] == 340
    assert heat["layout"]["yaxis"]["autorange"] == "reversed"
    # our colours over Plotly's default template (its font colour and title placement stay)
    tpl = figs["latency"].to_dict()["layout"]["template"]["layout"]
    assert tpl["paper_bgcolor"] == tpl["plot_bgcolor"] == "white" and tpl["colorway"] == list(F.COLORS)
    assert tpl["xaxis"]["gridcolor"] == "#e5e5e5" and tpl["font"]["color"] == "#2a3f5f"
    cost = figs["cost"].to_dict()
    assert [a["text"] for a in cost["layout"]["annotations"]] == ["unknown", "no model calls (cached)"]


def test_figures_do_not_share_state():
    a = F.latency_box([dict(engine="e", model=None, n=1, q1=1, p50=1, q3=1, min=1, max=1, mean=1)])
    a.update_layout(font=dict(size=99), template=dict(layout=dict(paper_bgcolor="black")))
    b = F.latency_box([dict(engine="e", model=None, n=1, q1=1, p50=1, q3=1, min=1, max=1, mean=1)])
    assert b.layout.font.size == 12 and b.layout.template.layout.paper_bgcolor == "white"


def test_gradio_plot_sends_the_figure_as_built():
    import gradio as gr

    fig = F.roc_figure(_curves(2), lang="zh")
    out = gr.Plot().postprocess(fig)
    assert out.type == "plotly" and json.loads(out.plot) == json.loads(fig.to_json())


def test_curves_leave_out_only_points_within_a_pixel_of_the_one_before():
    rng = np.random.default_rng(5)
    lab = rng.random(4000) < 0.5
    score = np.where(rng.random(4000) < 0.8, lab, ~lab) * 0.5 + rng.random(4000) / 2
    for x, y in (F.roc_points(lab, score), F.pr_points(lab, score)):
        tx, ty = F.thin_curve(x, y)
        assert 300 < tx.size < x.size / 2  # thousands of thresholds: most markers would overlap
        assert (tx[0], ty[0], tx[-1], ty[-1]) == (x[0], y[0], x[-1], y[-1])
        j, last = 0, None  # walk the curve: the kept points are a subsequence of it, in order
        for i in range(x.size):
            if j < tx.size and (x[i], y[i]) == (tx[j], ty[j]):
                j, last = j + 1, i
            assert abs(x[i] - x[last]) < F.CURVE_RESOLUTION and abs(y[i] - y[last]) < F.CURVE_RESOLUTION
        assert j == tx.size
    # a small run (every step wider than the resolution) is drawn point for point
    x, y = F.roc_points(lab[:200], score[:200])
    tx, ty = F.thin_curve(x, y)
    assert np.array_equal(tx, x) and np.array_equal(ty, y)
    fig = F.roc_figure([{"name": "r", "y": lab.tolist(), "s": score.tolist(), "auroc": 0.8, "auroc_ci": None, "n": 4000}])
    assert len(fig.data[1].x) == F.thin_curve(*F.roc_points(lab, score))[0].size


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_confusion_pair_html_shows_both_policies_shaded_like_the_heatmap(lang):
    """The tab's matrices: both policies side by side as HTML tables (no Plotly to draw), each titled, every count in
    its cell, shaded on the heatmap's Blues scale from the smallest count (lightest) to the largest (darkest)."""
    from html.parser import HTMLParser

    from plotly.colors import sequential

    m = dict(run_id="r1", tp=1, fp=2, tn=3, fn=4, label_set="demo<x>", n=10, policy="counted_wrong", unparsed=2, errors=1)
    ex = {**m, "tp": 0, "n": 7, "policy": "excluded"}
    out = F.confusion_pair_html(m, ex, ["a &lt;b&gt;", "b"], lang=lang)

    class Cells(HTMLParser):
        def __init__(self):
            super().__init__()
            self.cells, self.text, self.cur = [], [], None

        def handle_starttag(self, tag, attrs):
            a = dict(attrs)
            if tag == "td":
                self.cur = [a["class"], a["style"], ""]
            assert tag not in ("b", "x"), tag  # user text stays inert

        def handle_endtag(self, tag):
            if tag == "td":
                self.cells.append(tuple(self.cur))
                self.cur = None

        def handle_data(self, data):
            if self.cur is not None:
                self.cur[2] += data
            self.text.append(data)

    p = Cells()
    p.feed(out)
    text = " ".join(p.text)
    assert [c[2] for c in p.cells] == ["TP 1", "FN 4", "FP 2", "TN 3", "TP 0", "FN 4", "FP 2", "TN 3"]
    assert "a <b>" in text and "demo<x>" in text  # decoded for display, never markup
    assert ("n=7, policy excluded" if lang == "en" else "n=7，策略 excluded") in text
    assert ("predicted: ghost probing" if lang == "en" else "预测：鬼探头") in text

    def rgb(style):
        return "rgb" + style.split("background:rgb", 1)[1].split(";", 1)[0].replace(" ", "")

    first = {c[0]: rgb(c[1]) for c in p.cells[:4]}
    assert first["gp-cm-tp"] == sequential.Blues[0].replace(" ", "")  # smallest count: the scale's first colour
    assert first["gp-cm-fn"] == sequential.Blues[-1].replace(" ", "")  # largest: its last
    # equal counts: one shade, no division by zero
    flat = F.confusion_pair_html({**m, "tp": 2, "fp": 2, "tn": 2, "fn": 2}, ex, ["a", "b"], lang=lang)
    assert flat.count(sequential.Blues[0].replace(",", ", ")) >= 4
