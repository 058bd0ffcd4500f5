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
import os
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


_BANDS_ZH = {"collect": ("< 60%", "收集标注数据并微调"), "improve": ("60–80%", "改进提示词或换更大的模型"),
             "deploy": ("≥ 80%", "部署")}


def decide(accuracy: float | None, ci: list[float] | None, n: int, label_set: str | None = None,
           lang: str = "en") -> dict[str, Any]:
    """The seed's decision rule on the measured interval: {decision, bands, text}. decision None = undecided.

    ``text`` is in ``lang`` (en, the default for the CLI and the API; zh for Chinese readers)."""
    zh = lang == "zh"
    if not n or accuracy is None or ci is None:
        return {"decision": None, "bands": [],
                "text": "没有已评分的视频，无法决定。" if zh else "No scored videos, so there is nothing to decide."}
    lo_b, hi_b = _band(ci[0]), _band(ci[1] if ci[1] < 1 else 0.99999)
    spanned = [b for b in _BANDS if b[2] > ci[0] and b[1] <= min(ci[1], 0.99999)]
    if zh:
        ls = f"，标签集 {label_set}" if label_set else ""
        head = f"点估计 {_p(accuracy)}（95% 区间 {100 * ci[0]:.0f}–{100 * ci[1]:.0f}%，n={n}{ls}）"
        if lo_b[0] == hi_b[0]:
            band, action = _BANDS_ZH[lo_b[0]]
            return {"decision": lo_b[0], "bands": [lo_b[0]], "text": f"{head}：整个区间落在 {band} 档，所以：{action}。"}
        which = "、".join(_BANDS_ZH[b[0]][0] for b in spanned)
        return {"decision": None, "bands": [b[0] for b in spanned],
                "text": f"{head}：区间跨越 {which} 几档，需要更多标注视频才能决定。"}
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


