"""报告 (Reports) tab: runs you can filter (datasette-style), per-run metrics with intervals, charts,
the decision rule on the measured interval, the price catalogue, exports.

Numbers come from ``reports.metrics`` (figures and intervals), ``reports.costs`` (measured-or-unknown
costs), charts from ``reports.figures`` and files from ``reports.export``; this module lays them out.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import secrets
from datetime import date, datetime
from pathlib import Path
from typing import Any

import gradio as gr

from reports import costs as C
from reports import export as X
from reports import figures as F
from reports import metrics as M
from reports.runs import RunError
from webapp import messages as msg
from webapp.commands import runs_admin as RA
from webapp.i18n import add_translations, t
from webapp.state import AppState, is_user_error

log = logging.getLogger(__name__)

CHARTS_HELP_ZH = "每个子页的图表在打开时才画：打开时按当前筛选和选中的运行画出；画好后没有变化的图表不会重新发送。"
PRICE_HELP_ZH = ("运行的 `location`（如 `local-cpu`、`azure:Standard_NC24s_v3:eastus`、`openai:gpt-4o`）对应这里的一行。"
                      "按小时计价：测得的模型时间 × 单价；按 token 计价：测得的 token 数 × 单价。没有价格或没有测得的时间/token 时，"
                      "成本显示为“未知”。改过的行标记为人工修改，不会被内置目录覆盖。")
add_translations({
    "引擎筛选": "Engine",
    "模型筛选": "Model",
    "提示词版本筛选": "Prompt version",
    "标签集筛选": "Label set",
    "状态筛选": "Status",
    "搜索运行": "Search runs",
    "run id / 名称 / 模型": "run id / name / model",
    "显示已隐藏的运行": "Show hidden runs",
    "运行列表": "Runs",
    "选中的运行": "Selected run",
    "指标": "Metrics",
    "图表": "Charts",
    "准确率": "Accuracy",
    "上一页": "Previous page",
    "下一页": "Next page",
    "延迟与成本": "Latency & cost",
    "提示词版本": "Prompt versions",
    CHARTS_HELP_ZH: "Each sub-tab's charts are drawn when it is open: from the current filters and selected run, "
                    "the moment you open it; a chart that has not changed since it was drawn is not sent again.",
    "价格目录": "Price catalogue",
    "保存价格": "Save prices",
    "导出": "Export",
    "导出范围": "Export scope",
    "导出语言": "Export language",
    "筛选出的全部运行": "All filtered runs",
    "生成导出文件": "Build export files",
    "下载 HTML 报告": "Download HTML report",
    "下载 Markdown 摘要": "Download Markdown summary",
    "CSV / Parquet 表格": "CSV / Parquet tables",
    "中文": "Chinese",
    "英文": "English",
    "点击一行查看该运行；所有比例都带 95% 区间和 n；覆盖率 = 已评分/计划评测的视频；成本没有测得或没有价格时显示“未知”，不是 0。":
        "Click a row to see that run; every proportion has its 95% interval and n; coverage = scored / planned videos; "
        "a cost nobody measured or priced shows as unknown, not 0.",
    PRICE_HELP_ZH:
        "A run's `location` (such as `local-cpu`, `azure:Standard_NC24s_v3:eastus`, `openai:gpt-4o`) matches one row "
        "here. Hourly prices: measured model time × price; token prices: measured tokens × price. Without a price or "
        "without measured time/tokens the cost shows as unknown. Edited rows are marked as edited by a person and "
        "are never overwritten by the built-in catalogue.",
})

msg.add_messages({
    "rep_cols": {"zh": "运行 run|名称|引擎|模型|提示词|标签集|状态|覆盖率（已评分/计划）|n|准确率 [95% CI]（未解析计为错误）|"
                       "准确率 [95% CI]（未解析不计入）|平衡准确率 [95% CI]|F1 [95% CI]|未解析|出错|延迟 p50 / p95 (s)|成本/视频|创建时间",
                 "en": "run|name|engine|model|prompt|label set|status|coverage (scored/planned)|n|"
                       "accuracy [95% CI] (unparsed counted wrong)|accuracy [95% CI] (unparsed left out)|"
                       "balanced accuracy [95% CI]|F1 [95% CI]|unparsed|errors|latency p50 / p95 (s)|cost / video|created"},
    "rep_all": {"zh": "全部", "en": "All"}, "rep_none_opt": {"zh": "（无）", "en": "(none)"},
    "rep_na": {"zh": "无法计算 (n/a)", "en": "n/a"},
    "rep_unknown": {"zh": "未知", "en": "unknown"},
    "rep_cached": {"zh": "（全部缓存，无模型调用）", "en": " (all cached, no model call)"},
    "rep_no_runs": {"zh": "还没有运行：在“提示词实验室”里运行一个提示词版本，或用 `ghostprobe eval`。",
                    "en": "No runs yet: run a prompt version in the Prompt Lab, or use `ghostprobe eval`."},
    "rep_no_match": {"zh": "没有符合筛选条件的运行（共 {n} 次运行）：放宽筛选条件或清空搜索。",
                     "en": "No run matches the filters ({n} runs in all): loosen the filters or clear the search."},
    "rep_count": {"zh": "{n} 次运行{hidden}{page}。", "en": "{n} runs{hidden}{page}."},
    "rep_page": {"zh": "；表中第 {a}–{b} 次（第 {p}/{pages} 页）", "en": "; rows {a}–{b} in the table (page {p} of {pages})"},
    "rep_hidden_note": {"zh": "（另有 {h} 次已隐藏）", "en": " ({h} more hidden)"},
    "rep_rule": {"zh": "**决策规则**（种子项目）：准确率 ≥ 80% → 部署；60–80% → 改进提示词或换更大的模型；"
                       "< 60% → 收集标注数据并微调。这里按 **95% 区间** 判断，而不是按点估计：只有整个区间落在同一档时才下结论。",
                 "en": "**Decision rule** (seed project): accuracy ≥ 80% → deploy; 60–80% → improve the prompts or use a "
                       "larger model; < 60% → collect labelled data and fine-tune. Decided on the **95% interval**, not the "
                       "point estimate: a conclusion only when the whole interval lies in one band."},
    "rep_band_deploy": {"zh": "≥ 80%：部署", "en": "≥ 80%: deploy"},
    "rep_band_improve": {"zh": "60–80%：改进提示词或换更大的模型", "en": "60–80%: improve the prompts or use a larger model"},
    "rep_band_collect": {"zh": "< 60%：收集标注数据并微调", "en": "< 60%: collect labelled data and fine-tune"},
    "rep_in_band": {"zh": "整个区间落在 {b}。", "en": "The whole interval lies in {b}."},
    "rep_spans": {"zh": "区间跨越 {b} 几档，无法决定：需要更多标注视频。", "en": "The interval spans {b}: undecided, more labelled videos are needed."},
    "rep_no_scored": {"zh": "没有已评分的视频，无法决定。", "en": "No scored videos, so nothing can be decided."},
    "rep_measured": {"zh": "测得准确率 {a}（标签集 {s}，n={n}，未解析/出错计为错误；覆盖率 {cov}）。",
                     "en": "Measured accuracy {a} (label set {s}, n={n}, unparsed/errors counted wrong; coverage {cov})."},
    "rep_verdict": {"zh": "**结论**：{v}", "en": "**Conclusion**: {v}"},
    "rep_cost_known": {"zh": "{total} 共计，{per}/视频（{calls} 次模型调用，{cached} 个缓存命中，按 {basis} 计价）",
                       "en": "{total} in all, {per} per video ({calls} model calls, {cached} cache hits, priced {basis})"},
    "rep_cost_unknown": {"zh": "未知：{why}", "en": "unknown: {why}"},
    "rep_no_price": {"zh": "没有价格", "en": "no price"},
    "rep_lat_none": {"zh": "未知（没有测得的延迟）", "en": "unknown (no measured latency)"},
    "rep_lat": {"zh": "p50 {p50:.2f} s，p95 {p95:.2f} s，平均 {mean:.2f} s（n={n}）", "en": "p50 {p50:.2f} s, p95 {p95:.2f} s, mean {mean:.2f} s (n={n})"},
    "rep_auroc_none": {"zh": "无法计算（带置信度的已解析回答 n={n}，或只有一类标签）", "en": "n/a (parsed answers with a confidence n={n}, or one class only)"},
    "rep_onset": {"zh": "中位误差 {med:.2f} s，1 s 以内 {w}（n={n}）", "en": "median error {med:.2f} s, within 1 s {w} (n={n})"},
    "rep_onset_none": {"zh": "无（没有同时给出标注和预测出现时间的鬼探头视频）", "en": "none (no ghost-probing video with both a labelled and a predicted onset)"},
    "rep_run_head": {"zh": "### 运行 {r}{name}", "en": "### Run {r}{name}"},
    "rep_run_line": {"zh": "引擎 **{e}**{model} · 提示词 **{p}** · 标签集 **{s}**{size} · 覆盖率 **{cov}** · 状态 {st} · 位置 {loc}",
                     "en": "engine **{e}**{model} · prompt **{p}** · label set **{s}**{size} · coverage **{cov}** · status {st} · location {loc}"},
    "rep_model": {"zh": " · 模型 {m}", "en": " · model {m}"},
    "rep_size": {"zh": "（{n} 个视频{miss}）", "en": " ({n} videos{miss})"},
    "rep_size_missing": {"zh": "，{n} 个不在视频库中", "en": ", {n} not in the library"},
    "rep_table_head": {"zh": "| 指标（95% 区间） | 未解析/出错计为错误 (n={a}) | 未解析/出错不计入 (n={b}) |",
                       "en": "| Metric (95% interval) | unparsed/errors counted wrong (n={a}) | unparsed/errors left out (n={b}) |"},
    "rep_m_acc": {"zh": "准确率 accuracy", "en": "accuracy"}, "rep_m_bal": {"zh": "平衡准确率 balanced accuracy", "en": "balanced accuracy"},
    "rep_m_prec": {"zh": "精确率 precision", "en": "precision"}, "rep_m_rec": {"zh": "召回率 recall", "en": "recall"},
    "rep_m_spec": {"zh": "特异度 specificity", "en": "specificity"},
    "rep_counts": {"zh": "- 未解析 **{u}**，出错 **{e}**，无标签 {l}（未解析的回答从不计为“否”）",
                   "en": "- unparsed **{u}**, errors **{e}**, unlabelled {l} (an unparsed answer is never a no)"},
    "rep_bullet": {"zh": "- {k}：{v}", "en": "- {k}: {v}"},
    "rep_k_auroc": {"zh": "AUROC", "en": "AUROC"}, "rep_k_onset": {"zh": "出现时间", "en": "onset"},
    "rep_k_lat": {"zh": "延迟", "en": "latency"}, "rep_k_cost": {"zh": "成本", "en": "cost"},
    "rep_ci": {"zh": "- 区间方法：比例用 {a}；平衡准确率用 {b}；F1 用 {c}", "en": "- interval methods: proportions {a}; balanced accuracy {b}; F1 {c}"},
    "rep_no_roc": {"zh": "该运行没有可画 ROC/PR 的回答（带置信度的已解析回答 n={n}，或只有一类标签），所以不画。",
                   "en": "This run has no answers to draw ROC/PR from (parsed answers with a confidence n={n}, or one class only), so none is drawn."},
    "rep_versions_title": {"zh": "按提示词版本：准确率、F1、平衡准确率（95% 区间；标签集 {s}；每格取最新完成的运行）",
                           "en": "By prompt version: accuracy, F1, balanced accuracy (95% intervals; label set {s}; the latest finished run per cell)"},
    "rep_all_sets": {"zh": "全部", "en": "all"},
    "rep_conf_cw": {"zh": "{r} · 未解析计为错误", "en": "{r} · unparsed counted wrong"},
    "rep_conf_ex": {"zh": "{r} · 未解析不计入", "en": "{r} · unparsed left out"},
    "rep_pick_run": {"zh": "请选择要导出的运行，或导出筛选出的全部运行。", "en": "Select a run to export, or export the filtered runs."},
    "rep_nothing": {"zh": "没有符合筛选条件的运行，没有可导出的内容。", "en": "No run matches the filters, so there is nothing to export."},
    "rep_exported": {"zh": "已生成导出文件（{n} 次运行，{language}）：HTML 报告可离线打开，另有 Markdown 摘要和 runs / predictions 的 CSV、Parquet。",
                     "en": "Export files are ready ({n} runs, {language}): an HTML report that opens offline, a Markdown summary, and CSV and Parquet of runs and predictions."},
    "rep_lang_zh": {"zh": "中文", "en": "Chinese"}, "rep_lang_en": {"zh": "英文", "en": "English"},
    "rep_prices_saved": {"zh": "已保存 {n} 行价格：{rows}。", "en": "Saved {n} price rows: {rows}."},
    "rep_prices_same": {"zh": "价格没有改动。", "en": "No price changed."},
    "rep_added": {"zh": "（新增）", "en": " (new)"},
})
msg.add_error_translations([
    (r"Row (?P<n>\d+) \((?P<k>.*)\): a price needs a provider and a SKU\.", "第 {n} 行（{k}）：价格需要 provider 和 SKU。"),
    (r"Row (?P<n>\d+) \((?P<k>.*)\): (?P<c>\w+) must be a number, not '(?P<v>.*)'\.", "第 {n} 行（{k}）：{c} 必须是数字，而不是“{v}”。"),
    (r"Row (?P<n>\d+) \((?P<k>.*)\): as_of must be a date such as 2026-11-21, not '(?P<v>.*)'\.",
     "第 {n} 行（{k}）：as_of 必须是日期（例如 2026-11-21），而不是“{v}”。"),
])

ALL = ""
NONE = "∅"
CHART_RUNS = 12  # runs drawn in the cost chart
# Runs per page of the runs table (newest first). Gradio copies every cell of a table on the page several times
# per event of the page (its loading status), so 200 runs in one table slowed every click; the filters, the
# search and the run picker still reach every run.
PAGE_ROWS = 50
CHART_KEYS = ("versions", "confusion", "roc", "pr", "latency", "cost")
# The charts' sub-tabs (id → charts), the first one open. Only the open sub-tab's charts are drawn (Gradio
# redraws a changed gr.Plot from scratch, twice, in software rendering here: most of a click on the page);
# the others are drawn when their sub-tab is opened, from the filters and run of that moment.
VIEWS = {"accuracy": ("confusion",), "curves": ("roc", "pr"), "latency_cost": ("latency", "cost"),
         "versions": ("versions",)}
VIEW_DEFAULT = "accuracy"
# What a chart on the page shows, as the session's `shown` state records it: a fingerprint (the figure drawn),
# HIDDEN (nothing to draw: the chart is hidden), CLEARED (emptied: it would have been stale in a closed
# sub-tab); a key not there yet: the empty chart of a fresh page.
HIDDEN = ""
CLEARED = "cleared"
# Gradio's Plot (6.x) draws a changed figure twice: into the chart on the page, which its effect redraws with the
# new value, then into the new chart it mounts in that one's place within the same update (a keyed block). For
# the Reports charts (#rep-charts) the draw waits until that update is over (a microtask) and goes only to the
# chart still on the page: each changed chart is drawn once, to the size of its place then (Gradio's
# Plots.resize right after it, which relaid the chart out 100 ms later to the same size, is left out for them;
# a window resize still resizes them: the charts are responsive). Installed once per page, before plotly.js
# loads (Gradio loads it with the first chart and sets window.Plotly); other charts of the page are left alone.
PLOT_ONCE_JS = """(...inputs) => {
  if (window.__gpPlotOnce) return inputs;
  window.__gpPlotOnce = true;
  const patch = (P) => {
    if (!P || P.__gpOnce || typeof P.react !== 'function' || !P.Plots) return;
    P.__gpOnce = true;
    const react = P.react, resize = P.Plots.resize, pending = new Set();
    P.react = function (gd, ...args) {
      if (!(gd && gd.closest && gd.closest('#rep-charts'))) return react.call(this, gd, ...args);
      pending.add(gd);
      return new Promise((resolve, reject) => queueMicrotask(() => {
        pending.delete(gd);
        if (!gd.isConnected) { resolve(gd); return; }
        react.call(P, gd, ...args).then(resolve, reject);
      }));
    };
    P.Plots.resize = function (gd, ...args) {
      return pending.has(gd) ? Promise.resolve(gd) : resize.call(this, gd, ...args);
    };
  };
  if (window.Plotly) { patch(window.Plotly); return inputs; }
  let plotly;
  Object.defineProperty(window, 'Plotly', {configurable: true, enumerable: true,
                                           get: () => plotly, set: (p) => { plotly = p; patch(p); }});
  return inputs;
}"""
BANDS = ("deploy", "improve", "collect")
PRICE_COLUMNS = ["provider", "sku", "region", "gpus", "gpu_type", "usd_per_hour", "usd_per_1m_input_tokens",
                 "usd_per_1m_output_tokens", "source", "as_of", "notes"]
PRICE_TYPES = ["str", "str", "str", "number", "str", "number", "number", "number", "str", "str", "str"]


def run_columns(lang: str = "zh") -> list[str]:
    return msg.m("rep_cols", lang).split("|")


RUN_COLUMNS = run_columns("zh")


# -- formatting (display only; every figure comes from reports.metrics / reports.costs) --------------
def pct_ci(v: float | None, ci: list[float] | None, lang: str = "zh") -> str:
    if v is None:
        return msg.m("rep_na", lang)
    s = f"{100 * v:.0f}%"
    return s + (f" [{100 * ci[0]:.0f}–{100 * ci[1]:.0f}%]" if ci else "")


def usd(c: dict[str, Any] | None, key: str = "usd_per_video", lang: str = "zh") -> str:
    """A measured cost, or 未知 / unknown — never 0 for a cost nobody measured."""
    if not c:
        return msg.m("rep_unknown", lang)
    if c.get(key) is not None:
        return f"${c[key]:.4f}" + (msg.m("rep_cached", lang) if c.get("basis") == "cached" else "")
    return msg.m("rep_unknown", lang)


def prompt_ref(r: dict[str, Any]) -> str:
    return f"{r['prompt_id']}@{r.get('prompt_version')}" if r.get("prompt_id") else "—"


def _opt(v: Any) -> str:
    return NONE if v is None or v == "" else str(v)


# -- data -------------------------------------------------------------------------------------------------
def filter_choices(overview: list[dict[str, Any]], lang: str = "zh") -> dict[str, list[tuple[str, str]]]:
    def ch(values, show=lambda v: v):
        vals = sorted({_opt(v) for v in values})
        return [(msg.m("rep_all", lang), ALL)] + [(msg.m("rep_none_opt", lang) if v == NONE else show(v), v) for v in vals]

    return {
        "engine": ch(r.get("engine") for r in overview),
        "model": ch(r.get("model") for r in overview),
        "prompt": ch(prompt_ref(r) if r.get("prompt_id") else None for r in overview),
        "label_set": ch(r.get("label_set") for r in overview),
        "status": ch((r.get("status") for r in overview),
                     lambda v: f"{msg.status_name(v, lang)} {v}" if lang == "zh" else v),
    }


def with_coverage(state: AppState, rows: list[dict[str, Any]], include_hidden: bool = False) -> list[dict[str, Any]]:
    """Overview rows joined with reports.runs' coverage (planned, scored, not_predicted, missing) and hidden flag;
    hidden runs left out unless asked for."""
    listed = {r["run_id"]: r for r in M.runs_listing(state.store, include_hidden=True, selection=False)}  # cached
    out = []
    for r in rows:
        f = listed.get(r["run_id"], {})
        if f.get("hidden") and not include_hidden:
            continue
        out.append({**r, **{k: f.get(k) for k in ("planned", "scored", "errored", "not_predicted", "hidden",
                                                  "predictions", "status") if k in f},
                    "missing": f.get("missing", r.get("missing"))})
    return out


def filtered(state: AppState, engine: str = ALL, model: str = ALL, prompt: str = ALL, label_set: str = ALL,
             status: str = ALL, search: str = "", include_hidden: bool = False) -> list[dict[str, Any]]:
    rows = with_coverage(state, M.runs_overview(state.store), include_hidden)
    want = {"engine": engine, "model": model, "label_set": label_set, "status": status}
    out = []
    needle = (search or "").strip().lower()
    for r in rows:
        if any(v and _opt(r.get(k)) != v for k, v in want.items()):
            continue
        if prompt and _opt(prompt_ref(r) if r.get("prompt_id") else None) != prompt:
            continue
        if needle and not any(needle in str(r.get(k) or "").lower() for k in ("run_id", "name", "model", "engine")):
            continue
        out.append(r)
    return out


def runs_table(state: AppState, rows: list[dict[str, Any]], lang: str = "zh",
               costs: dict[str, dict[str, Any]] | None = None):
    """The runs table; ``costs``: reports.costs.runs_costs of these rows when the caller has them already."""
    import pandas as pd

    if costs is None:
        costs = C.runs_costs(state.store, [r["run_id"] for r in rows]) if rows else {}
    table = []
    for r in rows:
        both = r["metrics_both_ways"]
        ex = both["excluded"]
        lat = r["latency_s"]
        lat_txt = msg.m("rep_unknown", lang) if lat.get("p50") is None else             f"{lat['p50']:.2f} / {lat['p95']:.2f} (n={lat['n']})"
        table.append([
            r["run_id"], r.get("name") or "", r.get("engine") or "", r.get("model") or "", prompt_ref(r),
            r.get("label_set") or "—", msg.run_status(r, lang) + (msg.m("hidden_tag", lang) if r.get("hidden") else ""),
            msg.coverage(r, lang), r["n"],
            pct_ci(r["accuracy"], r["accuracy_ci"], lang), pct_ci(ex["accuracy"], ex["accuracy_ci"], lang) + f" n={ex['n']}",
            pct_ci(r["balanced_accuracy"], r["balanced_accuracy_ci"], lang), pct_ci(r["f1"], r["f1_ci"], lang),
            r["unparsed"], r["errors"], lat_txt, usd(costs.get(r["run_id"]), lang=lang),
            str(r.get("created_at") or "")[:19],
        ])
    return pd.DataFrame(table, columns=run_columns(lang))


def run_choices(rows: list[dict[str, Any]]) -> list[tuple[str, str]]:
    out = []
    for r in rows:
        planned, scored, _ = msg.coverage_counts(r)
        cov = f" · {scored}/{planned}" if planned is not None else ""
        out.append((f"{r['run_id']} · {r.get('engine')} · {prompt_ref(r)} · {r.get('label_set') or '—'}{cov}", r["run_id"]))
    return out


def decision_md(m: dict[str, Any], lang: str = "zh") -> str:
    d = X.decide(m.get("accuracy"), m.get("accuracy_ci"), m.get("n") or 0, m.get("label_set"), lang=lang)
    if d["decision"]:
        verdict = msg.m("rep_in_band", lang, b=msg.m(f"rep_band_{d['decision']}", lang))
    elif d["bands"]:
        sep = "、" if lang == "zh" else ", "
        verdict = msg.m("rep_spans", lang, b=sep.join(msg.m(f"rep_band_{b}", lang).split("：")[0].split(": ")[0]
                                                      for b in d["bands"]))
    else:
        verdict = msg.m("rep_no_scored", lang)
    ci = m.get("accuracy_ci")
    meas = msg.md("rep_measured", lang, a=pct_ci(m.get("accuracy"), ci, lang), s=m.get("label_set") or "—",
                  n=m.get("n") or 0, cov=msg.coverage(m, lang)) if m.get("n") else ""
    return (f"{msg.m('rep_rule', lang)}\n\n{meas}{msg.m('rep_verdict', lang, v=verdict)}\n\n"
            f"<small>{msg.escape_md(d['text'])}</small>")


def metrics_md(state: AppState, m: dict[str, Any], lang: str = "zh", cost: dict[str, Any] | None = None) -> str:
    """The run's metrics as Markdown; ``cost``: its reports.costs row when the caller has it already."""
    e = msg.escape_md
    both = m["metrics_both_ways"]
    cw, ex = both["counted_wrong"], both["excluded"]

    def row(name: str, k: str) -> str:
        return f"| {name} | {pct_ci(cw[k], cw[k + '_ci'], lang)} | {pct_ci(ex[k], ex[k + '_ci'], lang)} |"

    try:
        c = cost if cost is not None else C.run_cost(state.store, m["run_id"])
    except Exception as ex_:  # a cost we cannot work out is unknown, with the sentence
        c = {"usd": None, "reason": msg.error_text(ex_, "en")}
    if c.get("usd") is not None:
        cost = msg.m("rep_cost_known", lang, total=usd(c, "usd", lang), per=usd(c, "usd_per_video", lang),
                     calls=c.get("model_calls"), cached=c.get("cached"), basis=c.get("basis"))
    else:
        why = msg.translate(c.get("reason") or "", lang) or msg.m("rep_no_price", lang)
        cost = e(why) if why.startswith(("成本未知", "Cost unknown")) else msg.m("rep_cost_unknown", lang, why=e(why))
    lat = m["latency_s"]
    lat_txt = msg.m("rep_lat_none", lang) if lat.get("p50") is None else         msg.m("rep_lat", lang, p50=lat["p50"], p95=lat["p95"], mean=lat["mean"], n=lat["n"])
    auroc = (f"{m['auroc']:.3f} [{m['auroc_ci'][0]:.3f}–{m['auroc_ci'][1]:.3f}]" + (
        f"（n={m['auroc_n']}）" if lang == "zh" else f" (n={m['auroc_n']})")
             if m.get("auroc") is not None and m.get("auroc_ci") else msg.m("rep_auroc_none", lang, n=m.get("auroc_n", 0)))
    on = m.get("onset") or {}
    onset = (msg.m("rep_onset", lang, med=on["median_abs_s"], w=pct_ci(on["within_1s"], on["within_1s_ci"], lang), n=on["n"])
             if on.get("n") else msg.m("rep_onset_none", lang))
    size = m.get("label_set_size")
    miss = msg.m("rep_size_missing", lang, n=m["missing"]) if m.get("missing") else ""
    model = msg.m("rep_model", lang, m=f"`{m['model']}`") if m.get("model") else ""
    lines = [
        msg.m("rep_run_head", lang, r=m["run_id"], name=(" · " + e(m["name"])) if m.get("name") else ""),
        msg.m("rep_run_line", lang, e=e(m.get("engine")), model=model, p=e(prompt_ref(m)), s=e(m.get("label_set") or "—"),
              size=msg.m("rep_size", lang, n=size, miss=miss) if size is not None else "", cov=e(msg.coverage(m, lang)),
              st=e(msg.run_status(m, lang)), loc=e(m.get("location") or "—")),
        "",
        msg.m("rep_table_head", lang, a=cw["n"], b=ex["n"]),
        "|---|---|---|",
        row(msg.m("rep_m_acc", lang), "accuracy"), row(msg.m("rep_m_bal", lang), "balanced_accuracy"),
        row("F1", "f1"), row(msg.m("rep_m_prec", lang), "precision"), row(msg.m("rep_m_rec", lang), "recall"),
        row(msg.m("rep_m_spec", lang), "specificity"),
        f"| TP / FP / TN / FN | {cw['tp']} / {cw['fp']} / {cw['tn']} / {cw['fn']} | "
        f"{ex['tp']} / {ex['fp']} / {ex['tn']} / {ex['fn']} |",
        "",
        msg.m("rep_counts", lang, u=m["unparsed"], e=m["errors"], l=m["unlabelled"]),
        msg.m("rep_bullet", lang, k=msg.m("rep_k_auroc", lang), v=auroc),
        msg.m("rep_bullet", lang, k=msg.m("rep_k_onset", lang), v=onset),
        msg.m("rep_bullet", lang, k=msg.m("rep_k_lat", lang), v=lat_txt),
        msg.m("rep_bullet", lang, k=msg.m("rep_k_cost", lang), v=cost),
        msg.m("rep_ci", lang, a=m["ci_method"]["proportions"], b=m["ci_method"]["balanced_accuracy"], c=m["ci_method"]["f1"]),
    ]
    if m.get("note"):
        lines.append(f"- ⚠️ {e(msg.translate(m['note'], lang))}")
    return "\n".join(lines)


