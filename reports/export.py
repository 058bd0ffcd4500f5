"""Exports: one self-contained HTML report, a Markdown summary, CSV / Parquet of runs and predictions.

The HTML report opens offline (plotly.js is inlined once). All text that came from people or
models (run names, answers, reasons, notes) is HTML-escaped. Every figure names its label set and
n and carries its 95% interval; the seed project's decision rule is applied to the *interval*, not
to the point estimate:

    accuracy ≥ 80% → deploy; 60–80% → improve prompts or use a larger model;
    < 60% → collect labelled data and fine-tune.
"""

from __future__ import annotations

import html
import json
from datetime import datetime
from pathlib import Path
from typing import Any

from reports import costs as C
from reports import figures as F
from reports import metrics as M
from reports.runs import get_run, predictions
from reports.store import Store

DETAIL_DEFAULT = 10  # runs given a detailed section when none are chosen
CHART_RUNS_MAX = 30  # runs drawn in the per-run bar chart
PREDICTION_ROWS_MAX = 200  # prediction rows per run in the HTML (all of them are in the CSV)

RULE = ("Decision rule (from the seed project): accuracy ≥ 80% → deploy; 60–80% → improve prompts or use a "
        "larger model; < 60% → collect labelled data and fine-tune. Applied to the 95% interval: a decision is "
        "made only when the whole interval lies in one band.")
_BANDS = (("collect", 0.0, 0.6, "< 60%", "collect labelled data and fine-tune"),
          ("improve", 0.6, 0.8, "60–80%", "improve prompts or use a larger model"),
          ("deploy", 0.8, 1.0001, "≥ 80%", "deploy"))


def _band(v: float) -> tuple[str, float, float, str, str]:
    for b in _BANDS:
        if b[1] <= v < b[2]:
            return b
    return _BANDS[-1]


def _p(v: float | None, digits: int = 0) -> str:
    return "n/a" if v is None else f"{100 * v:.{digits}f}%"


def decide(accuracy: float | None, ci: list[float] | None, n: int, label_set: str | None = None) -> dict[str, Any]:
    """The seed's decision rule on the measured interval: {decision, text}. decision None = undecided."""
    if not n or accuracy is None or ci is None:
        return {"decision": None, "bands": [], "text": "No scored videos, so there is nothing to decide."}
    lo_b, hi_b = _band(ci[0]), _band(ci[1] if ci[1] < 1 else 0.99999)
    spanned = [b for b in _BANDS if b[2] > ci[0] and b[1] <= min(ci[1], 0.99999)]
    ls = f", label set {label_set}" if label_set else ""
    head = (f"point estimate {_p(accuracy)} (95% CI {100 * ci[0]:.0f}–{100 * ci[1]:.0f}%, n={n}{ls})")
    if lo_b[0] == hi_b[0]:
        return {"decision": lo_b[0], "bands": [lo_b[0]],
                "text": f"{head}: the whole interval lies in the {lo_b[3]} band, so: {lo_b[4]}."}
    which = "all three bands" if len(spanned) == 3 else " and ".join(f"the {b[3]} band" for b in spanned)
    return {"decision": None, "bands": [b[0] for b in spanned],
            "text": f"{head}: the interval spans {which}, more labelled videos needed to decide."}


def _select_runs(store: Store, run_ids: list[str] | None) -> tuple[list[dict[str, Any]], list[str]]:
    """(overview of every run in the report, ids that get a detailed section)."""
    if run_ids:
        ids = [get_run(store, r)["run_id"] for r in run_ids]
        overview = M.runs_overview(store, ids)
        order = {rid: i for i, rid in enumerate(ids)}
        overview.sort(key=lambda r: order[r["run_id"]])
        return overview, ids
    overview = M.runs_overview(store)
    return overview, [r["run_id"] for r in overview[:DETAIL_DEFAULT]]


def _raw_label(r: dict[str, Any]) -> str:
    if r.get("name"):
        return str(r["name"])
    bits = [str(r.get("engine") or "?")]
    if r.get("model"):
        bits.append(str(r["model"]).rsplit("/", 1)[-1])
    if r.get("prompt_id"):
        bits.append(f"{r['prompt_id']}@{r.get('prompt_version')}")
    return " · ".join(bits)