_TXT: dict[str, dict[str, str]] = {
    "en": {
        "title": "GhostProbe report", "generated": "Generated {now}. {n} runs. Every figure below was measured from "
        "stored predictions; intervals are 95% (Wilson for proportions). Unparsed and errored answers are counted "
        "wrong (policy counted_wrong); the figures with them left out are in each run's section. Coverage "
        "(scored/planned) says how many of the planned labelled videos have an answer; a run is partial when some have none.",
        "rule": RULE, "runs": "Runs", "no_runs": "No runs yet.",
        "cols": "run|name|engine · model|prompt|label set|status|coverage (scored/planned)|n|accuracy [95% CI]|"
                "balanced acc. [95% CI]|F1 [95% CI]|unparsed|errors|latency p50 / p95 (s)|cost / video|cost total",
        "by_run": "Accuracy by run", "by_prompt": "By prompt version",
        "by_prompt_note": "One bar group per prompt version × engine × model × label set: the latest finished run of "
                          "that cell (repeated runs are not pooled).",
        "by_prompt_title": "Accuracy, F1, balanced accuracy by prompt version (95% intervals)",
        "latency": "Latency", "cost": "Cost per video", "run": "Run",
        "run_meta": "engine {engine}, model {model}, revision {revision}, prompt {prompt}, label set {label_set} "
                    "({size} videos), coverage {coverage}, location {location}, status {status}.",
        "not_recorded": "not recorded", "none": "none",
        "policy_cols": "unparsed/errors|n|TP|FP|TN|FN|accuracy|balanced acc.|precision|recall|specificity|F1",
        "extra": "unparsed {unparsed}, errors {errors}, unlabelled {unlabelled}",
        "auroc": "AUROC {v}", "onset": "onset error median {med:.2f} s, within 1 s {w} (n={n})",
        "cost_line": "cost {usd} ({per} per video)", "cost_unknown": "cost unknown",
        "preds": "Predictions", "preds_more": " (first {shown} of {total}; every row is in predictions.csv)",
        "pred_cols": "video|label|prediction||status|confidence|latency s|cached|reason|raw answer",
        "yes": "yes", "no": "no", "cached": "yes", "roc": "ROC", "no_charts": "No charts: there are no runs yet.",
        "partial": "partial", "unknown": "unknown", "cached_zero": "$0 (cached)",
        "coverage": "{scored}/{planned}", "coverage_missing": "{scored}/{planned} ({missing} without an answer)",
        "md_cols": "| run | name | engine · model | prompt | label set | status | coverage | n | accuracy [95% CI] | "
                   "balanced acc. | F1 | unparsed | errors | cost / video |",
    },
    "zh": {
        "title": "GhostProbe 鬼探头检测报告", "generated": "生成于 {now}，共 {n} 次运行。下面每个数字都来自已保存的预测；区间为 95%"
        "（比例用 Wilson 区间）。未解析和出错的回答计为错误（counted_wrong）；不计入它们的数字在各运行的小节里。"
        "覆盖率（已评分/计划）表示计划评测的已标注视频中有多少得到了回答；有视频没有回答的运行标为“部分完成”。",
        "rule": "决策规则（种子项目）：准确率 ≥ 80% → 部署；60–80% → 改进提示词或换更大的模型；< 60% → 收集标注数据并微调。"
                "按 95% 区间判断：只有整个区间落在同一档时才下结论。",
        "runs": "运行", "no_runs": "还没有运行。",
        "cols": "运行|名称|引擎 · 模型|提示词|标签集|状态|覆盖率（已评分/计划）|n|准确率 [95% CI]|平衡准确率 [95% CI]|"
                "F1 [95% CI]|未解析|出错|延迟 p50 / p95 (s)|成本/视频|总成本",
        "by_run": "各运行准确率", "by_prompt": "按提示词版本",
        "by_prompt_note": "每组柱子是一个 提示词版本 × 引擎 × 模型 × 标签集 的格子：取该格子最新完成的运行（重复运行不合并）。",
        "by_prompt_title": "按提示词版本的准确率、F1、平衡准确率（95% 区间）",
        "latency": "延迟", "cost": "每视频成本", "run": "运行",
        "run_meta": "引擎 {engine}，模型 {model}，版本 {revision}，提示词 {prompt}，标签集 {label_set}（{size} 个视频），"
                    "覆盖率 {coverage}，位置 {location}，状态 {status}。",
        "not_recorded": "未记录", "none": "无",
        "policy_cols": "未解析/出错|n|TP|FP|TN|FN|准确率|平衡准确率|精确率|召回率|特异度|F1",
        "extra": "未解析 {unparsed}，出错 {errors}，无标签 {unlabelled}",
        "auroc": "AUROC {v}", "onset": "出现时间中位误差 {med:.2f} s，1 s 以内 {w}（n={n}）",
        "cost_line": "成本 {usd}（每视频 {per}）", "cost_unknown": "成本未知",
        "preds": "预测", "preds_more": "（前 {shown} 条，共 {total} 条；全部在 predictions.csv 中）",
        "pred_cols": "视频|标签|预测||状态|置信度|延迟 s|缓存|理由|原始回答",
        "yes": "是", "no": "否", "cached": "是", "roc": "ROC", "no_charts": "没有图表：还没有运行。",
        "partial": "部分完成", "unknown": "未知", "cached_zero": "$0（全部缓存）",
        "coverage": "{scored}/{planned}", "coverage_missing": "{scored}/{planned}（{missing} 个没有回答）",
        "md_cols": "| 运行 | 名称 | 引擎 · 模型 | 提示词 | 标签集 | 状态 | 覆盖率 | n | 准确率 [95% CI] | 平衡准确率 | F1 | "
                   "未解析 | 出错 | 成本/视频 |",
    },
}
_STATUS_ZH = {"running": "进行中", "done": "完成", "cancelled": "已取消", "failed": "失败", "imported": "导入",
              "partial": "部分完成"}
LANGS = tuple(_TXT)