def charts(state: AppState, rows: list[dict[str, Any]], m: dict[str, Any] | None, lang: str = "zh",
           costs: dict[str, dict[str, Any]] | None = None, want: Any = CHART_KEYS) -> dict[str, Any]:
    """Figures from reports.figures; None where there is nothing measured to draw. ``costs``: runs_costs of
    ``rows`` when the caller has them already; ``want``: the charts to build (the others are left out)."""
    out: dict[str, Any] = {k: None for k in CHART_KEYS if k in want}
    ls = m.get("label_set") if m else None
    if "versions" in want:
        cells = M.by_prompt_version(state.store, label_set=ls, overview=rows) if rows else []
        if cells:
            out["versions"] = F.metric_bars(cells, label_key="cell", lang=lang, title=msg.m(
                "rep_versions_title", lang, s=ls or msg.m("rep_all_sets", lang)))
    if m:
        if "confusion" in want:  # both policies side by side: one chart to draw
            ex = {**m, **m["metrics_both_ways"]["excluded"], "policy": "excluded"}
            out["confusion"] = F.confusion_pair_html(m, ex, [msg.m("rep_conf_cw", lang, r=F.run_label(m)),
                                                             msg.m("rep_conf_ex", lang, r=F.run_label(m))], lang=lang)
        if m.get("auroc") is not None and ("roc" in want or "pr" in want):
            y, s = M.scored_answers(state.store, m["run_id"])
            curve = {"name": F.run_label(m), "y": y, "s": s, "auroc": m["auroc"], "auroc_ci": m["auroc_ci"],
                     "n": m["auroc_n"]}
            if "roc" in want:
                out["roc"] = F.roc_figure([curve], lang=lang)
            if "pr" in want:
                out["pr"] = F.pr_figure([curve], lang=lang)
    ids = [r["run_id"] for r in rows]
    if "latency" in want:
        lat = M.latency_by_engine(state.store, ids) if ids else []
        if lat:
            out["latency"] = F.latency_box(lat, lang=lang)
    if ids and "cost" in want:
        shown = rows[:CHART_RUNS]
        if costs is None or any(r["run_id"] not in costs for r in shown):
            costs = C.runs_costs(state.store, [r["run_id"] for r in shown])
        cost_rows = [{**costs[r["run_id"]], "label": F.run_label(r),
                      "reason": msg.translate(costs[r["run_id"]].get("reason") or "", lang) or None}
                     for r in shown if r["run_id"] in costs]
        if cost_rows:
            out["cost"] = F.cost_per_video(cost_rows, lang=lang)
    return out