def _ci(v: float | None, ci: list[float] | None) -> str:
    if v is None:
        return "n/a"
    return f"{_p(v)} [{_p(ci[0])}–{_p(ci[1])}]" if ci else _p(v)


def _usd(c: dict[str, Any] | None, key: str = "usd") -> str:
    if not c or c.get(key) is None:
        if c and c.get("usd") is not None:  # known total (e.g. all cached) but no per-call figure
            return "$0 (cached)" if key != "usd" else f"${c['usd']:.4f}"
        return "unknown"
    return f"${c[key]:.4f}"


def _e(v: Any) -> str:
    return html.escape("" if v is None else str(v))


_CSS = """
body{font-family:-apple-system,"Segoe UI","PingFang SC","Microsoft YaHei",sans-serif;margin:24px;color:#222}
h1{font-size:22px}h2{font-size:18px;margin-top:32px;border-bottom:1px solid #ddd}h3{font-size:15px}
table{border-collapse:collapse;font-size:12px;margin:8px 0}td,th{border:1px solid #ddd;padding:3px 6px;
text-align:left;vertical-align:top}th{background:#f4f4f4}.muted{color:#777}.decision{background:#fff8e1;
padding:8px 12px;border-left:4px solid #f0b400;margin:8px 0}.raw{max-width:520px;white-space:pre-wrap;
word-break:break-word;font-family:monospace;font-size:11px}.chart{margin:12px 0}
"""


