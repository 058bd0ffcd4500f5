"""报告 (Reports) tab: runs you can filter (datasette-style), per-run metrics with intervals, charts,
the decision rule on the measured interval, the price catalogue, exports.

Numbers come from ``reports.metrics`` (figures and intervals), ``reports.costs`` (measured-or-unknown
costs), charts from ``reports.figures`` and files from ``reports.export``; this module lays them out.
"""

from __future__ import annotations

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
from webapp.i18n import add_translations, t
from webapp.state import AppState, is_user_error, status_md, user_message

log = logging.getLogger(__name__)

add_translations({
    "引擎筛选": "Engine",
    "模型筛选": "Model",
    "提示词版本筛选": "Prompt version",
    "标签集筛选": "Label set",
    "状态筛选": "Status",
    "搜索运行": "Search runs",
    "运行列表": "Runs",
    "选中的运行": "Selected run",
    "指标": "Metrics",
    "图表": "Charts",
    "价格目录": "Price catalogue",
    "保存价格": "Save prices",
    "导出": "Export",
    "导出范围": "Export scope",
    "生成导出文件": "Build export files",
    "下载 HTML 报告": "Download HTML report",
    "下载 Markdown 摘要": "Download Markdown summary",
    "CSV / Parquet 表格": "CSV / Parquet tables",
})

ALL = ""
NONE = "∅"
CHART_RUNS = 12  # runs drawn in the cost chart
STATUS_NAMES = {"running": "进行中", "done": "完成", "cancelled": "已取消", "failed": "失败", "imported": "导入"}
BAND_ZH = {"deploy": "≥ 80%：部署", "improve": "60–80%：改进提示词或换更大的模型",
           "collect": "< 60%：收集标注数据并微调"}
RUN_COLUMNS = ["运行 run", "名称", "引擎", "模型", "提示词", "标签集", "状态", "n",
               "准确率 [95% CI]（未解析计为错误）", "准确率 [95% CI]（未解析不计入）", "平衡准确率 [95% CI]",
               "F1 [95% CI]", "未解析", "出错", "延迟 p50 / p95 (s)", "成本/视频", "创建时间"]
PRICE_COLUMNS = ["provider", "sku", "region", "gpus", "gpu_type", "usd_per_hour", "usd_per_1m_input_tokens",
                 "usd_per_1m_output_tokens", "source", "as_of", "notes"]
PRICE_TYPES = ["str", "str", "str", "number", "str", "number", "number", "number", "str", "str", "str"]


# -- formatting (display only; every figure comes from reports.metrics / reports.costs) --------------
def pct_ci(v: float | None, ci: list[float] | None) -> str:
    if v is None:
        return "无法计算 (n/a)"
    s = f"{100 * v:.0f}%"
    return s + (f" [{100 * ci[0]:.0f}–{100 * ci[1]:.0f}%]" if ci else "")


def usd(c: dict[str, Any] | None, key: str = "usd_per_video") -> str:
    """A measured cost, or 未知 (unknown) — never 0 for a cost nobody measured."""
    if not c:
        return "未知 unknown"
    if c.get(key) is not None:
        return f"${c[key]:.4f}" + ("（全部缓存，无模型调用）" if c.get("basis") == "cached" else "")
    return "未知 unknown"


def prompt_ref(r: dict[str, Any]) -> str:
    return f"{r['prompt_id']}@{r.get('prompt_version')}" if r.get("prompt_id") else "—"


def _opt(v: Any) -> str:
    return NONE if v is None or v == "" else str(v)


# -- data -------------------------------------------------------------------------------------------------
def filter_choices(overview: list[dict[str, Any]]) -> dict[str, list[tuple[str, str]]]:
    def ch(values, show=lambda v: v):
        vals = sorted({_opt(v) for v in values})
        return [("全部", ALL)] + [("（无）" if v == NONE else show(v), v) for v in vals]

    return {
        "engine": ch(r.get("engine") for r in overview),
        "model": ch(r.get("model") for r in overview),
        "prompt": ch(prompt_ref(r) if r.get("prompt_id") else None for r in overview),
        "label_set": ch(r.get("label_set") for r in overview),
        "status": ch((r.get("status") for r in overview), lambda v: f"{STATUS_NAMES.get(v, v)} {v}"),
    }