def fingerprint(value: Any) -> str:
    """What a value sent to the page looks like, in 32 hex digits (HIDDEN for None): a Plotly figure by its JSON,
    a table by its cells and headers, anything else by its JSON. Equal fingerprints, equal content."""
    if value is None:
        return HIDDEN
    if hasattr(value, "to_plotly_json"):
        data = value.to_json()
    elif hasattr(value, "to_json") and hasattr(value, "columns"):  # a pandas DataFrame
        data = json.dumps([list(map(str, value.columns)), value.to_json(orient="values", force_ascii=False)])
    else:
        data = json.dumps(value, sort_keys=True, default=str, ensure_ascii=False)
    return hashlib.blake2b(data.encode(), digest_size=16).hexdigest()


def drawn(fp: Any) -> bool:
    """Whether a `shown` entry is a figure on the page (not hidden, emptied, or never sent)."""
    return isinstance(fp, str) and fp not in (HIDDEN, CLEARED)


def chart_updates(figs: dict[str, Any], shown: dict[str, str], view: str) -> list[Any]:
    """One update per chart of CHART_KEYS (``figs``: the figures built for this click), changing ``shown``: a chart
    of the open sub-tab is sent when it differs from what the page shows; a chart of a closed sub-tab is not
    drawn: when what it shows changed, it is emptied (or hidden, with nothing to draw), and drawn when its
    sub-tab is opened. gr.skip() where the page already shows the right thing."""
    open_keys = VIEWS.get(view, VIEWS[VIEW_DEFAULT])
    out: list[Any] = []
    for k in CHART_KEYS:
        if k not in figs:  # not built: in a closed sub-tab and showing nothing that could be stale
            out.append(gr.skip())
            continue
        fig, fp, was = figs[k], fingerprint(figs[k]), shown.get(k)
        if fp == was:
            out.append(gr.skip())
        elif k in open_keys:
            out.append(gr.update(value=fig, visible=fig is not None))
            shown[k] = fp
        elif fig is None:
            out.append(gr.update(value=None, visible=False))
            shown[k] = HIDDEN
        elif drawn(was):
            out.append(gr.update(value=None))
            shown[k] = CLEARED
        else:
            out.append(gr.skip())
    return out


