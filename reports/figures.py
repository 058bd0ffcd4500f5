"""Plotly figures for the Reports tab and the HTML report. Every bar carries its interval and n.

Inputs are the dicts of :mod:`reports.metrics` and :mod:`reports.costs`; nothing here queries the
store. Undefined values (None) are drawn as a labelled gap, never as a bar of height 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import html
import threading

import numpy as np
import plotly.graph_objects as go

_LOCK = threading.Lock()

METRIC_TITLES = {"accuracy": "Accuracy 准确率", "f1": "F1", "balanced_accuracy": "Balanced accuracy 平衡准确率",
                 "precision": "Precision 精确率", "recall": "Recall 召回率", "specificity": "Specificity 特异度"}
_METRIC_LANG = {"en": {"accuracy": "Accuracy", "f1": "F1", "balanced_accuracy": "Balanced accuracy",
                       "precision": "Precision", "recall": "Recall", "specificity": "Specificity"},
                "zh": {"accuracy": "准确率", "f1": "F1", "balanced_accuracy": "平衡准确率", "precision": "精确率",
                       "recall": "召回率", "specificity": "特异度"}}
_TX = {
    "en": {"undefined": "{m}: undefined", "bars": "Accuracy, F1, balanced accuracy with 95% intervals ({n})",
           "n_hover": "n per bar in hover", "share": "share", "hover": "n={n}, label set {ls}, policy {pol}",
           "partial": "partial: {scored}/{planned} scored", "partial_note": "hatched: partial run (planned videos without an answer)",
           "pred_yes": "predicted: ghost probing", "pred_no": "predicted: no", "lab_yes": "label: ghost probing",
           "lab_no": "label: no", "conf_sub": "label set {ls}, n={n}, policy {pol}; unparsed {u}, errors {e}",
           "chance": "chance", "roc": "ROC (scored answers with a confidence)", "fpr": "false positive rate",
           "tpr": "true positive rate", "pr": "Precision–recall (scored answers with a confidence)", "recall": "recall",
           "precision": "precision", "latency": "Model latency per video, seconds (box: quartiles; whiskers: min–max)",
           "seconds": "seconds", "cost_unknown": "cost unknown", "cost_hover": "{label}: ${usd:.4f} for {calls} model calls",
           "cached": "no model calls (cached)", "unknown": "unknown",
           "cost": "Cost per video (USD per uncached model call; unknown is not 0)"},
    "zh": {"undefined": "{m}：无法计算", "bars": "准确率、F1、平衡准确率（95% 区间；{n}）", "n_hover": "每根柱子的 n 见悬停提示",
           "share": "比例", "hover": "n={n}，标签集 {ls}，策略 {pol}",
           "partial": "部分完成：{scored}/{planned} 已评分", "partial_note": "斜线：部分完成的运行（有计划的视频没有回答）",
           "pred_yes": "预测：鬼探头", "pred_no": "预测：无", "lab_yes": "标注：鬼探头", "lab_no": "标注：无",
           "conf_sub": "标签集 {ls}，n={n}，策略 {pol}；未解析 {u}，出错 {e}", "chance": "随机",
           "roc": "ROC（带置信度的已解析回答）", "fpr": "假阳性率", "tpr": "真阳性率",
           "pr": "精确率–召回率（带置信度的已解析回答）", "recall": "召回率", "precision": "精确率",
           "latency": "每视频模型延迟（秒；箱体为四分位，须为最小–最大）", "seconds": "秒", "cost_unknown": "成本未知",
           "cost_hover": "{label}：${usd:.4f}，{calls} 次模型调用", "cached": "没有模型调用（全部缓存）",
           "unknown": "未知", "cost": "每视频成本（美元/次未缓存的模型调用；未知不是 0）"},
}


def _L(lang: str | None) -> dict[str, str]:
    return _TX.get(lang or "zh", _TX["zh"])


def coverage_of(r: dict[str, Any]) -> tuple[int, int, int] | None:
    """(planned, scored, not answered) of a run row: ``coverage`` set by the caller as that tuple, or the
    planned/scored/not_predicted keys of reports.runs; None when unknown."""
    cov = r.get("coverage")
    if isinstance(cov, (tuple, list)):
        return tuple(int(x) for x in cov)  # type: ignore[return-value]
    if r.get("planned") is None:
        return None
    planned, scored = int(r["planned"]), int(r.get("scored") or 0)
    left = r.get("not_predicted")
    left = int(left) if left is not None else max(planned - int(r.get("predictions") or scored), 0)
    return planned, scored, left
COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b")
# Our layout defaults, laid over Plotly's default template (what ``fig.update_layout(template=...)`` on a
# new figure did, so the charts look as they always have).
_AXIS = dict(gridcolor="#e5e5e5", zerolinecolor="#cccccc", linecolor="#444", automargin=True)
_TEMPLATE = dict(layout=dict(paper_bgcolor="white", plot_bgcolor="white", colorway=list(COLORS),
                             xaxis=_AXIS, yaxis=_AXIS, hoverlabel=dict(align="left")))
_LAYOUT = dict(margin=dict(l=60, r=20, t=60, b=60), font=dict(size=12))
# Each figure is built once from plain dicts and wrapped without Plotly's per-property validation: chained
# update_layout calls re-validated the whole layout each time (~40 ms a figure, most of a Reports click).
# tests/test_figures.py checks every figure against Plotly's validated form of the same dict.
_MERGED: dict[str, dict] = {}


def _template() -> dict[str, Any]:
    """Plotly's default template with ours laid over it, as plain JSON (built once per default template;
    go.Figure copies what it is given, so the one dict is shared)."""
    import plotly.io as pio

    name = str(pio.templates.default)
    with _LOCK:
        t = _MERGED.get(name)
        if t is None:
            fig = go.Figure()
            fig.update_layout(template=_TEMPLATE)
            t = _MERGED[name] = fig.layout.template.to_plotly_json()
    return t


def _title(text: Any) -> dict[str, Any]:
    return {"text": text}


def _figure(data: list[dict[str, Any]], layout: dict[str, Any]) -> go.Figure:
    """One Figure from trace and layout dicts (each trace names its ``type``), with our template, unvalidated.
    (An empty annotation list is left out, as Plotly leaves it out.)"""
    if "annotations" in layout and not layout["annotations"]:
        layout = {k: v for k, v in layout.items() if k != "annotations"}
    return go.Figure({"data": data, "layout": {**layout, "template": _template()}}, _validate=False)


def _blues() -> list[list[Any]]:
    from plotly.colors import sequential

    c = sequential.Blues
    return [[i / (len(c) - 1), v] for i, v in enumerate(c)]


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
                label_key: str | None = None, title: str | None = None, lang: str = "zh") -> go.Figure:
    """Grouped bars, one group per row (run or prompt-version cell), with 95% interval error bars.

    A partial run (coverage with missing videos) is drawn hatched and its label says scored/planned."""
    L = _L(lang)
    names = _METRIC_LANG.get(lang, METRIC_TITLES)
    covs = [coverage_of(r) for r in rows]
    labels = []
    for r, cov in zip(rows, covs):
        lab = _t(r.get(label_key)) if label_key else run_label(r)
        if cov and cov[2]:
            lab += f" ⚠ {cov[1]}/{cov[0]}"
        labels.append(lab)
    partial = [bool(cov and cov[2]) for cov in covs]
    data, gaps = [], []
    for i, m in enumerate(metrics):
        ys, plus, minus, hover = [], [], [], []
        for r, lab, cov in zip(rows, labels, covs):
            v, ci = r.get(m), r.get(m + "_ci")
            ys.append(v)
            plus.append(None if v is None or ci is None else ci[1] - v)
            minus.append(None if v is None or ci is None else v - ci[0])
            ci_txt = "" if ci is None else f" (95% CI {_pct(ci[0])}–{_pct(ci[1])})"
            h = (f"{lab}<br>{names.get(m, m)}: {_pct(v)}{ci_txt}<br>"
                 + L["hover"].format(n=r.get("n"), ls=_t(r.get("label_set")), pol=r.get("policy")))
            if cov and cov[2]:
                h += "<br>" + L["partial"].format(scored=cov[1], planned=cov[0])
            hover.append(h)
            if v is None:
                gaps.append((lab, m))
        data.append(dict(type="bar", name=names.get(m, m), x=labels, y=ys,
                         marker=dict(color=COLORS[i % len(COLORS)],
                                     pattern=dict(shape=["/" if p else "" for p in partial], fillmode="overlay",
                                                  fgcolor="#333", solidity=0.35)),
                         error_y=dict(type="data", symmetric=False, array=plus, arrayminus=minus, visible=True),
                         hovertext=hover, hoverinfo="text"))
    notes = [dict(x=lab, y=0.02, text=L["undefined"].format(m=m), showarrow=False, font=dict(size=10, color="#888"),
                  textangle=-90, yanchor="bottom") for lab, m in gaps]
    if any(partial):
        notes.append(dict(xref="paper", yref="paper", x=0, y=1.0, xanchor="left", yanchor="bottom", showarrow=False,
                          text=L["partial_note"], font=dict(size=11, color="#b00")))
    n_txt = ", ".join(sorted({f"n={r.get('n')}" for r in rows})) if len(rows) <= 3 else L["n_hover"]
    return _figure(data, dict(title=_title(title or L["bars"].format(n=n_txt)), barmode="group", annotations=notes,
                              yaxis=dict(range=[0, 1.05], tickformat=".0%", title=_title(L["share"])), **_LAYOUT))


def confusion_heatmap(m: dict[str, Any], title: str | None = None, lang: str = "zh") -> go.Figure:
    """2×2 matrix of one run under its policy (rows: label, columns: prediction)."""
    L = _L(lang)
    z = [[m.get("tp", 0), m.get("fn", 0)], [m.get("fp", 0), m.get("tn", 0)]]
    text = [[f"TP {z[0][0]}", f"FN {z[0][1]}"], [f"FP {z[1][0]}", f"TN {z[1][1]}"]]
    trace = dict(type="heatmap", z=z, x=[L["pred_yes"], L["pred_no"]], y=[L["lab_yes"], L["lab_no"]], text=text,
                 texttemplate="%{text}", colorscale=_blues(), showscale=False, hoverinfo="text")
    sub = L["conf_sub"].format(ls=_t(m.get("label_set")), n=m.get("n"), pol=m.get("policy"),
                               u=m.get("unparsed", 0), e=m.get("errors", 0))
    return _figure([trace], dict(title=_title((title or run_label(m)) + f"<br><sup>{sub}</sup>"),
                                 yaxis=dict(autorange="reversed"), height=340, **_LAYOUT))


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


# Points closer than this (in both axes, data units on 0–1 axes) to the point kept before them are not sent:
# about one pixel on the widest chart, well inside a marker, so the curve looks the same. A run of thousands
# of answers has a threshold every 1/n; at 1M predictions those SVG markers were most of the click's drawing.
CURVE_RESOLUTION = 0.002


def thin_curve(x: np.ndarray, y: np.ndarray, res: float = CURVE_RESOLUTION) -> tuple[np.ndarray, np.ndarray]:
    """The points of a curve that enter a new ``res`` × ``res`` cell (the first and last always kept): every
    point left out lies within ``res`` of the one kept before it, in both axes, and the order is kept."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if x.size <= 2:
        return x, y
    cx, cy = np.floor(x / res), np.floor(y / res)
    keep = np.r_[True, (cx[1:] != cx[:-1]) | (cy[1:] != cy[:-1])]
    keep[-1] = True
    return x[keep], y[keep]