def filtered(state: AppState, engine: str = ALL, model: str = ALL, prompt: str = ALL, label_set: str = ALL,
             status: str = ALL, search: str = "") -> list[dict[str, Any]]:
    rows = M.runs_overview(state.store)
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


def runs_table(state: AppState, rows: list[dict[str, Any]]) -> list[list[Any]]:
    costs = C.runs_costs(state.store, [r["run_id"] for r in rows]) if rows else {}
    table = []
    for r in rows:
        both = r["metrics_both_ways"]
        ex = both["excluded"]
        lat = r["latency_s"]
        lat_txt = "未知" if lat.get("p50") is None else f"{lat['p50']:.2f} / {lat['p95']:.2f} (n={lat['n']})"
        table.append([
            r["run_id"], r.get("name") or "", r.get("engine") or "", r.get("model") or "", prompt_ref(r),
            r.get("label_set") or "—", r.get("status") or "", r["n"],
            pct_ci(r["accuracy"], r["accuracy_ci"]), pct_ci(ex["accuracy"], ex["accuracy_ci"]) + f" n={ex['n']}",
            pct_ci(r["balanced_accuracy"], r["balanced_accuracy_ci"]), pct_ci(r["f1"], r["f1_ci"]),
            r["unparsed"], r["errors"], lat_txt, usd(costs.get(r["run_id"])),
            str(r.get("created_at") or "")[:19],
        ])
    return table


def run_choices(rows: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(f"{r['run_id']} · {r.get('engine')} · {prompt_ref(r)} · {r.get('label_set') or '—'}", r["run_id"])
            for r in rows]


def decision_md(m: dict[str, Any]) -> str:
    d = X.decide(m.get("accuracy"), m.get("accuracy_ci"), m.get("n") or 0, m.get("label_set"))
    rule = ("**决策规则**（种子项目）：准确率 ≥ 80% → 部署；60–80% → 改进提示词或换更大的模型；"
            "< 60% → 收集标注数据并微调。这里按 **95% 区间** 判断，而不是按点估计：只有整个区间落在同一档时才下结论。")
    if d["decision"]:
        verdict = f"整个区间落在 {BAND_ZH[d['decision']]}。"
    elif d["bands"]:
        verdict = ("区间跨越 " + "、".join(BAND_ZH[b].split("：")[0] for b in d["bands"])
                   + " 几档，无法决定：需要更多标注视频。")
    else:
        verdict = "没有已评分的视频，无法决定。"
    ci = m.get("accuracy_ci")
    meas = (f"测得准确率 {pct_ci(m.get('accuracy'), ci)}（标签集 {m.get('label_set') or '—'}，n={m.get('n') or 0}，"
            f"未解析/出错计为错误）。") if m.get("n") else ""
    return f"{rule}\n\n{meas}**结论**：{verdict}\n\n<small>{d['text']}</small>"