def charts_wanted(shown: dict[str, str], view: str) -> set[str]:
    """The charts a click builds: the open sub-tab's, and the drawn ones of closed sub-tabs (to know whether they
    went stale)."""
    return set(VIEWS.get(view, VIEWS[VIEW_DEFAULT])) | {k for k in CHART_KEYS if drawn(shown.get(k))}


def send_if_changed(shown: dict[str, str], key: str, value: Any, update: Any) -> Any:
    """``update`` when ``value`` differs from what the page was last sent under ``key`` (recorded in ``shown``),
    else gr.skip()."""
    fp = fingerprint(value)
    if shown.get(key) == fp:
        return gr.skip()
    shown[key] = fp
    return update


def price_rows(state: AppState) -> list[list[Any]]:
    out = []
    for r in C.list_prices(state.store):
        out.append([r.get(k) if k != "as_of" else (str(r["as_of"]) if r.get("as_of") else None) for k in PRICE_COLUMNS])
    return out


def _cell(v: Any) -> Any:
    if v is None:
        return None
    if isinstance(v, float) and math.isnan(v):
        return None
    if isinstance(v, str) and not v.strip():
        return None
    return v


def _number(v: Any, col: str, where: str, kind=float) -> Any:
    v = _cell(v)
    if v is None:
        return None
    try:
        x = kind(float(str(v).strip().lstrip("$")))
    except ValueError:
        raise RunError(f"{where}: {col} must be a number, not '{v}'.") from None
    return x