# Legends go under the plot: beside it, long run names squeezed the ROC square to a sliver.
_LEGEND_BELOW = dict(orientation="h", yanchor="top", y=-0.18, xanchor="left", x=0, font=dict(size=11))


def roc_figure(curves: Sequence[dict[str, Any]], lang: str = "zh") -> go.Figure:
    """curves: {name, y: labels, s: P(ghost probing) scores, auroc, auroc_ci, n}."""
    L = _L(lang)
    data = [dict(type="scatter", x=[0, 1], y=[0, 1], mode="lines", line=dict(dash="dot", color="#aaa"),
                 name=L["chance"], hoverinfo="skip")]
    for i, c in enumerate(curves):
        fpr, tpr = thin_curve(*roc_points(c["y"], c["s"]))
        ci = c.get("auroc_ci")
        auc_txt = "n/a" if c.get("auroc") is None else f"{c['auroc']:.2f}"
        if ci:
            auc_txt += f" [{ci[0]:.2f}–{ci[1]:.2f}]"
        data.append(dict(type="scatter", x=fpr, y=tpr, mode="lines+markers",
                         name=f"{_t(c['name'])} AUROC {auc_txt}, n={c.get('n')}", line=dict(color=COLORS[i % len(COLORS)])))
    layout = {**_LAYOUT, "margin": dict(l=60, r=20, t=60, b=40)}
    return _figure(data, dict(title=_title(L["roc"]), xaxis=dict(title=_title(L["fpr"]), range=[0, 1]),
                              yaxis=dict(title=_title(L["tpr"]), range=[0, 1.02]), legend=dict(_LEGEND_BELOW),
                              height=460 + 22 * len(curves), **layout))