def metrics_md(state: AppState, m: dict[str, Any]) -> str:
    both = m["metrics_both_ways"]
    cw, ex = both["counted_wrong"], both["excluded"]

    def row(name: str, k: str) -> str:
        return f"| {name} | {pct_ci(cw[k], cw[k + '_ci'])} | {pct_ci(ex[k], ex[k + '_ci'])} |"

    try:
        c = C.run_cost(state.store, m["run_id"])
    except Exception as e:  # a cost we cannot work out is unknown, with the sentence
        c = {"usd": None, "reason": user_message(e)}
    if c.get("usd") is not None:
        cost = (f"{usd(c, 'usd')} 共计，{usd(c, 'usd_per_video')}/视频（{c.get('model_calls')} 次模型调用，"
                f"{c.get('cached')} 个缓存命中，按 {c.get('basis')} 计价）")
    else:
        cost = f"未知 (unknown)：{c.get('reason') or '没有价格'}"
    lat = m["latency_s"]
    lat_txt = "未知（没有测得的延迟）" if lat.get("p50") is None else \
        f"p50 {lat['p50']:.2f} s，p95 {lat['p95']:.2f} s，平均 {lat['mean']:.2f} s（n={lat['n']}）"
    auroc = (f"{m['auroc']:.3f} [{m['auroc_ci'][0]:.3f}–{m['auroc_ci'][1]:.3f}]（n={m['auroc_n']}）"
             if m.get("auroc") is not None and m.get("auroc_ci") else
             f"无法计算（带置信度的已解析回答 n={m.get('auroc_n', 0)}，或只有一类标签）")
    on = m.get("onset") or {}
    onset = (f"中位误差 {on['median_abs_s']:.2f} s，1 s 以内 {pct_ci(on['within_1s'], on['within_1s_ci'])}（n={on['n']}）"
             if on.get("n") else "无（没有同时给出标注和预测出现时间的鬼探头视频）")
    size = m.get("label_set_size")
    missing = f"，{m['missing']} 个尚未预测" if m.get("missing") else ""
    lines = [
        f"### 运行 `{m['run_id']}`" + (f" · {m['name']}" if m.get("name") else ""),
        f"引擎 **{m.get('engine')}**" + (f" · 模型 `{m['model']}`" if m.get("model") else "")
        + f" · 提示词 **{prompt_ref(m)}** · 标签集 **{m.get('label_set') or '—'}**"
        + (f"（{size} 个视频{missing}）" if size is not None else "")
        + f" · 状态 {m.get('status')} · 位置 {m.get('location') or '—'}",
        "",
        f"| 指标（95% 区间） | 未解析/出错计为错误 (n={cw['n']}) | 未解析/出错不计入 (n={ex['n']}) |",
        "|---|---|---|",
        row("准确率 accuracy", "accuracy"), row("平衡准确率 balanced accuracy", "balanced_accuracy"),
        row("F1", "f1"), row("精确率 precision", "precision"), row("召回率 recall", "recall"),
        row("特异度 specificity", "specificity"),
        f"| TP / FP / TN / FN | {cw['tp']} / {cw['fp']} / {cw['tn']} / {cw['fn']} | "
        f"{ex['tp']} / {ex['fp']} / {ex['tn']} / {ex['fn']} |",
        "",
        f"- 未解析 **{m['unparsed']}**，出错 **{m['errors']}**，无标签 {m['unlabelled']}（未解析的回答从不计为“否”）",
        f"- AUROC：{auroc}",
        f"- 出现时间：{onset}",
        f"- 延迟：{lat_txt}",
        f"- 成本：{cost}",
        f"- 区间方法：比例用 {m['ci_method']['proportions']}；平衡准确率用 {m['ci_method']['balanced_accuracy']}；"
        f"F1 用 {m['ci_method']['f1']}",
    ]
    if m.get("note"):
        lines.append(f"- ⚠️ {m['note']}")
    return "\n".join(lines)