def build_html(store: Store, run_ids: list[str] | None = None, title: str = "GhostProbe report 鬼探头检测报告") -> str:
    overview, detail_ids = _select_runs(store, run_ids)
    costs = C.runs_costs(store, [r["run_id"] for r in overview]) if overview else {}
    by_id = {r["run_id"]: r for r in overview}
    parts: list[str] = []
    plotly_inlined = False

    def fig_html(fig) -> str:
        nonlocal plotly_inlined
        div = fig.to_html(full_html=False, include_plotlyjs=not plotly_inlined, config={"displaylogo": False})
        plotly_inlined = True
        return f'<div class="chart">{div}</div>'

    now = datetime.now().strftime("%Y-%m-%d %H:%M")
    parts.append(f"<h1>{_e(title)}</h1>")
    parts.append(f'<p class="muted">Generated {_e(now)} from {_e(store.path)}. {len(overview)} runs. Every figure '
                 "below was measured from stored predictions; intervals are 95% (Wilson for proportions). "
                 "Unparsed and errored answers are counted wrong (policy counted_wrong); the figures with them "
                 "left out are in each run's section.</p>")
    parts.append(f'<p class="decision">{_e(RULE)}</p>')

    # -- runs table --------------------------------------------------------------------------------
    head = ("<tr><th>run</th><th>name</th><th>engine · model</th><th>prompt</th><th>label set</th><th>status</th>"
            "<th>n</th><th>accuracy [95% CI]</th><th>balanced acc. [95% CI]</th><th>F1 [95% CI]</th>"
            "<th>unparsed</th><th>errors</th><th>latency p50 / p95 (s)</th><th>cost / video</th><th>cost total</th></tr>")
    body = []
    for r in overview:
        lat = r["latency_s"]
        lat_txt = "n/a" if lat["p50"] is None else f"{lat['p50']:.2f} / {lat['p95']:.2f} (n={lat['n']})"
        c = costs.get(r["run_id"])
        body.append(
            f"<tr><td>{_e(r['run_id'])}</td><td>{_e(r.get('name'))}</td>"
            f"<td>{_e(r.get('engine'))}{' · ' + _e(r.get('model')) if r.get('model') else ''}</td>"
            f"<td>{_e(r.get('prompt_id'))}{'@' + _e(r.get('prompt_version')) if r.get('prompt_id') else ''}</td>"
            f"<td>{_e(r.get('label_set'))}</td><td>{_e(r.get('status'))}</td><td>{r['n']}</td>"
            f"<td>{_e(_ci(r['accuracy'], r['accuracy_ci']))}</td>"
            f"<td>{_e(_ci(r['balanced_accuracy'], r['balanced_accuracy_ci']))}</td>"
            f"<td>{_e(_ci(r['f1'], r['f1_ci']))}</td><td>{r['unparsed']}</td><td>{r['errors']}</td>"
            f"<td>{_e(lat_txt)}</td><td title=\"{_e((c or {}).get('reason') or '')}\">{_e(_usd(c, 'usd_per_video'))}</td>"
            f"<td>{_e(_usd(c))}</td></tr>")
    parts.append("<h2>Runs 运行</h2>")
    parts.append(f"<table>{head}{''.join(body)}</table>" if body else "<p>No runs yet.</p>")

    # -- charts --------------------------------------------------------------------------------------
    chart_runs = [by_id[i] for i in detail_ids][:CHART_RUNS_MAX] if run_ids else overview[:CHART_RUNS_MAX]
    if chart_runs:
        parts.append("<h2>Accuracy by run 各运行准确率</h2>")
        parts.append(fig_html(F.metric_bars(chart_runs)))
    cells = M.by_prompt_version(store, overview=overview)
    if cells:
        parts.append("<h2>By prompt version 按提示词版本</h2>")
        parts.append('<p class="muted">One bar group per prompt version × engine × model × label set: the latest '
                     "finished run of that cell (repeated runs are not pooled).</p>")
        parts.append(fig_html(F.metric_bars(cells, label_key="cell",
                                            title="Accuracy, F1, balanced accuracy by prompt version (95% intervals)")))
    lat_rows = M.latency_by_engine(store, [r["run_id"] for r in overview] if run_ids else None)
    if lat_rows:
        parts.append("<h2>Latency 延迟</h2>")
        parts.append(fig_html(F.latency_box(lat_rows)))
    cost_rows = [{**costs[r["run_id"]], "label": _raw_label(r)} for r in chart_runs if r["run_id"] in costs]
    if cost_rows:
        parts.append("<h2>Cost per video 每视频成本</h2>")
        parts.append(fig_html(F.cost_per_video(cost_rows)))

    # -- per-run sections ------------------------------------------------------------------------------
    roc_curves = []
    for rid in detail_ids:
        r = by_id.get(rid)
        if r is None:
            continue
        m = M.run_metrics(store, rid)
        c = costs.get(rid)
        parts.append(f"<h2>Run {_e(rid)} — {_e(_raw_label(r))}</h2>")
        prompt = (f'{r["prompt_id"]}@{r.get("prompt_version")} ({(r.get("prompt_hash") or "")[:12]})'
                  if r.get("prompt_id") else "none")
        parts.append(f'<p class="muted">engine {_e(r.get("engine"))}, model {_e(r.get("model") or "—")}, revision '
                     f'{_e(r.get("revision") or "—")}, prompt {_e(prompt)}, label set {_e(r.get("label_set"))} '
                     f'({_e(m.get("label_set_size"))} videos, {_e(m.get("missing"))} not predicted), '
                     f'location {_e(r.get("location") or "not recorded")}, status {_e(r.get("status"))}.</p>')
        d = decide(m["accuracy"], m["accuracy_ci"], m["n"], m.get("label_set"))
        parts.append(f'<p class="decision">{_e(d["text"])}</p>')
        rows = []
        for pol in M.POLICIES:
            mm = m["metrics_both_ways"][pol]
            rows.append(f"<tr><td>{pol}</td><td>{mm['n']}</td><td>{mm['tp']}</td><td>{mm['fp']}</td><td>{mm['tn']}</td>"
                        f"<td>{mm['fn']}</td>" + "".join(
                            f"<td>{_e(_ci(mm[k], mm[k + '_ci']))}</td>" for k in
                            ("accuracy", "balanced_accuracy", "precision", "recall", "specificity", "f1")) + "</tr>")
        parts.append("<table><tr><th>unparsed/errors</th><th>n</th><th>TP</th><th>FP</th><th>TN</th><th>FN</th>"
                     "<th>accuracy</th><th>balanced acc.</th><th>precision</th><th>recall</th><th>specificity</th>"
                     f"<th>F1</th></tr>{''.join(rows)}</table>")
        extra = [f"unparsed {m['unparsed']}, errors {m['errors']}, unlabelled {m['unlabelled']}"]
        if m.get("auroc") is not None:
            extra.append(f"AUROC {m['auroc']:.3f} [{m['auroc_ci'][0]:.3f}–{m['auroc_ci'][1]:.3f}] (n={m['auroc_n']})")
        on = m["onset"]
        if on["n"]:
            extra.append(f"onset error median {on['median_abs_s']:.2f} s, within 1 s {_ci(on['within_1s'], on['within_1s_ci'])} "
                         f"(n={on['n']})")
        if c and c.get("usd") is not None:
            extra.append(f"cost {_usd(c)} ({_usd(c, 'usd_per_video')} per video)")
        else:
            extra.append(((c or {}).get("reason") or "Cost unknown").rstrip(".").replace("Cost unknown", "cost unknown"))
        parts.append(f"<p>{_e('; '.join(extra))}.</p>")
        parts.append(fig_html(F.confusion_heatmap(m)))
        if m.get("auroc") is not None:
            y, s = M.scored_answers(store, rid)
            roc_curves.append({"name": _raw_label(r), "y": y, "s": s, "auroc": m["auroc"], "auroc_ci": m["auroc_ci"],
                               "n": m["auroc_n"]})
        shown = predictions(store, rid, limit=PREDICTION_ROWS_MAX)
        total = m["predictions"]
        prow = []
        for p in shown:
            lab = "—" if p["label_ghost_probing"] is None else ("yes" if p["label_ghost_probing"] else "no") + \
                  (f" ({p['label_kind']})" if p.get("label_kind") and p["label_kind"] != "none" else "")
            pred = {True: "yes", False: "no"}.get(p["ghost_probing"], p["status"])
            mark = {True: "✓", False: "✗"}.get(p["correct"], "")
            raw = (p.get("raw") or "")[:600]
            lat_s = "" if p.get("latency_s") is None else f"{p['latency_s']:.2f}"
            conf = "" if p.get("confidence") is None else f"{p['confidence']:.2f}"
            prow.append(f"<tr><td>{_e(p['video_id'])}</td><td>{_e(lab)}</td><td>{_e(pred)}</td><td>{mark}</td>"
                        f"<td>{_e(p['status'])}</td><td>{_e(conf)}</td>"
                        f"<td>{_e(lat_s)}</td>"
                        f"<td>{'yes' if p.get('cached') else ''}</td><td class=\"raw\">{_e(p.get('reason'))}</td>"
                        f"<td class=\"raw\">{_e(raw)}</td></tr>")
        more = f" (first {len(shown)} of {total}; every row is in predictions.csv)" if total > len(shown) else ""
        parts.append(f"<h3>Predictions{_e(more)}</h3>")
        parts.append("<table><tr><th>video</th><th>label</th><th>prediction</th><th></th><th>status</th>"
                     "<th>confidence</th><th>latency s</th><th>cached</th><th>reason</th><th>raw answer</th></tr>"
                     f"{''.join(prow)}</table>")
    if roc_curves:
        parts.append("<h2>ROC</h2>")
        parts.append(fig_html(F.roc_figure(roc_curves)))
        parts.append(fig_html(F.pr_figure(roc_curves)))
    if not plotly_inlined:
        parts.append('<p class="muted">No charts: there are no runs yet.</p>')
    return ("<!DOCTYPE html><html lang=\"zh-CN\"><head><meta charset=\"utf-8\">"
            f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>{''.join(parts)}</body></html>")


def markdown_summary(store: Store, run_ids: list[str] | None = None) -> str:
    overview, detail_ids = _select_runs(store, run_ids)
    costs = C.runs_costs(store, [r["run_id"] for r in overview]) if overview else {}
    lines = ["# GhostProbe report", "", RULE, "",
             "| run | name | engine · model | prompt | label set | n | accuracy [95% CI] | balanced acc. | F1 | "
             "unparsed | errors | cost / video |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]

    def md(v: Any) -> str:
        return str("" if v is None else v).replace("|", "\\|").replace("\n", " ")

    for r in overview:
        lines.append(
            f"| {md(r['run_id'])} | {md(r.get('name'))} | {md(r.get('engine'))}"
            f"{' · ' + md(r.get('model')) if r.get('model') else ''} | "
            f"{md(r.get('prompt_id'))}{'@' + md(r.get('prompt_version')) if r.get('prompt_id') else ''} | "
            f"{md(r.get('label_set'))} | {r['n']} | {_ci(r['accuracy'], r['accuracy_ci'])} | "
            f"{_ci(r['balanced_accuracy'], r['balanced_accuracy_ci'])} | {_ci(r['f1'], r['f1_ci'])} | "
            f"{r['unparsed']} | {r['errors']} | {_usd(costs.get(r['run_id']), 'usd_per_video')} |")
    lines.append("")
    by_id = {r["run_id"]: r for r in overview}
    for rid in detail_ids:
        r = by_id.get(rid)
        if r is None:
            continue
        d = decide(r["accuracy"], r["accuracy_ci"], r["n"], r.get("label_set"))
        lines.append(f"- **{md(rid)}** ({md(_raw_label(r))}): {md(d['text'])}")
    return "\n".join(lines) + "\n"


def write_report(store: Store, out: str | Path, run_ids: list[str] | None = None) -> dict[str, str]:
    """Write the HTML report and a Markdown summary beside it (same name, .md)."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(build_html(store, run_ids), encoding="utf-8")
    md = out.with_suffix(".md")
    md.write_text(markdown_summary(store, run_ids), encoding="utf-8")
    return {"html": str(out), "markdown": str(md)}


def _sql_path(p: Path) -> str:
    return "'" + str(p).replace("'", "''") + "'"


def export_tables(store: Store, out_dir: str | Path, fmt: str = "csv",
                  run_ids: list[str] | None = None) -> list[str]:
    """runs.<ext> and predictions.<ext> (with the label of each run's label set) via DuckDB COPY."""
    if fmt not in ("csv", "parquet"):
        from reports.runs import RunError

        raise RunError(f"Export format must be csv or parquet, not '{fmt}'.")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    where, params = "", []
    if run_ids:
        ids = [get_run(store, r)["run_id"] for r in run_ids]
        where = "WHERE r.run_id IN (" + ", ".join("'" + i.replace("'", "''") + "'" for i in ids) + ")"
    opts = "(FORMAT parquet)" if fmt == "parquet" else "(FORMAT csv, HEADER)"
    runs_sql = f"""SELECT r.run_id, r.name, r.engine, r.model, r.revision, r.prompt_id, r.prompt_version,
                          r.prompt_hash, CAST(r.options AS VARCHAR) AS options, CAST(r.sampling AS VARCHAR) AS sampling,
                          r.label_set, CAST(r.selection AS VARCHAR) AS selection, r.location, r.instances, r.status,
                          r.created_at, r.finished_at, r.notes
                   FROM runs r {where} ORDER BY r.created_at, r.run_id"""
    preds_sql = f"""SELECT p.*, l.ghost_probing AS label_ghost_probing, l.kind AS label_kind,
                           l.onset_s AS label_onset_s,
                           CASE WHEN l.video_id IS NULL THEN NULL WHEN p.status <> 'ok' THEN false
                                ELSE p.ghost_probing = l.ghost_probing END AS correct
                    FROM predictions p JOIN runs r USING (run_id)
                    LEFT JOIN labels l ON l.label_set = r.label_set AND l.video_id = p.video_id
                    {where} ORDER BY p.run_id, p.video_id"""
    paths = []
    with store.write() as cur:  # COPY reads under the write lock so a concurrent writer cannot interleave
        for name, sql in (("runs", runs_sql), ("predictions", preds_sql)):
            path = out / f"{name}.{fmt}"
            cur.execute(f"COPY ({sql}) TO {_sql_path(path)} {opts}", params)
            paths.append(str(path))
    return paths


def report_json(store: Store, run_ids: list[str] | None = None) -> dict[str, Any]:
    """What the report shows, as data (for --json and tests)."""
    overview, detail_ids = _select_runs(store, run_ids)
    costs = C.runs_costs(store, [r["run_id"] for r in overview]) if overview else {}
    return {"runs": [{**r, "cost": costs.get(r["run_id"]),
                      "decision": decide(r["accuracy"], r["accuracy_ci"], r["n"], r.get("label_set"))}
                     for r in overview], "detailed": detail_ids}


def dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, default=str)