def pr_figure(curves: Sequence[dict[str, Any]], lang: str = "zh") -> go.Figure:
    L = _L(lang)
    data = []
    for i, c in enumerate(curves):
        rec, prec = thin_curve(*pr_points(c["y"], c["s"]))
        data.append(dict(type="scatter", x=rec, y=prec, mode="lines+markers", name=f"{_t(c['name'])} (n={c.get('n')})",
                         line=dict(color=COLORS[i % len(COLORS)], shape="hv")))
    layout = {**_LAYOUT, "margin": dict(l=60, r=20, t=60, b=40)}
    return _figure(data, dict(title=_title(L["pr"]), xaxis=dict(title=_title(L["recall"]), range=[0, 1.02]),
                              yaxis=dict(title=_title(L["precision"]), range=[0, 1.02]), legend=dict(_LEGEND_BELOW),
                              height=460 + 22 * len(curves), showlegend=True, **layout))


def latency_box(rows: Sequence[dict[str, Any]], lang: str = "zh") -> go.Figure:
    """Box per engine/model from precomputed quartiles (reports.metrics.latency_by_engine)."""
    L = _L(lang)
    data = []
    for i, r in enumerate(rows):
        name = _t(f"{r['engine']}" + (f" · {str(r['model']).rsplit('/', 1)[-1]}" if r.get("model") else ""))
        data.append(dict(type="box", name=f"{name} (n={r['n']})", x=[f"{name} (n={r['n']})"], q1=[r["q1"]],
                         median=[r["p50"]], q3=[r["q3"]], lowerfence=[r["min"]], upperfence=[r["max"]], mean=[r["mean"]],
                         marker=dict(color=COLORS[i % len(COLORS)]), boxpoints=False))
    return _figure(data, dict(title=_title(L["latency"]), yaxis=dict(title=_title(L["seconds"]), rangemode="tozero"),
                              showlegend=False, **_LAYOUT))


