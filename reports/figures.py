"""Plotly figures for the Reports tab and the HTML report. Every bar carries its interval and n.

Inputs are the dicts of :mod:`reports.metrics` and :mod:`reports.costs`; nothing here queries the
store. Undefined values (None) are drawn as a labelled gap, never as a bar of height 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import html

import numpy as np
import plotly.graph_objects as go

METRIC_TITLES = {"accuracy": "Accuracy 准确率", "f1": "F1", "balanced_accuracy": "Balanced accuracy 平衡准确率",
                 "precision": "Precision 精确率", "recall": "Recall 召回率", "specificity": "Specificity 特异度"}
COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b")
# A small layout-only template: Plotly's bundled ones carry defaults for every trace type and cost
# ~70 ms per figure to copy, which dominated the HTML report.
_AXIS = dict(gridcolor="#e5e5e5", zerolinecolor="#cccccc", linecolor="#444", automargin=True)
_TEMPLATE = dict(layout=dict(paper_bgcolor="white", plot_bgcolor="white", colorway=list(COLORS),
                             xaxis=_AXIS, yaxis=_AXIS, hoverlabel=dict(align="left")))
_LAYOUT = dict(template=_TEMPLATE, margin=dict(l=60, r=20, t=60, b=60), font=dict(size=12))


def _t(v: Any) -> str:
    """User or model text made inert for Plotly's pseudo-HTML labels (it decodes entities back for display)."""
    return html.escape(str(v), quote=False)


def _pct(v: float | None) -> str:
    return "n/a" if v is None else f"{100 * v:.0f}%"


def run_label(r: dict[str, Any]) -> str:
    """Short label of a run: its name, else engine · model · prompt version."""
    if r.get("name"):
        return _t(r["name"])
    parts = [str(r.get("engine") or "?")]
    if r.get("model"):
        parts.append(str(r["model"]).rsplit("/", 1)[-1])
    if r.get("prompt_id"):
        parts.append(f"{r['prompt_id']}@{r.get('prompt_version')}")
    return _t(" · ".join(parts) + f" ({str(r.get('run_id', ''))[-4:]})")


def metric_bars(rows: Sequence[dict[str, Any]], metrics: Sequence[str] = ("accuracy", "f1", "balanced_accuracy"),
                label_key: str | None = None, title: str | None = None) -> go.Figure:
    """Grouped bars, one group per row (run or prompt-version cell), with 95% interval error bars."""
    labels = [_t(r.get(label_key)) if label_key else run_label(r) for r in rows]
    fig = go.Figure()
    gaps = []
    for i, m in enumerate(metrics):
        ys, plus, minus, hover = [], [], [], []
        for r, lab in zip(rows, labels):
            v, ci = r.get(m), r.get(m + "_ci")
            ys.append(v)
            plus.append(None if v is None or ci is None else ci[1] - v)
            minus.append(None if v is None or ci is None else v - ci[0])
            ci_txt = "" if ci is None else f" (95% CI {_pct(ci[0])}–{_pct(ci[1])})"
            hover.append(f"{lab}<br>{METRIC_TITLES.get(m, m)}: {_pct(v)}{ci_txt}<br>n={r.get('n')}, "
                         f"label set {_t(r.get('label_set'))}, policy {r.get('policy')}")
            if v is None:
                gaps.append((lab, m))
        fig.add_bar(name=METRIC_TITLES.get(m, m), x=labels, y=ys, marker_color=COLORS[i % len(COLORS)],
                    error_y=dict(type="data", symmetric=False, array=plus, arrayminus=minus, visible=True),
                    hovertext=hover, hoverinfo="text")
    notes = [dict(x=lab, y=0.02, text=f"{m}: undefined", showarrow=False, font=dict(size=10, color="#888"),
                  textangle=-90, yanchor="bottom") for lab, m in gaps]
    n_txt = ", ".join(sorted({f"n={r.get('n')}" for r in rows})) if len(rows) <= 3 else "n per bar in hover"
    fig.update_layout(title=title or f"Accuracy, F1, balanced accuracy with 95% intervals ({n_txt})",
                      barmode="group", annotations=notes, yaxis=dict(range=[0, 1.05], tickformat=".0%", title="share"), **_LAYOUT)
    return fig


def confusion_heatmap(m: dict[str, Any], title: str | None = None) -> go.Figure:
    """2×2 matrix of one run under its policy (rows: label, columns: prediction)."""
    z = [[m.get("tp", 0), m.get("fn", 0)], [m.get("fp", 0), m.get("tn", 0)]]
    text = [[f"TP {z[0][0]}", f"FN {z[0][1]}"], [f"FP {z[1][0]}", f"TN {z[1][1]}"]]
    fig = go.Figure(go.Heatmap(z=z, x=["predicted: ghost probing 预测鬼探头", "predicted: no 预测无"],
                               y=["label: ghost probing 标注鬼探头", "label: no 标注无"], text=text,
                               texttemplate="%{text}", colorscale="Blues", showscale=False, hoverinfo="text"))
    sub = (f"label set {_t(m.get('label_set'))}, n={m.get('n')}, policy {m.get('policy')}; "
           f"unparsed {m.get('unparsed', 0)}, errors {m.get('errors', 0)}")
    fig.update_layout(title=dict(text=(title or run_label(m)) + f"<br><sup>{sub}</sup>"),
                      yaxis=dict(autorange="reversed"), height=340, **_LAYOUT)
    return fig