def save_prices(state: AppState, table: Any) -> list[str]:
    """Apply the edited rows of the price table through reports.costs.set_price; returns the changed keys."""
    import pandas as pd

    df = table if isinstance(table, pd.DataFrame) else pd.DataFrame(
        (table or {}).get("data", []) if isinstance(table, dict) else table, columns=PRICE_COLUMNS)
    current = {(r["provider"], r["sku"], r["region"] or ""): r for r in C.list_prices(state.store)}
    changed = []
    for i, rec in enumerate(df.to_dict("records"), start=1):
        provider, sku = str(_cell(rec.get("provider")) or "").strip(), str(_cell(rec.get("sku")) or "").strip()
        region = str(_cell(rec.get("region")) or "").strip()
        if not provider and not sku:
            continue  # an empty row someone added and left
        where = f"Row {i} ({provider}:{sku}{':' + region if region else ''})"
        if not provider or not sku:
            raise RunError(f"{where}: a price needs a provider and a SKU.")
        new = {
            "gpus": _number(rec.get("gpus"), "gpus", where, int),
            "gpu_type": _cell(rec.get("gpu_type")),
            "usd_per_hour": _number(rec.get("usd_per_hour"), "usd_per_hour", where),
            "usd_per_1m_input_tokens": _number(rec.get("usd_per_1m_input_tokens"), "usd_per_1m_input_tokens", where),
            "usd_per_1m_output_tokens": _number(rec.get("usd_per_1m_output_tokens"), "usd_per_1m_output_tokens", where),
            "source": _cell(rec.get("source")),
        }
        as_of = _cell(rec.get("as_of"))
        if as_of is not None:
            try:
                new["as_of"] = as_of if isinstance(as_of, date) else date.fromisoformat(str(as_of).strip()[:10])
            except ValueError:
                raise RunError(f"{where}: as_of must be a date such as 2026-11-21, not '{as_of}'.") from None
        old = current.get((provider, sku, region))
        if old is None:
            C.set_price(state.store, provider, sku, region, **{k: v for k, v in new.items() if v is not None})
            changed.append(f"{provider}:{sku}{':' + region if region else ''}（新增）")
            continue
        diff = {}
        for k, v in new.items():
            ov = old.get(k)
            if k == "as_of":
                ov = ov if ov is None or isinstance(ov, date) else date.fromisoformat(str(ov)[:10])
            if isinstance(v, float) and isinstance(ov, (int, float)) and ov is not None:
                if abs(v - float(ov)) > 1e-12:
                    diff[k] = v
            elif v != ov and not (v is None and ov in (None, "")):
                diff[k] = v
        if diff:
            if "as_of" not in diff:
                diff["as_of"] = date.today()
            if "source" not in diff:
                diff["source"] = "edited by a person"
            C.set_price(state.store, provider, sku, region, **diff)
            changed.append(f"{provider}:{sku}{':' + region if region else ''}")
    return changed


def export_files(state: AppState, run_ids: list[str] | None, lang: str = "zh") -> dict[str, Any]:
    """HTML report + Markdown summary (in ``lang``) + CSV/Parquet of runs and predictions under <cache>/exports/<stamp>/."""
    stamp = f"{datetime.now():%Y%m%d-%H%M%S}-{secrets.token_hex(2)}"
    out = Path(state.config.cache_dir) / "exports" / stamp
    out.mkdir(parents=True, exist_ok=True)
    tag = run_ids[0] if run_ids and len(run_ids) == 1 else f"{len(run_ids)}runs" if run_ids else "all"
    rep = X.write_report(state.store, out / f"ghostprobe-report-{tag}-{lang}.html", run_ids or None, lang=lang)
    tables = X.export_tables(state.store, out, "csv", run_ids or None)
    tables += X.export_tables(state.store, out, "parquet", run_ids or None)
    return {"html": rep["html"], "markdown": rep["markdown"], "tables": tables, "dir": str(out)}