def _lang(lang: str | None) -> str:
    if lang not in _TXT:
        from reports.runs import RunError

        raise RunError(f"Report language must be zh or en, not '{lang}'.")
    return lang


def _zh_reason(reason: str | None) -> str | None:
    """Cost reasons from reports.costs, in Chinese (the tab's message catalogue has the same lines)."""
    import re

    if not reason:
        return reason
    pats = [(r"Cost unknown: the price of (.+) is not set \(`ghostprobe prices set`\)\.", "成本未知：没有设置 {0} 的价格。"),
            (r"Cost unknown: (\d+) of (\d+) model calls have no measured latency\.", "成本未知：{1} 次模型调用中有 {0} 次没有测得延迟。"),
            (r"Cost unknown: (\d+) of (\d+) model calls have no token counts\.", "成本未知：{1} 次模型调用中有 {0} 次没有 token 数。"),
            (r"Cost unknown: the run has no predictions yet\.", "成本未知：该运行还没有预测。"),
            (r"Cost unknown: (.+)", "成本未知：{0}")]
    for p, z in pats:
        mm = re.fullmatch(p, reason.strip(), re.S)
        if mm:
            return z.format(*mm.groups())
    return reason


def coverage_counts(store: Store, rows: list[dict[str, Any]]) -> dict[str, tuple[int, int, int]]:
    """run_id → (planned, scored, not answered) from reports.runs' coverage (planned counts the labelled videos
    the run set out to answer, those missing from the library included; scored = ok or unparsed answers)."""
    ids = {r["run_id"] for r in rows}
    if not ids:
        return {}
    from reports.runs import list_runs

    out = {}
    for f in list_runs(store, include_hidden=True):
        if f["run_id"] not in ids:
            continue
        planned = int(f.get("planned") or 0)
        scored = int(f.get("scored") or 0)
        left = f.get("not_predicted")
        left = int(left) if left is not None else max(planned - int(f.get("predictions") or 0), 0)
        out[f["run_id"]] = (planned, scored, left)
    return out


def _status(r: dict[str, Any], cov: tuple[int, int, int] | None, lang: str) -> str:
    s = r.get("status") or ""
    if cov and cov[2] and s in ("done", "imported", "partial"):
        s = "partial"
    return _STATUS_ZH.get(s, s) if lang == "zh" else s


def _cov(cov: tuple[int, int, int] | None, L: dict[str, str]) -> str:
    if not cov:
        return "—"
    planned, scored, missing = cov
    return (L["coverage_missing"] if missing else L["coverage"]).format(planned=planned, scored=scored, missing=missing)