def _sweep(y: Sequence[bool], s: Sequence[float]) -> tuple[np.ndarray, np.ndarray, int, int]:
    """True positives and predicted positives at every distinct score threshold (ties together), with P and N."""
    y = np.asarray(y, dtype=bool)
    s = np.asarray(s, dtype=float)
    order = np.argsort(-s, kind="mergesort")
    y, s = y[order], s[order]
    distinct = np.r_[np.where(np.diff(s))[0], y.size - 1]
    tps = np.cumsum(y)[distinct]
    return tps, distinct + 1, max(int(y.sum()), 1), max(int((~y).sum()), 1)


def roc_points(y: Sequence[bool], s: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """(fpr, tpr) of the ROC curve, thresholds at every distinct score (ties handled together)."""
    tps, pred, P, N = _sweep(y, s)
    return np.r_[0.0, (pred - tps) / N], np.r_[0.0, tps / P]


def pr_points(y: Sequence[bool], s: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """(recall, precision) at every distinct score threshold."""
    tps, pred, P, _ = _sweep(y, s)
    return tps / P, tps / pred


def roc_figure(curves: Sequence[dict[str, Any]]) -> go.Figure:
    """curves: {name, y: labels, s: P(ghost probing) scores, auroc, auroc_ci, n}."""
    fig = go.Figure()
    fig.add_scatter(x=[0, 1], y=[0, 1], mode="lines", line=dict(dash="dot", color="#aaa"), name="chance",
                    hoverinfo="skip")
    for i, c in enumerate(curves):
        fpr, tpr = roc_points(c["y"], c["s"])
        ci = c.get("auroc_ci")
        auc_txt = "n/a" if c.get("auroc") is None else f"{c['auroc']:.2f}"
        if ci:
            auc_txt += f" [{ci[0]:.2f}–{ci[1]:.2f}]"
        fig.add_scatter(x=fpr, y=tpr, mode="lines+markers", name=f"{_t(c['name'])} AUROC {auc_txt}, n={c.get('n')}",
                        line=dict(color=COLORS[i % len(COLORS)]))
    fig.update_layout(title="ROC (scored answers with a confidence)", xaxis=dict(title="false positive rate",
                      range=[0, 1]), yaxis=dict(title="true positive rate", range=[0, 1.02]), **_LAYOUT)
    return fig


def pr_figure(curves: Sequence[dict[str, Any]]) -> go.Figure:
    fig = go.Figure()
    for i, c in enumerate(curves):
        rec, prec = pr_points(c["y"], c["s"])
        fig.add_scatter(x=rec, y=prec, mode="lines+markers", name=f"{_t(c['name'])} (n={c.get('n')})",
                        line=dict(color=COLORS[i % len(COLORS)], shape="hv"))
    fig.update_layout(title="Precision–recall (scored answers with a confidence)",
                      xaxis=dict(title="recall", range=[0, 1.02]), yaxis=dict(title="precision", range=[0, 1.02]),
                      **_LAYOUT)
    return fig


def latency_box(rows: Sequence[dict[str, Any]]) -> go.Figure:
    """Box per engine/model from precomputed quartiles (reports.metrics.latency_by_engine)."""
    fig = go.Figure()
    for i, r in enumerate(rows):
        name = _t(f"{r['engine']}" + (f" · {str(r['model']).rsplit('/', 1)[-1]}" if r.get("model") else ""))
        fig.add_trace(go.Box(name=f"{name} (n={r['n']})", x=[f"{name} (n={r['n']})"], q1=[r["q1"]], median=[r["p50"]], q3=[r["q3"]],
                             lowerfence=[r["min"]], upperfence=[r["max"]], mean=[r["mean"]],
                             marker_color=COLORS[i % len(COLORS)], boxpoints=False))
    fig.update_layout(title="Model latency per video, seconds (box: quartiles; whiskers: min–max)",
                      yaxis=dict(title="seconds", rangemode="tozero"), showlegend=False, **_LAYOUT)
    return fig


def cost_per_video(rows: Sequence[dict[str, Any]]) -> go.Figure:
    """Bars of USD per uncached model call (one video); unknown costs are labelled gaps, not 0."""
    labels = [_t(r["label"]) for r in rows]
    ys = [r.get("usd_per_call") if r.get("usd") is not None else None for r in rows]
    hover = []
    for r, y in zip(rows, ys):
        if r.get("usd") is None:
            hover.append(f"{_t(r['label'])}: {_t(r.get('reason') or 'cost unknown')}")
        else:
            p = r.get("price") or {}
            hover.append(f"{_t(r['label'])}: ${r['usd']:.4f} for {r.get('model_calls')} model calls"
                         f"<br>{p.get('provider')}:{p.get('sku')} {p.get('region') or ''} as of {p.get('as_of')}")
    fig = go.Figure(go.Bar(x=labels, y=ys, hovertext=hover, hoverinfo="text", marker_color=COLORS[0],
                           text=[None if y is None else f"${y:.4f}" for y in ys], textposition="outside"))
    notes = []
    for lab, y, r in zip(labels, ys, rows):
        if y is None:
            known_zero = r.get("usd") is not None  # every answer cached: no model call to price
            notes.append(dict(x=lab, y=0, text="no model calls (cached)" if known_zero else "unknown 未知",
                              showarrow=False, yanchor="bottom",
                              font=dict(color="#666" if known_zero else "#b00", size=11)))
    fig.update_layout(title="Cost per video (USD per uncached model call; unknown is not 0)", annotations=notes,
                      yaxis=dict(title="USD", rangemode="tozero"), **_LAYOUT)
    return fig