def charts(state: AppState, rows: list[dict[str, Any]], m: dict[str, Any] | None) -> dict[str, Any]:
    """Figures from reports.figures; None where there is nothing measured to draw."""
    out: dict[str, Any] = {"versions": None, "confusion": None, "confusion_ex": None, "roc": None, "pr": None,
                           "latency": None, "cost": None}
    ls = m.get("label_set") if m else None
    cells = M.by_prompt_version(state.store, label_set=ls, overview=rows) if rows else []
    if cells:
        out["versions"] = F.metric_bars(cells, label_key="cell", title=(
            f"按提示词版本：准确率、F1、平衡准确率（95% 区间；标签集 {ls or '全部'}；每格取最新完成的运行）"))
    if m:
        out["confusion"] = F.confusion_heatmap(m, title=f"{F.run_label(m)} · 未解析计为错误")
        ex = {**m, **m["metrics_both_ways"]["excluded"], "policy": "excluded"}
        out["confusion_ex"] = F.confusion_heatmap(ex, title=f"{F.run_label(m)} · 未解析不计入")
        if m.get("auroc") is not None:
            y, s = M.scored_answers(state.store, m["run_id"])
            curve = {"name": F.run_label(m), "y": y, "s": s, "auroc": m["auroc"], "auroc_ci": m["auroc_ci"],
                     "n": m["auroc_n"]}
            out["roc"], out["pr"] = F.roc_figure([curve]), F.pr_figure([curve])
    ids = [r["run_id"] for r in rows]
    lat = M.latency_by_engine(state.store, ids) if ids else []
    if lat:
        out["latency"] = F.latency_box(lat)
    if ids:
        shown = rows[:CHART_RUNS]
        costs = C.runs_costs(state.store, [r["run_id"] for r in shown])
        cost_rows = [{**costs[r["run_id"]], "label": F.run_label(r)} for r in shown if r["run_id"] in costs]
        if cost_rows:
            out["cost"] = F.cost_per_video(cost_rows)
    return out


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