def build_html(store: Store, run_ids: list[str] | None = None, title: str | None = None, lang: str = "zh") -> str:
    L = _TXT[_lang(lang)]
    title = title or L["title"]
    overview, detail_ids = _select_runs(store, run_ids)
    costs = C.runs_costs(store, [r["run_id"] for r in overview]) if overview else {}
    cover = coverage_counts(store, overview)
    by_id = {r["run_id"]: r for r in overview}
    parts: list[str] = []
    plotly_inlined = False

    def fig_html(fig) -> str:
        nonlocal plotly_inlined
        div = fig.to_html(full_html=False, include_plotlyjs=not plotly_inlined, config={"displaylogo": False})
        plotly_inlined = True
        return f'<div class="chart">{div}</div>'

    def reason(c: dict[str, Any] | None) -> str:
        r = (c or {}).get("reason") or ""
        return (_zh_reason(r) or "") if lang == "zh" else r

    def money(c: dict[str, Any] | None, key: str = "usd") -> str:
        s = _usd(c, key)
        return {"unknown": L["unknown"], "$0 (cached)": L["cached_zero"]}.get(s, s)

    now = datetime.now().strftime("%Y-%m-%d %H:%M")
    parts.append(f"<h1>{_e(title)}</h1>")
    # the database path stays out: a report is read by people who have no business knowing the server's layout
    parts.append(f'<p class="muted">{_e(L["generated"].format(now=now, n=len(overview)))}</p>')
    parts.append(f'<p class="decision">{_e(L["rule"])}</p>')

    # -- runs table --------------------------------------------------------------------------------
    head = "<tr>" + "".join(f"<th>{_e(c)}</th>" for c in L["cols"].split("|")) + "</tr>"
    body = []
    for r in overview:
        lat = r["latency_s"]
        lat_txt = "n/a" if lat["p50"] is None else f"{lat['p50']:.2f} / {lat['p95']:.2f} (n={lat['n']})"
        c = costs.get(r["run_id"])
        cov = cover.get(r["run_id"])
        body.append(
            f"<tr data-run=\"{_e(r['run_id'])}\"><td>{_e(r['run_id'])}</td><td>{_e(r.get('name'))}</td>"
            f"<td>{_e(r.get('engine'))}{' · ' + _e(r.get('model')) if r.get('model') else ''}</td>"
            f"<td>{_e(r.get('prompt_id'))}{'@' + _e(r.get('prompt_version')) if r.get('prompt_id') else ''}</td>"
            f"<td>{_e(r.get('label_set'))}</td><td>{_e(_status(r, cov, lang))}</td>"
            f"<td class=\"coverage\">{_e(_cov(cov, L))}</td><td>{r['n']}</td>"
            f"<td>{_e(_ci(r['accuracy'], r['accuracy_ci']))}</td>"
            f"<td>{_e(_ci(r['balanced_accuracy'], r['balanced_accuracy_ci']))}</td>"
            f"<td>{_e(_ci(r['f1'], r['f1_ci']))}</td><td>{r['unparsed']}</td><td>{r['errors']}</td>"
            f"<td>{_e(lat_txt)}</td><td title=\"{_e(reason(c))}\">{_e(money(c, 'usd_per_video'))}</td>"
            f"<td>{_e(money(c))}</td></tr>")
    parts.append(f"<h2>{_e(L['runs'])}</h2>")
    parts.append(f"<table>{head}{''.join(body)}</table>" if body else f"<p>{_e(L['no_runs'])}</p>")

    # -- charts --------------------------------------------------------------------------------------
    def with_cov(rows):
        return [{**r, "coverage": cover.get(r["run_id"])} for r in rows]

    chart_runs = [by_id[i] for i in detail_ids][:CHART_RUNS_MAX] if run_ids else overview[:CHART_RUNS_MAX]
    if chart_runs:
        parts.append(f"<h2>{_e(L['by_run'])}</h2>")
        parts.append(fig_html(F.metric_bars(with_cov(chart_runs), lang=lang)))
    cells = M.by_prompt_version(store, overview=overview)
    if cells:
        parts.append(f"<h2>{_e(L['by_prompt'])}</h2>")
        parts.append(f'<p class="muted">{_e(L["by_prompt_note"])}</p>')
        parts.append(fig_html(F.metric_bars(with_cov(cells), label_key="cell", title=L["by_prompt_title"], lang=lang)))
    lat_rows = M.latency_by_engine(store, [r["run_id"] for r in overview] if run_ids else None)
    if lat_rows:
        parts.append(f"<h2>{_e(L['latency'])}</h2>")
        parts.append(fig_html(F.latency_box(lat_rows, lang=lang)))
    cost_rows = [{**costs[r["run_id"]], "label": _raw_label(r)} for r in chart_runs if r["run_id"] in costs]
    if lang == "zh":
        cost_rows = [{**c, "reason": _zh_reason(c.get("reason"))} for c in cost_rows]
    if cost_rows:
        parts.append(f"<h2>{_e(L['cost'])}</h2>")
        parts.append(fig_html(F.cost_per_video(cost_rows, lang=lang)))

    # -- per-run sections ------------------------------------------------------------------------------
    roc_curves = []
    for rid in detail_ids:
        r = by_id.get(rid)
        if r is None:
            continue
        m = M.run_metrics(store, rid)
        c = costs.get(rid)
        cov = cover.get(rid)
        parts.append(f"<h2>{_e(L['run'])} {_e(rid)} — {_e(_raw_label(r))}</h2>")
        prompt = (f'{r["prompt_id"]}@{r.get("prompt_version")} ({(r.get("prompt_hash") or "")[:12]})'
                  if r.get("prompt_id") else L["none"])
        parts.append('<p class="muted">' + _e(L["run_meta"].format(
            engine=r.get("engine"), model=r.get("model") or "—", revision=r.get("revision") or "—", prompt=prompt,
            label_set=r.get("label_set"), size=m.get("label_set_size"), coverage=_cov(cov, L),
            location=r.get("location") or L["not_recorded"], status=_status(r, cov, lang))) + "</p>")
        d = decide(m["accuracy"], m["accuracy_ci"], m["n"], m.get("label_set"), lang=lang)
        parts.append(f'<p class="decision">{_e(d["text"])}</p>')
        rows = []
        for pol in M.POLICIES:
            mm = m["metrics_both_ways"][pol]
            rows.append(f"<tr><td>{pol}</td><td>{mm['n']}</td><td>{mm['tp']}</td><td>{mm['fp']}</td><td>{mm['tn']}</td>"
                        f"<td>{mm['fn']}</td>" + "".join(
                            f"<td>{_e(_ci(mm[k], mm[k + '_ci']))}</td>" for k in
                            ("accuracy", "balanced_accuracy", "precision", "recall", "specificity", "f1")) + "</tr>")
        phead = "".join(f"<th>{_e(c_)}</th>" for c_ in L["policy_cols"].split("|"))
        parts.append(f"<table><tr>{phead}</tr>{''.join(rows)}</table>")
        extra = [L["extra"].format(unparsed=m["unparsed"], errors=m["errors"], unlabelled=m["unlabelled"])]
        if m.get("auroc") is not None:
            extra.append(L["auroc"].format(
                v=f"{m['auroc']:.3f} [{m['auroc_ci'][0]:.3f}–{m['auroc_ci'][1]:.3f}] (n={m['auroc_n']})"))
        on = m["onset"]
        if on["n"]:
            extra.append(L["onset"].format(med=on["median_abs_s"], w=_ci(on["within_1s"], on["within_1s_ci"]), n=on["n"]))
        if c and c.get("usd") is not None:
            extra.append(L["cost_line"].format(usd=money(c), per=money(c, "usd_per_video")))
        else:
            why = reason(c)
            extra.append(why.rstrip(".。").replace("Cost unknown", "cost unknown") if why else L["cost_unknown"])
        parts.append(f"<p>{_e('; '.join(extra))}.</p>" if lang == "en" else f"<p>{_e('；'.join(extra))}。</p>")
        parts.append(fig_html(F.confusion_heatmap(m, lang=lang)))
        if m.get("auroc") is not None:
            y, s = M.scored_answers(store, rid)
            roc_curves.append({"name": _raw_label(r), "y": y, "s": s, "auroc": m["auroc"], "auroc_ci": m["auroc_ci"],
                               "n": m["auroc_n"]})
        shown = predictions(store, rid, limit=PREDICTION_ROWS_MAX)
        total = m["predictions"]
        prow = []
        for p in shown:
            lab = "—" if p["label_ghost_probing"] is None else (L["yes"] if p["label_ghost_probing"] else L["no"]) + \
                  (f" ({p['label_kind']})" if p.get("label_kind") and p["label_kind"] != "none" else "")
            pred = {True: L["yes"], False: L["no"]}.get(p["ghost_probing"], p["status"])
            mark = {True: "✓", False: "✗"}.get(p["correct"], "")
            raw = (p.get("raw") or "")[:600]
            lat_s = "" if p.get("latency_s") is None else f"{p['latency_s']:.2f}"
            conf = "" if p.get("confidence") is None else f"{p['confidence']:.2f}"
            prow.append(f"<tr><td>{_e(p['video_id'])}</td><td>{_e(lab)}</td><td>{_e(pred)}</td><td>{mark}</td>"
                        f"<td>{_e(p['status'])}</td><td>{_e(conf)}</td>"
                        f"<td>{_e(lat_s)}</td>"
                        f"<td>{L['cached'] if p.get('cached') else ''}</td><td class=\"raw\">{_e(p.get('reason'))}</td>"
                        f"<td class=\"raw\">{_e(raw)}</td></tr>")
        more = L["preds_more"].format(shown=len(shown), total=total) if total > len(shown) else ""
        parts.append(f"<h3>{_e(L['preds'])}{_e(more)}</h3>")
        pc = "".join(f"<th>{_e(c_)}</th>" for c_ in L["pred_cols"].split("|"))
        parts.append(f"<table><tr>{pc}</tr>{''.join(prow)}</table>")
    if roc_curves:
        parts.append(f"<h2>{_e(L['roc'])}</h2>")
        parts.append(fig_html(F.roc_figure(roc_curves, lang=lang)))
        parts.append(fig_html(F.pr_figure(roc_curves, lang=lang)))
    if not plotly_inlined:
        parts.append(f'<p class="muted">{_e(L["no_charts"])}</p>')
    html_lang = "zh-CN" if lang == "zh" else "en"
    return (f"<!DOCTYPE html><html lang=\"{html_lang}\"><head><meta charset=\"utf-8\">"
            f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>{''.join(parts)}</body></html>")


def markdown_summary(store: Store, run_ids: list[str] | None = None, lang: str = "zh") -> str:
    L = _TXT[_lang(lang)]
    overview, detail_ids = _select_runs(store, run_ids)
    costs = C.runs_costs(store, [r["run_id"] for r in overview]) if overview else {}
    cover = coverage_counts(store, overview)
    lines = [f"# {L['title']}", "", L["rule"], "", L["md_cols"], "|---" * 14 + "|"]

    def md(v: Any) -> str:
        return str("" if v is None else v).replace("|", "\\|").replace("\n", " ")

    for r in overview:
        cov = cover.get(r["run_id"])
        cost = _usd(costs.get(r["run_id"]), "usd_per_video")
        cost = {"unknown": L["unknown"], "$0 (cached)": L["cached_zero"]}.get(cost, cost)
        lines.append(
            f"| {md(r['run_id'])} | {md(r.get('name'))} | {md(r.get('engine'))}"
            f"{' · ' + md(r.get('model')) if r.get('model') else ''} | "
            f"{md(r.get('prompt_id'))}{'@' + md(r.get('prompt_version')) if r.get('prompt_id') else ''} | "
            f"{md(r.get('label_set'))} | {md(_status(r, cov, lang))} | {md(_cov(cov, L))} | {r['n']} | "
            f"{_ci(r['accuracy'], r['accuracy_ci'])} | "
            f"{_ci(r['balanced_accuracy'], r['balanced_accuracy_ci'])} | {_ci(r['f1'], r['f1_ci'])} | "
            f"{r['unparsed']} | {r['errors']} | {cost} |")
    lines.append("")
    by_id = {r["run_id"]: r for r in overview}
    for rid in detail_ids:
        r = by_id.get(rid)
        if r is None:
            continue
        d = decide(r["accuracy"], r["accuracy_ci"], r["n"], r.get("label_set"), lang=lang)
        lines.append(f"- **{md(rid)}** ({md(_raw_label(r))}): {md(d['text'])}")
    return "\n".join(lines) + "\n"


def write_report(store: Store, out: str | Path, run_ids: list[str] | None = None, lang: str = "zh",
                 force: bool = False) -> dict[str, str]:
    """Write the HTML report and a Markdown summary beside it (same name, .md), in ``lang`` (zh or en).

    An existing HTML or Markdown file is refused unless ``force``; both are built before either is written,
    and each is written whole (temporary file, then rename), so a failure leaves no half-written report."""
    from engines.errors import output_path

    _lang(lang)
    out = output_path(out, "report", force=force)
    md = output_path(Path(out).with_suffix(".md"), "report summary", force=force)
    html_text = build_html(store, run_ids, lang=lang)
    md_text = markdown_summary(store, run_ids, lang=lang)
    out.parent.mkdir(parents=True, exist_ok=True)
    for path, text in ((out, html_text), (md, md_text)):
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    return {"html": str(out), "markdown": str(md)}


def _sql_path(p: Path) -> str:
    return "'" + str(p).replace("'", "''") + "'"


def export_tables(store: Store, out_dir: str | Path, fmt: str = "csv",
                  run_ids: list[str] | None = None) -> list[str]:
    """runs.<ext> and predictions.<ext> (with the label of each run's label set) via DuckDB COPY, and — when
    the selected runs' answers carry them — vad_frames.<ext> and vad_boxes.<ext> (per-frame anomaly scores
    and boxes, with the run and video of each answer)."""
    from reports.correctness import correct_sql

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
    # coverage as reports.runs counts it: planned (labelled videos to answer, missing ones included), scored
    # (ok or unparsed), errored, missing (not in the library), not_predicted; a run is partial when any has no answer
    planned = "coalesce(r.planned, json_array_length(r.selection), 0)"
    runs_sql = f"""WITH c AS (SELECT run_id, count(*) AS predicted, count(*) FILTER (WHERE status <> 'error') AS scored,
                                     count(*) FILTER (WHERE status = 'error') AS errored
                              FROM predictions GROUP BY run_id)
                   SELECT r.run_id, r.name, r.engine, r.model, r.revision, r.prompt_id, r.prompt_version,
                          r.prompt_hash, CAST(r.options AS VARCHAR) AS options, CAST(r.sampling AS VARCHAR) AS sampling,
                          r.label_set, CAST(r.selection AS VARCHAR) AS selection, r.location, r.instances,
                          CASE WHEN {planned} > coalesce(c.predicted, 0) AND r.status IN ('done', 'imported')
                               THEN 'partial' ELSE r.status END AS status,
                          {planned} AS planned, coalesce(c.scored, 0) AS scored, coalesce(c.errored, 0) AS errored,
                          coalesce(json_array_length(r.missing), 0) AS missing,
                          greatest({planned} - coalesce(c.predicted, 0), 0) AS not_predicted,
                          CAST(coalesce(c.scored, 0) AS VARCHAR) || '/' || CAST({planned} AS VARCHAR) AS coverage,
                          r.hidden,
                          r.created_at, r.finished_at, r.notes
                   FROM runs r LEFT JOIN c USING (run_id) {where} ORDER BY r.created_at, r.run_id"""
    preds_sql = f"""SELECT p.*, l.ghost_probing AS label_ghost_probing, l.kind AS label_kind,
                           l.onset_s AS label_onset_s,
                           {correct_sql()} AS correct
                    FROM predictions p JOIN runs r USING (run_id)
                    LEFT JOIN labels l ON l.label_set = r.label_set AND l.video_id = p.video_id
                    {where} ORDER BY p.run_id, p.video_id"""
    vad_where = where.replace("r.run_id", "p.run_id") if where else ""
    vad_sql = {name: f"""SELECT p.run_id, p.video_id, v.* FROM {name} v
                         JOIN predictions p ON p.response_id = v.response_id {vad_where}
                         ORDER BY p.run_id, p.video_id, v.frame"""
               for name in ("vad_frames", "vad_boxes")}
    tables = {r["table_name"] for r in store.query(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main'")}
    paths = []
    with store.write() as cur:  # COPY reads under the write lock so a concurrent writer cannot interleave
        jobs = [("runs", runs_sql), ("predictions", preds_sql)]
        for name, sql in vad_sql.items():
            if name in tables and cur.execute(f"SELECT count(*) FROM ({sql})").fetchone()[0]:
                jobs.append((name, sql))
        for name, sql in jobs:
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