def cost_per_video(rows: Sequence[dict[str, Any]], lang: str = "zh") -> go.Figure:
    """Bars of USD per uncached model call (one video); unknown costs are labelled gaps, not 0."""
    L = _L(lang)
    labels = [_t(r["label"]) for r in rows]
    ys = [r.get("usd_per_call") if r.get("usd") is not None else None for r in rows]
    hover = []
    for r, y in zip(rows, ys):
        if r.get("usd") is None:
            hover.append(f"{_t(r['label'])}: {_t(r.get('reason') or L['cost_unknown'])}")
        else:
            p = r.get("price") or {}
            hover.append(L["cost_hover"].format(label=_t(r["label"]), usd=r["usd"], calls=r.get("model_calls"))
                         + f"<br>{p.get('provider')}:{p.get('sku')} {p.get('region') or ''} as of {p.get('as_of')}")
    trace = dict(type="bar", x=labels, y=ys, hovertext=hover, hoverinfo="text", marker=dict(color=COLORS[0]),
                 text=[None if y is None else f"${y:.4f}" for y in ys], textposition="outside")
    notes = []
    for lab, y, r in zip(labels, ys, rows):
        if y is None:
            known_zero = r.get("usd") is not None  # every answer cached: no model call to price
            notes.append(dict(x=lab, y=0, text=L["cached"] if known_zero else L["unknown"],
                              showarrow=False, yanchor="bottom",
                              font=dict(color="#666" if known_zero else "#b00", size=11)))
    return _figure([trace], dict(title=_title(L["cost"]), annotations=notes,
                                 yaxis=dict(title=_title("USD"), rangemode="tozero"), **_LAYOUT))