def export_files(state: AppState, run_ids: list[str] | None) -> dict[str, Any]:
    """HTML report + Markdown summary + CSV/Parquet of runs and predictions under <cache>/exports/<stamp>/."""
    stamp = f"{datetime.now():%Y%m%d-%H%M%S}-{secrets.token_hex(2)}"
    out = Path(state.config.cache_dir) / "exports" / stamp
    out.mkdir(parents=True, exist_ok=True)
    tag = run_ids[0] if run_ids and len(run_ids) == 1 else f"{len(run_ids)}runs" if run_ids else "all"
    rep = X.write_report(state.store, out / f"ghostprobe-report-{tag}.html", run_ids or None)
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
        f_search = gr.Textbox(label=t("搜索运行"), placeholder="run id / 名称 / 模型", elem_id="rep-f-search")
        refresh = gr.Button(t("刷新"), scale=0, elem_id="rep-refresh")
    runs_df = gr.Dataframe(value=runs_table(state, rows0), headers=RUN_COLUMNS, label=t("运行列表"), interactive=False,
                           show_search="filter", wrap=True, max_height=420, elem_id="rep-runs")
    gr.Markdown("<small>点击一行查看该运行；所有比例都带 95% 区间和 n；成本没有测得或没有价格时显示“未知”，不是 0。</small>")
    run_dd = gr.Dropdown(choices=run_choices(rows0), value=rows0[0]["run_id"] if rows0 else None,
                         label=t("选中的运行"), elem_id="rep-run")
    pinned = gr.State("")  # a run the person picked; otherwise refreshing shows the newest run
    status = gr.Markdown(elem_id="rep-status")
    with gr.Row():
        with gr.Column(scale=3):
            metrics_view = gr.Markdown(elem_id="rep-metrics")
        with gr.Column(scale=2):
            decision_view = gr.Markdown(elem_id="rep-decision")
    gr.Markdown(f"### {'图表'}")
    with gr.Row():
        p_versions = gr.Plot(elem_id="rep-chart-versions", show_label=False)
    with gr.Row():
        p_conf = gr.Plot(elem_id="rep-chart-confusion", show_label=False)
        p_conf_ex = gr.Plot(elem_id="rep-chart-confusion-excluded", show_label=False)
    roc_note = gr.Markdown(elem_id="rep-roc-note")
    with gr.Row():
        p_roc = gr.Plot(elem_id="rep-chart-roc", show_label=False)
        p_pr = gr.Plot(elem_id="rep-chart-pr", show_label=False)
    with gr.Row():
        p_lat = gr.Plot(elem_id="rep-chart-latency", show_label=False)
        p_cost = gr.Plot(elem_id="rep-chart-cost", show_label=False)

    with gr.Accordion(t("导出"), open=True, elem_id="rep-export-box"):
        with gr.Row():
            scope = gr.Radio(choices=[("选中的运行", "selected"), ("筛选出的全部运行", "filtered")], value="selected",
                             label=t("导出范围"), elem_id="rep-export-scope")
            export_btn = gr.Button(t("生成导出文件"), variant="primary", elem_id="rep-export")
        export_status = gr.Markdown(elem_id="rep-export-status")
        with gr.Row():
            dl_html = gr.DownloadButton(t("下载 HTML 报告"), value=None, interactive=False, elem_id="rep-dl-html")
            dl_md = gr.DownloadButton(t("下载 Markdown 摘要"), value=None, interactive=False, elem_id="rep-dl-md")
        tables = gr.File(label=t("CSV / Parquet 表格"), file_count="multiple", interactive=False, elem_id="rep-dl-tables")

    with gr.Accordion(t("价格目录"), open=False, elem_id="rep-prices-box"):
        gr.Markdown("运行的 `location`（如 `local-cpu`、`azure:Standard_NC24s_v3:eastus`、`openai:gpt-4o`）对应这里的一行。"
                    "按小时计价：测得的模型时间 × 单价；按 token 计价：测得的 token 数 × 单价。没有价格或没有测得的时间/token 时，"
                    "成本显示为“未知”。改过的行标记为人工修改，不会被内置目录覆盖。")
        prices = gr.Dataframe(value=price_rows(state), headers=PRICE_COLUMNS, datatype=PRICE_TYPES, interactive=True,
                              wrap=True, max_height=360, elem_id="rep-prices")
        price_btn = gr.Button(t("保存价格"), elem_id="rep-prices-save")
        price_status = gr.Markdown(elem_id="rep-prices-status")

    filters = [f_engine, f_model, f_prompt, f_label, f_status, f_search]

    # -- handlers -----------------------------------------------------------------------------------
    def fail(e: BaseException, what: str) -> str:
        if not is_user_error(e):
            log.exception("%s failed", what)
        return status_md(user_message(e), ok=False)

    def detail(run_id: str | None, rows: list[dict[str, Any]]):
        """metrics, decision, 7 plots (as updates), roc note, status."""
        m = None
        msg = ""
        if run_id:
            try:
                m = M.run_metrics(state.store, run_id)
            except Exception as e:
                msg = fail(e, "run metrics")
        figs = charts(state, rows, m)
        has_roc = figs["roc"] is not None
        roc_note = "" if has_roc or not m else (
            f"该运行没有可画 ROC/PR 的回答（带置信度的已解析回答 n={m.get('auroc_n', 0)}，或只有一类标签），所以不画。")
        plots = [gr.update(value=figs[k], visible=figs[k] is not None)
                 for k in ("versions", "confusion", "confusion_ex", "roc", "pr", "latency", "cost")]
        if m is None:
            return ("还没有运行：在“提示词实验室”里运行一个提示词版本，或用 `ghostprobe eval`。" if not run_id else "",
                    "", *plots, roc_note, msg)
        return metrics_md(state, m), decision_md(m), *plots, roc_note, msg

    def on_filter(engine, model, prompt, label_set, stat, search, current):
        try:
            rows = filtered(state, engine, model, prompt, label_set, stat, search)
        except Exception as e:
            return (gr.skip(), gr.skip(), *(gr.skip(),) * 10, fail(e, "runs"))
        ids = [r["run_id"] for r in rows]
        cur = current if current in ids else (ids[0] if ids else None)
        return (runs_table(state, rows), gr.update(choices=run_choices(rows), value=cur), *detail(cur, rows))

    def on_refresh(engine, model, prompt, label_set, stat, search, current):
        """Fresh filter choices and table; keeps the run the person picked, else shows the newest."""
        rows_all = filtered(state)
        fc = filter_choices(rows_all)
        vals = [engine, model, prompt, label_set, stat]
        keys = ["engine", "model", "prompt", "label_set", "status"]
        vals = [v if v in [c[1] for c in fc[k]] else ALL for v, k in zip(vals, keys)]
        upd = [gr.update(choices=fc[k], value=v) for k, v in zip(keys, vals)]
        return (*upd, *on_filter(*vals, search, current))

    def on_select_row(evt: gr.SelectData, engine, model, prompt, label_set, stat, search):
        rows = filtered(state, engine, model, prompt, label_set, stat, search)
        try:
            i = evt.index[0] if isinstance(evt.index, (list, tuple)) else int(evt.index)
            rid = evt.row_value[0] if getattr(evt, "row_value", None) else rows[i]["run_id"]
        except Exception:
            return (gr.skip(),) * 13
        return (gr.update(value=rid), rid, *detail(rid, rows))

    def on_run(run_id, engine, model, prompt, label_set, stat, search):
        return (run_id, *detail(run_id, filtered(state, engine, model, prompt, label_set, stat, search)))

    def on_export(sc, run_id, engine, model, prompt, label_set, stat, search):
        try:
            if sc == "selected":
                if not run_id:
                    raise RunError("Select a run to export, or export the filtered runs.")
                ids = [run_id]
            else:
                ids = [r["run_id"] for r in filtered(state, engine, model, prompt, label_set, stat, search)]
                if not ids:
                    raise RunError("No run matches the filters, so there is nothing to export.")
            files = export_files(state, ids)
        except Exception as e:
            return fail(e, "export"), gr.skip(), gr.skip(), gr.skip()
        msg = (f"已生成导出文件（{len(ids)} 次运行）到 `{files['dir']}`：HTML 报告可离线打开，"
               "另有 Markdown 摘要和 runs / predictions 的 CSV、Parquet。")
        return (status_md(msg), gr.update(value=files["html"], interactive=True),
                gr.update(value=files["markdown"], interactive=True), files["tables"])

    def on_prices(table):
        try:
            changed = save_prices(state, table)
        except Exception as e:
            return fail(e, "prices"), gr.skip()
        msg = f"已保存 {len(changed)} 行价格：{'，'.join(changed)}。" if changed else "价格没有改动。"
        return status_md(msg), price_rows(state)

    # -- API endpoints ------------------------------------------------------------------------------
    def run_metrics_api(run_id: str, policy: str = "counted_wrong") -> dict:
        """Metrics of one run (id or name) with 95% intervals, label set and n, under a policy for unparsed answers."""
        return json.loads(X.dumps(M.run_metrics(state.store, run_id, policy)))

    def report_json_api(run_ids: list[str] | None = None) -> dict:
        """What the report shows as data: every run with metrics, intervals, cost (or unknown) and decision."""
        return json.loads(X.dumps(X.report_json(state.store, list(run_ids or []) or None)))

    gr.api(run_metrics_api, api_name="run_metrics")
    gr.api(report_json_api, api_name="report_json")

    # -- wiring -------------------------------------------------------------------------------------
    detail_outs = [metrics_view, decision_view, p_versions, p_conf, p_conf_ex, p_roc, p_pr, p_lat, p_cost, roc_note,
                   status]
    list_outs = [runs_df, run_dd, *detail_outs]
    for comp in filters[:5]:
        comp.input(on_filter, [*filters, run_dd], list_outs)
    f_search.submit(on_filter, [*filters, run_dd], list_outs)
    refresh_outs = [*filters[:5], *list_outs]
    refresh.click(on_refresh, [*filters, pinned], refresh_outs)
    if tab is not None and hasattr(tab, "select"):
        tab.select(on_refresh, [*filters, pinned], refresh_outs)
    from webapp.tabs.prompt_lab import on_load

    on_load(on_refresh, [*filters, pinned], refresh_outs)
    lab_tab = (shared or {}).get("prompt_lab") or {}
    if lab_tab.get("last_run") is not None:
        lab_tab["last_run"].change(on_refresh, [*filters, pinned], refresh_outs)
    runs_df.select(on_select_row, filters, [run_dd, pinned, *detail_outs])
    run_dd.input(on_run, [run_dd, *filters], [pinned, *detail_outs])
    export_btn.click(on_export, [scope, run_dd, *filters], [export_status, dl_html, dl_md, tables])
    price_btn.click(on_prices, [prices], [price_status, prices])
    return {"runs": runs_df, "run": run_dd}