# -- the tab ----------------------------------------------------------------------------------------------
def build(state: AppState, shared: dict[str, dict] | None = None) -> dict[str, Any]:
    from gradio.context import get_render_context

    tab = get_render_context()
    rows0 = filtered(state)
    fc = filter_choices(rows0)
    with gr.Row():
        f_engine = gr.Dropdown(choices=fc["engine"], value=ALL, label=t("引擎筛选"), elem_id="rep-f-engine")
        f_model = gr.Dropdown(choices=fc["model"], value=ALL, label=t("模型筛选"), elem_id="rep-f-model")
        f_prompt = gr.Dropdown(choices=fc["prompt"], value=ALL, label=t("提示词版本筛选"), elem_id="rep-f-prompt")
        f_label = gr.Dropdown(choices=fc["label_set"], value=ALL, label=t("标签集筛选"), elem_id="rep-f-label-set")
        f_status = gr.Dropdown(choices=fc["status"], value=ALL, label=t("状态筛选"), elem_id="rep-f-status")
        f_search = gr.Textbox(label=t("搜索运行"), placeholder=t("run id / 名称 / 模型"), elem_id="rep-f-search")
        f_hidden = gr.Checkbox(label=t("显示已隐藏的运行"), value=False, elem_id="rep-f-hidden")
        refresh = gr.Button(t("刷新"), scale=0, elem_id="rep-refresh")
    runs_empty = gr.Markdown(elem_id="rep-runs-empty")
    runs_df = gr.Dataframe(value=runs_table(state, rows0[:PAGE_ROWS]), label=t("运行列表"), interactive=False,
                           show_search="filter", wrap=True, max_height=420, elem_id="rep-runs")
    with gr.Row():
        prev_btn = gr.Button(t("上一页"), size="sm", scale=0, visible=False, elem_id="rep-page-prev")
        next_btn = gr.Button(t("下一页"), size="sm", scale=0, visible=False, elem_id="rep-page-next")
    gr.Markdown("<small>" + t("点击一行查看该运行；所有比例都带 95% 区间和 n；覆盖率 = 已评分/计划评测的视频；成本没有测得或没有价格时显示“未知”，不是 0。")
                + "</small>")
    run_dd = gr.Dropdown(choices=run_choices(rows0), value=rows0[0]["run_id"] if rows0 else None,
                         label=t("选中的运行"), elem_id="rep-run")
    pinned = gr.State("")  # a run the person picked; otherwise refreshing shows the newest run
    # per session: what the page shows (fingerprints of the charts, table and lists last sent; see chart_updates)
    # and the charts' open sub-tab
    shown_state = gr.State({})
    view_state = gr.State(VIEW_DEFAULT)
    page_state = gr.State(0)  # the page of the runs table, from 0
    status = gr.Markdown(elem_id="rep-status")
    with gr.Row():
        with gr.Column(scale=3):
            metrics_view = gr.Markdown(elem_id="rep-metrics")
        with gr.Column(scale=2):
            decision_view = gr.Markdown(elem_id="rep-decision")
    gr.Markdown("### " + t("图表"))
    gr.Markdown("<small>" + t(CHARTS_HELP_ZH) + "</small>")
    # the charts' sub-tabs: a picker and one group of charts per view, only the picked one shown (Gradio's nested
    # gr.Tabs, inside a tab not open yet, sometimes never rendered the open sub-tab's charts)
    with gr.Column(elem_id="rep-charts"):
        view_pick = gr.Radio(choices=[(t("准确率"), "accuracy"), ("ROC · PR", "curves"), (t("延迟与成本"), "latency_cost"),
                                      (t("提示词版本"), "versions")], value=VIEW_DEFAULT, show_label=False,
                             container=False, elem_id="rep-view-pick")
        with gr.Column(visible=True, elem_id="rep-view-accuracy") as v_accuracy:
            # both unparsed policies, as two shaded HTML tables: the open view of a fresh page and of most clicks,
            # so it is the one chart that is not Plotly's (a heatmap took most of a click to draw)
            p_conf = gr.HTML(elem_id="rep-chart-confusion")
        with gr.Column(visible=False, elem_id="rep-view-curves") as v_curves:
            roc_note = gr.Markdown(elem_id="rep-roc-note")
            with gr.Row():
                p_roc = gr.Plot(elem_id="rep-chart-roc", show_label=False)
                p_pr = gr.Plot(elem_id="rep-chart-pr", show_label=False)
        with gr.Column(visible=False, elem_id="rep-view-latency-cost") as v_latency_cost:
            with gr.Row():
                p_lat = gr.Plot(elem_id="rep-chart-latency", show_label=False)
                p_cost = gr.Plot(elem_id="rep-chart-cost", show_label=False)
        with gr.Column(visible=False, elem_id="rep-view-versions") as v_versions:
            p_versions = gr.Plot(elem_id="rep-chart-versions", show_label=False)
    view_cols = {"accuracy": v_accuracy, "curves": v_curves, "latency_cost": v_latency_cost, "versions": v_versions}

    with gr.Accordion(t("导出"), open=True, elem_id="rep-export-box"):
        with gr.Row():
            scope = gr.Radio(choices=[(t("选中的运行"), "selected"), (t("筛选出的全部运行"), "filtered")], value="selected",
                             label=t("导出范围"), elem_id="rep-export-scope")
            export_lang = gr.Radio(choices=[(t("中文"), "zh"), (t("英文"), "en")], value="zh", label=t("导出语言"),
                                   elem_id="rep-export-lang")
            export_btn = gr.Button(t("生成导出文件"), variant="primary", interactive=bool(rows0), elem_id="rep-export")
        export_status = gr.Markdown(elem_id="rep-export-status")
        with gr.Row():
            dl_html = gr.DownloadButton(t("下载 HTML 报告"), value=None, interactive=False, elem_id="rep-dl-html")
            dl_md = gr.DownloadButton(t("下载 Markdown 摘要"), value=None, interactive=False, elem_id="rep-dl-md")
        tables = gr.File(label=t("CSV / Parquet 表格"), file_count="multiple", interactive=False, elem_id="rep-dl-tables")

    with gr.Accordion(t("价格目录"), open=False, elem_id="rep-prices-box"):
        gr.Markdown(t(PRICE_HELP_ZH))
        prices = gr.Dataframe(value=price_rows(state), headers=PRICE_COLUMNS, datatype=PRICE_TYPES, interactive=True,
                              wrap=True, max_height=360, elem_id="rep-prices")
        price_btn = gr.Button(t("保存价格"), elem_id="rep-prices-save")
        price_status = gr.Markdown(elem_id="rep-prices-status")

    filters = [f_engine, f_model, f_prompt, f_label, f_status, f_search, f_hidden]

    # -- handlers -----------------------------------------------------------------------------------
    def fail(e: BaseException | str, what: str, lang: str) -> str:
        if isinstance(e, BaseException) and not is_user_error(e):
            log.exception("%s failed", what)
        return msg.error_md(e, lang)

    def run_detail(run_id: str | None, lang: str) -> tuple[dict[str, Any] | None, str]:
        """The run's metrics (with coverage), or None and the error sentence."""
        if not run_id:
            return None, ""
        try:
            m = M.run_metrics(state.store, run_id)
            return (with_coverage(state, [m], include_hidden=True) or [m])[0], ""
        except Exception as e:
            return None, fail(e, "run metrics", lang)

    def chart_outputs(m: dict[str, Any] | None, rows: list[dict[str, Any]], lang: str, costs: dict[str, dict] | None,
                      shown: dict[str, str], view: str) -> list[Any]:
        """The chart updates (CHART_KEYS) and the ROC note, for the open sub-tab ``view`` (changes ``shown``)."""
        figs = charts(state, rows, m, lang, costs, want=charts_wanted(shown, view))
        has_roc = bool(m) and m.get("auroc") is not None
        roc_note = "" if has_roc or not m else msg.m("rep_no_roc", lang, n=m.get("auroc_n", 0))
        return [*chart_updates(figs, shown, view), roc_note]

    def detail(run_id: str | None, rows: list[dict[str, Any]], lang: str, costs: dict[str, dict] | None,
               shown: dict[str, str], view: str):
        """metrics, decision, the charts (as updates), roc note, status, shown (``costs``: runs_costs of ``rows``, if
        known; ``shown``: the session's record of the page, changed here and returned last)."""
        m, text = run_detail(run_id, lang)
        plots = chart_outputs(m, rows, lang, costs, shown, view)
        if m is None:
            return ("", "", *plots, text, shown)
        return (metrics_md(state, m, lang, (costs or {}).get(m["run_id"])), decision_md(m, lang), *plots, text, shown)

    def empty_line(rows: list[dict[str, Any]], lang: str, page: int = 0) -> str:
        everything = M.runs_listing(state.store, include_hidden=True, selection=False)
        hidden = sum(1 for r in everything if r.get("hidden"))
        if not everything:
            return msg.m("rep_no_runs", lang)
        if not rows:
            return msg.m("rep_no_match", lang, n=len(everything))
        pages = math.ceil(len(rows) / PAGE_ROWS)
        paged = msg.m("rep_page", lang, a=page * PAGE_ROWS + 1, b=min(len(rows), (page + 1) * PAGE_ROWS), p=page + 1,
                      pages=pages) if pages > 1 else ""
        return msg.m("rep_count", lang, n=len(rows), hidden=msg.m("rep_hidden_note", lang, h=hidden) if hidden else "",
                     page=paged)

    def table_outputs(rows: list[dict[str, Any]], lang: str, costs: dict[str, dict] | None, page: Any,
                      shown: dict[str, str]) -> tuple:
        """The count line, the table's page (``page`` kept within the pages there are), the page and the pager."""
        pages = max(1, math.ceil(len(rows) / PAGE_ROWS))
        page = min(max(int(page or 0), 0), pages - 1)
        table = runs_table(state, rows[page * PAGE_ROWS:(page + 1) * PAGE_ROWS], lang, costs)
        prev = (pages > 1, page > 0)
        nxt = (pages > 1, page < pages - 1)
        return (empty_line(rows, lang, page), send_if_changed(shown, "runs", table, table), page,
                send_if_changed(shown, "prev", prev, gr.update(visible=prev[0], interactive=prev[1])),
                send_if_changed(shown, "next", nxt, gr.update(visible=nxt[0], interactive=nxt[1])))

    def run_picker(rows: list[dict[str, Any]], cur: str | None, shown: dict[str, str]):
        """The run dropdown's update: its choices when they changed, its value when the page shows another."""
        choices = run_choices(rows)
        if shown.get("run_choices") != fingerprint(choices):
            shown["run_choices"], shown["run_value"] = fingerprint(choices), cur
            return gr.update(choices=choices, value=cur)
        if shown.get("run_value") != cur:
            shown["run_value"] = cur
            return gr.update(value=cur)
        return gr.skip()

    def on_filter(engine, model, prompt, label_set, stat, search, hidden, current, view=VIEW_DEFAULT, shown=None,
                  page=0, request: gr.Request = None):
        """The runs the filters leave (the table from its first page, or from ``page`` for a refresh) and the run."""
        lang = msg.lang_of(request)
        shown = dict(shown or {})
        try:
            rows = filtered(state, engine, model, prompt, label_set, stat, search, bool(hidden))
        except Exception as e:
            return (*(gr.skip(),) * (len(list_outs) - 2), fail(e, "runs", lang), gr.skip())
        ids = [r["run_id"] for r in rows]
        cur = current if current in ids else (ids[0] if ids else None)
        # one look at costs for what the click shows: the table's page, the cost chart's runs and the run
        p0 = min(max(int(page or 0), 0), max(0, math.ceil(len(ids) / PAGE_ROWS) - 1)) * PAGE_ROWS
        need = list(dict.fromkeys([*ids[p0:p0 + PAGE_ROWS], *ids[:CHART_RUNS], *([cur] if cur else [])]))
        costs = C.runs_costs(state.store, need) if need else {}
        return (*table_outputs(rows, lang, costs, page, shown), run_picker(rows, cur, shown),
                send_if_changed(shown, "export", bool(rows), gr.update(interactive=bool(rows))),
                *detail(cur, rows, lang, costs, shown, view))

    def on_refresh(engine, model, prompt, label_set, stat, search, hidden, current, view=VIEW_DEFAULT, shown=None,
                   page=0, request: gr.Request = None):
        """Fresh filter choices and table; keeps the run the person picked, else shows the newest."""
        lang = msg.lang_of(request)
        shown = dict(shown or {})
        rows_all = filtered(state, include_hidden=bool(hidden))
        fc = filter_choices(rows_all, lang)
        given = [engine, model, prompt, label_set, stat]
        keys = ["engine", "model", "prompt", "label_set", "status"]
        vals = [v if v in [c[1] for c in fc[k]] else ALL for v, k in zip(given, keys)]
        upd = []
        for k, v, was in zip(keys, vals, given):
            if shown.get("f_" + k) != fingerprint(fc[k]):
                shown["f_" + k] = fingerprint(fc[k])
                upd.append(gr.update(choices=fc[k], value=v))
            else:
                upd.append(gr.skip() if v == was else gr.update(value=v))
        return (*upd, *on_filter(*vals, search, hidden, current, view, shown, page, request))

    def on_select_row(evt: gr.SelectData, engine, model, prompt, label_set, stat, search, hidden, page=0,
                      view=VIEW_DEFAULT, shown=None, request: gr.Request = None):
        lang = msg.lang_of(request)
        shown = dict(shown or {})
        rows = filtered(state, engine, model, prompt, label_set, stat, search, bool(hidden))
        try:
            i = evt.index[0] if isinstance(evt.index, (list, tuple)) else int(evt.index)
            rid = evt.row_value[0] if getattr(evt, "row_value", None) else rows[int(page or 0) * PAGE_ROWS + i]["run_id"]
        except Exception:
            return (gr.skip(),) * (2 + len(detail_outs))
        shown["run_value"] = rid
        return (gr.update(value=rid), rid, *detail(rid, rows, lang, None, shown, view))

    def on_run(run_id, engine, model, prompt, label_set, stat, search, hidden, view=VIEW_DEFAULT, shown=None,
               request: gr.Request = None):
        lang = msg.lang_of(request)
        shown = {**(shown or {}), "run_value": run_id}  # the person picked it: the dropdown shows it
        rows = filtered(state, engine, model, prompt, label_set, stat, search, bool(hidden))
        return (run_id, *detail(run_id, rows, lang, None, shown, view))

    def page_handler(step: int):
        def on_page(engine, model, prompt, label_set, stat, search, hidden, page, shown=None,
                    request: gr.Request = None):
            """The table's previous or next page of the filtered runs."""
            lang = msg.lang_of(request)
            shown = dict(shown or {})
            rows = filtered(state, engine, model, prompt, label_set, stat, search, bool(hidden))
            return (*table_outputs(rows, lang, None, int(page or 0) + step, shown), shown)

        on_page.__name__ = on_page.__qualname__ = "on_page_" + ("next" if step > 0 else "prev")
        return on_page

    def on_view(view, run_id, engine, model, prompt, label_set, stat, search, hidden, shown=None,
                request: gr.Request = None):
        """A charts sub-tab picked: shown with its charts from the filters and run shown now (those it does not
        show already); the other groups hidden."""
        lang = msg.lang_of(request)
        view = view if view in VIEWS else VIEW_DEFAULT
        shown = dict(shown or {})
        groups = [gr.update(visible=v == view) for v in VIEWS]
        try:
            rows = filtered(state, engine, model, prompt, label_set, stat, search, bool(hidden))
        except Exception as e:
            return (view, *groups, *(gr.skip(),) * (len(plots) + 1), fail(e, "runs", lang), gr.skip())
        m, text = run_detail(run_id, lang)
        return (view, *groups, *chart_outputs(m, rows, lang, None, shown, view), text or gr.skip(), shown)

    def on_export(sc, lang_out, run_id, engine, model, prompt, label_set, stat, search, hidden,
                  request: gr.Request = None):
        lang = msg.lang_of(request)
        try:
            if sc == "selected":
                if not run_id:
                    return msg.status(msg.m("rep_pick_run", lang), ok=False), gr.skip(), gr.skip(), gr.skip()
                ids = [run_id]
            else:
                ids = [r["run_id"] for r in filtered(state, engine, model, prompt, label_set, stat, search, bool(hidden))]
                if not ids:
                    return msg.status(msg.m("rep_nothing", lang), ok=False), gr.skip(), gr.skip(), gr.skip()
            files = export_files(state, ids, lang_out if lang_out in X.LANGS else lang)
        except Exception as e:
            return fail(e, "export", lang), gr.skip(), gr.skip(), gr.skip()
        text = msg.md("rep_exported", lang, n=len(ids), language=msg.m(f"rep_lang_{lang_out}", lang))
        return (msg.status(text), gr.update(value=files["html"], interactive=True),
                gr.update(value=files["markdown"], interactive=True), files["tables"])

    def on_prices(table, request: gr.Request = None):
        lang = msg.lang_of(request)
        try:
            changed = save_prices(state, table)
        except Exception as e:
            return fail(e, "prices", lang), gr.skip()
        if changed:
            rows = [c.replace("（新增）", msg.m("rep_added", lang)) for c in changed]
            text = msg.md("rep_prices_saved", lang, n=len(changed), rows=", ".join(rows))
        else:
            text = msg.m("rep_prices_same", lang)
        return msg.status(text), price_rows(state)

    def on_page_load(engine, model, prompt, label_set, stat, search, hidden, current, view=VIEW_DEFAULT, shown=None,
                     page=0, request: gr.Request = None):
        lang = msg.lang_of(request)
        return (*on_refresh(engine, model, prompt, label_set, stat, search, hidden, current, view, shown, page,
                            request), gr.update(value=msg.norm(lang)))

    # -- API endpoints ------------------------------------------------------------------------------
    def run_metrics_api(run_id: str, policy: str = "counted_wrong") -> dict:
        """Metrics of one run (id or name) with 95% intervals, label set and n, under a policy for unparsed answers."""
        from webapp.state import raise_user_error

        try:
            return json.loads(X.dumps(M.run_metrics(state.store, run_id, policy)))
        except Exception as e:
            raise_user_error(e, log, "run_metrics")
            raise

    def report_json_api(run_ids: list[str] | None = None) -> dict:
        """What the report shows as data: every run with metrics, intervals, cost (or unknown) and decision."""
        from webapp.state import raise_user_error

        try:
            return json.loads(X.dumps(X.report_json(state.store, list(run_ids or []) or None)))
        except Exception as e:
            raise_user_error(e, log, "report_json")
            raise

    gr.api(run_metrics_api, api_name="run_metrics")
    gr.api(report_json_api, api_name="report_json")

    # -- wiring -------------------------------------------------------------------------------------
    # one look at what changed in the store per click, shared by every query of that click
    on_filter, on_refresh, on_select_row, on_run, on_page_load, on_view = (
        M.snapshotted(state.store, f) for f in (on_filter, on_refresh, on_select_row, on_run, on_page_load, on_view))
    on_prev, on_next = (M.snapshotted(state.store, page_handler(step)) for step in (-1, 1))
    plots = [p_versions, p_conf, p_roc, p_pr, p_lat, p_cost]  # in CHART_KEYS order
    detail_outs = [metrics_view, decision_view, *plots, roc_note, status, shown_state]
    table_outs = [runs_empty, runs_df, page_state, prev_btn, next_btn]
    list_outs = [*table_outs, run_dd, export_btn, *detail_outs]
    # The tab's own views are not public API endpoints (its API is run_metrics and report_json): Gradio's
    # browser run history records every public call's outputs in localStorage, re-reading and re-writing the
    # whole history on each call, and these outputs (the table and the charts) made that most of a click.
    # They take turns (one concurrency group): each reads and writes the session's record of what the page
    # shows, so that record always follows the page.
    view = dict(api_visibility="undocumented", concurrency_id="reports-view", concurrency_limit=1)
    # Gradio's pending overlay on one line a person watches for the answer (the count line over the table, the
    # run's metrics), not on each of the ~23 outputs an event may update: drawing and removing those overlays
    # was 60-90 ms of a refresh click (bench_reports, interleaved A/B)
    listing = dict(view, show_progress_on=[runs_empty])
    on_detail = dict(view, show_progress_on=[metrics_view])
    states = [view_state, shown_state]
    for comp in (*filters[:5], f_hidden):
        comp.input(on_filter, [*filters, run_dd, *states], list_outs, **listing)
    f_search.submit(on_filter, [*filters, run_dd, *states], list_outs, **listing)
    refresh_outs = [*filters[:5], *list_outs]
    refresh_ins = [*filters, pinned, *states, page_state]
    refresh.click(on_refresh, refresh_ins, refresh_outs, **listing)
    if tab is not None and hasattr(tab, "select"):
        tab.select(on_refresh, refresh_ins, refresh_outs, **listing)
    from gradio.context import Context

    if Context.root_block is not None:  # the page load of the Blocks being built (as prompt_lab.on_load)
        # (the js runs before the handler and hands its inputs on unchanged; a load of its own, js only, left the
        # charts of this tab unrendered when the tab opened)
        Context.root_block.load(on_page_load, refresh_ins, [*refresh_outs, export_lang], js=PLOT_ONCE_JS, **listing)
    lab_tab = (shared or {}).get("prompt_lab") or {}
    if lab_tab.get("last_run") is not None:
        lab_tab["last_run"].change(on_refresh, refresh_ins, refresh_outs, **listing)
    runs_df.select(on_select_row, [*filters, page_state, *states], [run_dd, pinned, *detail_outs], **on_detail)
    run_dd.input(on_run, [run_dd, *filters, *states], [pinned, *detail_outs], **on_detail)
    for btn, fn in ((prev_btn, on_prev), (next_btn, on_next)):
        btn.click(fn, [*filters, page_state, shown_state], [*table_outs, shown_state], **listing)
    view_pick.input(on_view, [view_pick, run_dd, *filters, shown_state],
                    [view_state, *view_cols.values(), *plots, roc_note, status, shown_state], **view)
    export_btn.click(on_export, [scope, export_lang, run_dd, *filters], [export_status, dl_html, dl_md, tables])
    price_btn.click(on_prices, [prices], [price_status, prices])
    return {"runs": runs_df, "run": run_dd}