def _blue_at(frac: float) -> tuple[int, int, int]:
    """The colour of Plotly's Blues scale at ``frac`` in [0, 1], interpolated as Plotly's heatmap does."""
    from plotly.colors import sequential, unlabel_rgb

    stops = [unlabel_rgb(c) for c in sequential.Blues]
    x = min(max(frac, 0.0), 1.0) * (len(stops) - 1)
    i = min(int(x), len(stops) - 2)
    a, b, w = stops[i], stops[i + 1], x - i
    return tuple(int(round(a[k] + (b[k] - a[k]) * w)) for k in range(3))


def confusion_pair_html(m: dict[str, Any], ex: dict[str, Any], titles: Sequence[str], lang: str = "zh") -> str:
    """The 2×2 matrices of one run under both unparsed policies (``m``: counted wrong, ``ex``: left out), side by
    side, each titled with its label set, n, policy, unparsed and errors (as :func:`confusion_heatmap`), as an HTML
    table each: cells shaded on the Blues scale from the matrix's smallest to its largest count, as the heatmap
    shades them. The Reports tab shows this one: a browser lays out two small tables in a few milliseconds, where Plotly
    spends most of a click drawing the heatmaps. ``titles`` are inert text already (run_label escapes user text);
    everything else here is ours or a number."""
    L = _L(lang)
    blocks = []
    for r, title in zip((m, ex), titles):
        cells = {k: int(r.get(k) or 0) for k in ("tp", "fn", "fp", "tn")}
        lo, hi = min(cells.values()), max(cells.values())

        def td(k: str) -> str:
            frac = 0.0 if hi == lo else (cells[k] - lo) / (hi - lo)
            rgb = _blue_at(frac)
            fg = "#fff" if frac > 0.55 else "#08306b"
            return (f'<td class="gp-cm-{k}" style="background:rgb{rgb};color:{fg};text-align:center;'
                    f'padding:18px 10px;font-size:15px;min-width:8em">{k.upper()} {cells[k]}</td>')

        sub = L["conf_sub"].format(ls=_t(r.get("label_set")), n=r.get("n"), pol=_t(r.get("policy")),
                                   u=r.get("unparsed", 0), e=r.get("errors", 0))
        th = 'style="padding:4px 8px;font-weight:normal;color:#555"'
        blocks.append(
            f'<div class="gp-cm" style="flex:1 1 320px;min-width:0">'
            f'<div style="text-align:center;font-size:14px">{title}</div>'
            f'<div style="text-align:center;font-size:11px;color:#555;margin-bottom:6px">{sub}</div>'
            f'<table style="border-collapse:separate;border-spacing:2px;margin:0 auto">'
            f'<tr><th></th><th {th}>{L["pred_yes"]}</th><th {th}>{L["pred_no"]}</th></tr>'
            f'<tr><th {th}>{L["lab_yes"]}</th>{td("tp")}{td("fn")}</tr>'
            f'<tr><th {th}>{L["lab_no"]}</th>{td("fp")}{td("tn")}</tr></table></div>')
    return '<div class="gp-cm-pair" style="display:flex;flex-wrap:wrap;gap:24px;padding:8px 0">' + "".join(blocks) + "</div>"
