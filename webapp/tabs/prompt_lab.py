"""提示词实验室 (Prompt Lab) tab: versions, diff, edit → new version, run on a label set, matrix, drill-down.

The promptfoo / FiftyOne interaction model: a matrix of videos × runs coloured right / wrong /
unparsed / error, a click on a cell opens the video, the raw answer, the parsed verdict and the
label; reviewer marks and label corrections are stored (corrections as a *new* label set, the
original untouched); two runs compare side by side with McNemar's exact test.

Everything shown comes from ``prompts`` (versions, diffs), ``webapp.evaluation.run_eval`` (runs),
``reports.runs`` (predictions, reviews), ``reports.metrics`` (figures with intervals, comparisons)
and ``reports.labels`` (corrections). This module only lays them out.
"""

from __future__ import annotations

import html
import logging
import os
import threading
from pathlib import Path
from typing import Any

import gradio as gr

from reports import labels as lab
from reports import metrics as M
from reports import runs as R
from webapp.i18n import add_translations, t
from webapp.state import AppState, is_user_error, status_md, user_message

log = logging.getLogger(__name__)

add_translations({
    "提示词版本": "Prompt version",
    "查看与编辑": "View and edit",
    "YAML（只读）": "YAML (read-only)",
    "与父版本的差异": "Diff against its parent",
    "系统提示词 (system)": "System message",
    "用户提示词 (user)": "User message",
    "少样本示例 (few-shot)": "Few-shot examples",
    "版本说明 (notes)": "Notes",
    "另存为新版本": "Save as a new version",
    "运行": "Run",
    "引擎": "Engine",
    "视频子集（留空 = 整个标签集）": "Video subset (empty = the whole label set)",
    "开始运行": "Run",
    "取消": "Cancel",
    "结果矩阵": "Result matrix",
    "显示的运行": "Runs shown",
    "单元格详情": "Cell details",
    "运行 (run)": "Run",
    "查看": "Show",
    "原始回答": "Raw answer",
    "评审标记": "Review mark",
    "评审意见": "Comment",
    "保存评审": "Save review",
    "修正标签（另存为新标签集）": "Correct the label (saved as a new label set)",
    "正确的标签": "Correct label",
    "出现时间 (s)": "Onset (s)",
    "备注": "Note",
    "保存标签修正": "Save label correction",
    "比较两次运行": "Compare two runs",
    "运行 A": "Run A",
    "运行 B": "Run B",
    "未解析/出错的处理": "Unparsed / errored answers",
    "比较": "Compare",
    "计为错误": "Counted wrong",
    "不计入": "Left out",
    "同意": "Agree",
    "不同意": "Disagree",
    "不确定": "Unsure",
    "标签有误": "Label wrong",
})

MARKS = [("同意 agree", "agree"), ("不同意 disagree", "disagree"), ("不确定 unsure", "unsure"),
         ("标签有误 label-wrong", "label-wrong")]
POLICY_CHOICES = [("计为错误 (counted wrong)", "counted_wrong"), ("不计入 (left out)", "excluded")]
FIX_CHOICES = [("鬼探头", "ghost_probing"), ("非鬼探头", "none"), ("加塞（非鬼探头）", "cut_in")]
MATRIX_DEFAULT_RUNS = 4

CELL_STYLE = {  # class → (background, text colour, legend)
    "right": ("#c8e6c9", "#1b5e20", "✓ 正确 right"),
    "wrong": ("#ffcdd2", "#b71c1c", "✗ 错误 wrong"),
    "unparsed": ("#ffe0b2", "#e65100", "? 未解析 unparsed（不计为“否”）"),
    "error": ("#cfd8dc", "#263238", "! 出错 error"),
    "unlabelled": ("#eeeeee", "#424242", "无标签 unlabelled"),
    "missing": ("#ffffff", "#9e9e9e", "— 尚无预测 not predicted"),
}

MATRIX_JS = """
element.addEventListener('click', (e) => {
  const td = e.target.closest('td[data-run]');
  if (td) trigger('click', {video: td.dataset.video, run: td.dataset.run});
});
"""

MATRIX_CSS = """
table.lab-matrix { border-collapse: collapse; font-size: 13px; }
table.lab-matrix th, table.lab-matrix td { border: 1px solid #ddd; padding: 4px 8px; text-align: center; }
table.lab-matrix td.vid, table.lab-matrix td.lbl { text-align: left; white-space: nowrap; }
table.lab-matrix td[data-run] { cursor: pointer; }
table.lab-matrix td[data-run]:hover { outline: 2px solid #1f77b4; }
table.lab-matrix tfoot td { font-size: 12px; background: #fafafa; }
.lab-legend span { display: inline-block; padding: 2px 8px; margin: 2px 4px 6px 0; border-radius: 4px; font-size: 12px; }
"""


# -- prompts ------------------------------------------------------------------------------------------
def prompt_save_dir(state: AppState) -> Path:
    """Where new versions go: $GHOSTPROBE_PROMPTS (first folder), else <data dir>/prompts."""
    env = os.environ.get("GHOSTPROBE_PROMPTS")
    if env:
        return Path(env.split(os.pathsep)[0]).expanduser()
    return state.config.data_dir / "prompts"


def load_library(state: AppState):
    from prompts import PromptLibrary, default_dirs

    dirs = list(default_dirs())
    user = prompt_save_dir(state)
    if user.is_dir() and all(Path(d).resolve() != user.resolve() for d in dirs):
        dirs.append(user)
    return PromptLibrary.load(dirs, strict=False)


def prompt_choices(plib) -> list[tuple[str, str]]:
    return [(f"{p.ref} · {p.title}", p.ref) for p in plib.all() if p.kind == "detect"]


def default_prompt(plib) -> str | None:
    try:
        return plib.detect_default().ref
    except Exception:
        refs = [v for _, v in prompt_choices(plib)]
        return refs[-1] if refs else None


def diff_html(text: str, note: str = "") -> str:
    """A unified diff as coloured lines (+ green, - red)."""
    if not text:
        return f'<div id="lab-diff-body" class="lab-diff-empty">{html.escape(note or "（无差异）")}</div>'
    out = []
    for line in text.splitlines():
        style = ""
        if line.startswith("+") and not line.startswith("+++"):
            style = "background:#e6ffed;color:#22863a"
        elif line.startswith("-") and not line.startswith("---"):
            style = "background:#ffeef0;color:#b31d28"
        elif line.startswith("@@"):
            style = "color:#6f42c1"
        out.append(f'<div style="{style}">{html.escape(line) or "&nbsp;"}</div>')
    return ('<div id="lab-diff-body" style="font-family:monospace;font-size:12px;white-space:pre-wrap;'
            'border:1px solid #ddd;border-radius:6px;padding:6px;max-height:420px;overflow:auto">'
            + "".join(out) + "</div>")


def prompt_view(plib, ref: str) -> tuple[str, str, str, str, str, str]:
    """(yaml, diff html, system, user, few_shot, notes) of a version."""
    from prompts import diff

    p = plib.get(ref)
    if p.parent:
        try:
            parent = plib.get(p.parent)
            d = diff_html(diff(parent, p), f"与父版本 {p.parent} 相同。")
        except Exception:
            d = diff_html("", f"父版本 {p.parent} 不在提示词库中，无法比较。")
    else:
        d = diff_html("", f"{p.ref} 是初始版本，没有父版本。")
    return p.to_yaml(), d, p.system, p.user, p.few_shot or "", p.notes or ""


# -- label sets, engines, runs ------------------------------------------------------------------------
def label_set_choices(state: AppState) -> list[tuple[str, str]]:
    out = []
    for s in lab.list_sets(state.store):
        weak = " · 弱标签" if s["weak"] else ""
        out.append((f"{s['name']} ({s['videos']}){weak}", s["name"]))
    return out


def default_label_set(state: AppState) -> str | None:
    names = [s["name"] for s in lab.list_sets(state.store)]
    if "demo" in names:
        return "demo"
    return names[-1] if names else None


def video_choices(state: AppState, label_set: str | None) -> list[str]:
    if not label_set:
        return []
    try:
        return [r["video_id"] for r in lab.list_labels(state.store, label_set)]
    except lab.LabelError:
        return []


def engine_choices(default: str) -> tuple[list[tuple[str, str]], str | None]:
    from engines.registry import engine_status

    try:
        rows = engine_status()
    except Exception as e:  # never take the tab down for an engine listing
        log.warning("engine status failed: %s", e)
        rows = []
    choices = []
    for r in rows:
        tag = "可用" if r["available"] else f"不可用：{r['reason']}"
        choices.append((f"{r['name']} · {r['title']}（{tag}）", r["name"]))
    names = [r["name"] for r in rows]
    value = default if default in names else ("baseline" if "baseline" in names else (names[0] if names else None))
    return choices, value


def run_title(r: dict[str, Any]) -> str:
    prompt = f"{r.get('prompt_id')}@{r.get('prompt_version')}" if r.get("prompt_id") else "—"
    model = f" · {str(r['model']).rsplit('/', 1)[-1]}" if r.get("model") else ""
    name = f"{r['name']} · " if r.get("name") else ""
    return f"{name}{r['engine']}{model} · {prompt} · {r['run_id']}（{r['status']}）"


def run_choices(state: AppState, label_set: str | None = None) -> list[tuple[str, str]]:
    rows = R.list_runs(state.store, label_set=label_set) if label_set else R.list_runs(state.store)
    return [(run_title(r), r["run_id"]) for r in rows]


def default_runs(state: AppState, label_set: str | None) -> list[str]:
    return [v for _, v in run_choices(state, label_set)[:MATRIX_DEFAULT_RUNS]] if label_set else []


def fmt_pct_ci(v: float | None, ci: list[float] | None) -> str:
    if v is None:
        return "无法计算"
    s = f"{100 * v:.0f}%"
    return s + (f" [{100 * ci[0]:.0f}–{100 * ci[1]:.0f}%]" if ci else "")


# -- the matrix ---------------------------------------------------------------------------------------
def classify(p: dict[str, Any] | None, has_label: bool) -> str:
    if p is None:
        return "missing"
    if p["status"] == "error":
        return "error"
    if p["status"] != "ok" or p["ghost_probing"] is None:
        return "unparsed"
    if not has_label or p.get("correct") is None:
        return "unlabelled"
    return "right" if p["correct"] else "wrong"


def _cell_text(p: dict[str, Any] | None, cls: str) -> str:
    if p is None:
        return "—"
    if cls == "error":
        return "! 出错"
    if cls == "unparsed":
        return "? 未解析"
    mark = {"right": "✓ ", "wrong": "✗ "}.get(cls, "")
    answer = "鬼探头" if p["ghost_probing"] else "否"
    conf = f" {p['confidence']:.2f}" if p.get("confidence") is not None else ""
    return f"{mark}{answer}{conf}"


def matrix_html(state: AppState, label_set: str | None, run_ids: list[str] | None) -> str:
    e = html.escape
    if not label_set:
        return '<p id="lab-matrix-empty">请先选择一个标签集。</p>'
    labels = lab.list_labels(state.store, label_set)
    runs = []
    for rid in run_ids or []:
        try:
            runs.append(R.get_run(state.store, rid))
        except R.RunError:
            continue
    legend = "".join(f'<span style="background:{bg};color:{fg}">{e(txt)}</span>'
                     for bg, fg, txt in CELL_STYLE.values())
    head = ["<th>视频 video</th><th>标签 label</th>"]
    preds: list[dict[str, dict[str, Any]]] = []
    foot = ['<td class="vid" colspan="2">准确率 [95% CI]（未解析计为错误）</td>']
    for r in runs:
        head.append(f'<th title="{e(run_title(r))}">{e(r["engine"])}'
                    f'{" · " + e(str(r["model"]).rsplit("/", 1)[-1]) if r.get("model") else ""}<br>'
                    f'{e(str(r.get("prompt_id") or "—"))}@{e(str(r.get("prompt_version") or "—"))}<br>'
                    f'<small>{e(r["run_id"])}</small>'
                    f'{"<br><small>" + e(r["status"]) + "</small>" if r["status"] != "done" else ""}</th>')
        rows = R.predictions(state.store, r["run_id"])
        preds.append({lab.video_key(p["video_id"]): p for p in rows})
        try:
            m = M.run_metrics(state.store, r["run_id"])
            if r.get("label_set") == label_set:
                foot.append(f"<td>{e(fmt_pct_ci(m['accuracy'], m['accuracy_ci']))}<br>n={m['n']}，"
                            f"未解析 {m['unparsed']}，出错 {m['errors']}</td>")
            else:
                foot.append(f"<td>按标签集 {e(str(r.get('label_set')))} 评分</td>")
        except Exception as ex:  # a broken run must not hide the others
            foot.append(f"<td>{e(user_message(ex))}</td>")
    body = []
    for lrow in labels:
        key = lab.video_key(lrow["video_id"])
        cells = [f'<td class="vid">{e(lrow["video_id"])}</td>', f'<td class="lbl">{e(lab.label_badge(lrow))}</td>']
        for r, pr in zip(runs, preds):
            p = pr.get(key)
            same_set = r.get("label_set") == label_set
            if p is not None and not same_set:  # scored against another set: compare with this one's label
                p = dict(p)
                p["correct"] = (p["ghost_probing"] == lrow["ghost_probing"]) if p["status"] == "ok" else False
            cls = classify(p, True)
            bg, fg, _ = CELL_STYLE[cls]
            tip = f"{lrow['video_id']} · {r['run_id']} · {CELL_STYLE[cls][2]}"
            if p is not None and p.get("reason"):
                tip += " · " + str(p["reason"])[:200]
            cells.append(f'<td class="cell cell-{cls}" data-status="{cls}" data-video="{e(lrow["video_id"])}" '
                         f'data-run="{e(r["run_id"])}" title="{e(tip)}" style="background:{bg};color:{fg}">'
                         f"{e(_cell_text(p, cls))}</td>")
        body.append(f'<tr data-video="{e(lrow["video_id"])}">{"".join(cells)}</tr>')
    if not runs:
        note = "<p>该标签集还没有选中的运行：在上方运行一个提示词版本，或在“显示的运行”中选择。</p>"
    else:
        note = "<p><small>点击单元格查看视频、原始回答、解析结果和标签。</small></p>"
    return (f'<style>{MATRIX_CSS}</style><div class="lab-legend">{legend}</div>'
            f'<p><small>标签集 <b>{e(label_set)}</b>：{len(labels)} 个视频 × {len(runs)} 次运行</small></p>'
            f'<table class="lab-matrix"><thead><tr>{"".join(head)}</tr></thead><tbody>{"".join(body)}</tbody>'
            f'<tfoot><tr>{"".join(foot)}</tr></tfoot></table>{note}')


# -- drill-down ---------------------------------------------------------------------------------------
def find_prediction(state: AppState, run_id: str, video_id: str) -> dict[str, Any] | None:
    key = lab.video_key(video_id)
    for p in R.predictions(state.store, run_id):
        if lab.video_key(p["video_id"]) == key:
            return p
    return None


def library_id(state: AppState, video_id: str) -> str | None:
    ids = [r["video_id"] for r in state.store.query("SELECT video_id FROM videos ORDER BY video_id")]
    if video_id in ids:
        return video_id
    key = lab.video_key(video_id)
    return next((v for v in ids if lab.video_key(v) == key), None)


def verdict_md(p: dict[str, Any] | None, run: dict[str, Any]) -> str:
    if p is None:
        return f"运行 `{run['run_id']}` 还没有这个视频的预测。"
    gp = {True: "是（鬼探头）", False: "否"}.get(p["ghost_probing"], "未知 — 回答无法解析，不计为“否”"
                                                   if p["status"] == "unparsed" else "未知 — 出错")
    def v(x: Any, unit: str = "") -> str:
        return "—（未给出）" if x is None or x == "" else f"{x}{unit}"
    lat = "未知" if p.get("latency_s") is None else f"{p['latency_s']:.2f} s"
    reason = str(p.get("reason") or "—").replace("|", "\\|").replace("\n", " ")
    return "\n".join([
        f"**解析结果**（运行 `{run['run_id']}` · {run['engine']} · "
        f"{run.get('prompt_id') or '—'}@{run.get('prompt_version') or '—'}）",
        "", "| 字段 | 值 |", "|---|---|",
        f"| 状态 status | `{p['status']}` |",
        f"| 鬼探头 ghost_probing | {gp} |",
        f"| 置信度 confidence | {v(p.get('confidence'))} |",
        f"| 危险等级 danger_level | {v(p.get('danger_level'))} |",
        f"| 对象 object_type | {v(p.get('object_type'))} |",
        f"| 出现时间 onset | {v(p.get('onset_s'), ' s')} |",
        f"| 理由 reason | {reason} |",
        f"| 延迟 latency | {lat}{'（缓存命中，无模型调用）' if p.get('cached') else ''} |",
    ])


def label_md(state: AppState, label_set: str | None, video_id: str) -> str:
    if not label_set:
        return "该运行没有标签集，无法评分。"
    key = lab.video_key(video_id)
    try:
        rows = [r for r in lab.list_labels(state.store, label_set) if lab.video_key(r["video_id"]) == key]
    except lab.LabelError as ex:
        return user_message(ex)
    if not rows:
        return f"**标签**（{label_set}）：未标注。"
    r = rows[0]
    onset = f"，出现于 {r['onset_s']:g} s" if r.get("onset_s") is not None else ""
    note = f"；备注：{r['note']}" if r.get("note") else ""
    return f"**标签**（标签集 `{label_set}`，来源 {r.get('source') or '—'}）：{lab.label_badge(r)}{onset}{note}"


def reviews_md(state: AppState, run_id: str, video_id: str) -> str:
    rows = R.reviews(state.store, run_id, video_id)
    if not rows:
        return "尚无评审标记。"
    lines = ["| 时间 | 标记 | 评审人 | 意见 |", "|---|---|---|---|"]
    for r in rows:
        c = str(r.get("comment") or "").replace("|", "\\|").replace("\n", " ")
        lines.append(f"| {str(r['created_at'])[:19]} | {r['mark']} | {r.get('reviewer') or '—'} | {c} |")
    return "\n".join(lines)


def compare_md(cmp: dict[str, Any]) -> str:
    a, b, sh = cmp["a"], cmp["b"], cmp["shared"]
    pol = "未解析/出错计为错误" if cmp["policy"] == "counted_wrong" else "未解析/出错不计入"

    def row(name: str, key: str) -> str:
        return f"| {name} | {fmt_pct_ci(a.get(key), a.get(key + '_ci'))} | {fmt_pct_ci(b.get(key), b.get(key + '_ci'))} |"

    p = cmp.get("mcnemar_p")
    flips = cmp["flipped"]
    lines = [
        f"**比较**（标签集 `{cmp['label_set']}`，{pol}；区间为 95%）"
        + ("  ⚠️ 两次运行的标签集不同。" if cmp.get("label_sets_differ") else ""),
        "", "| | A | B |", "|---|---|---|",
        f"| 运行 | `{a['run_id']}` | `{b['run_id']}` |",
        f"| 引擎 · 提示词 | {a.get('engine')} · {a.get('prompt_id')}@{a.get('prompt_version')} | "
        f"{b.get('engine')} · {b.get('prompt_id')}@{b.get('prompt_version')} |",
        f"| 标签集 · n | {a.get('label_set')} · n={a['n']} | {b.get('label_set')} · n={b['n']} |",
        row("准确率", "accuracy"), row("平衡准确率", "balanced_accuracy"), row("F1", "f1"),
        row("召回率", "recall"), row("特异度", "specificity"),
        f"| 未解析 / 出错 | {a['unparsed']} / {a['errors']} | {b['unparsed']} / {b['errors']} |",
        "",
        f"**共同视频** n={sh['n']}：A 准确率 {fmt_pct_ci(sh['a_accuracy'], sh['a_accuracy_ci'])}，"
        f"B 准确率 {fmt_pct_ci(sh['b_accuracy'], sh['b_accuracy_ci'])}；都对 {sh['both_right']}，都错 {sh['both_wrong']}，"
        f"A 对 B 错 {sh['a_right_b_wrong']}，A 错 B 对 {sh['a_wrong_b_right']}。",
        "",
        f"**McNemar 精确检验** p = {'—（没有共同视频）' if p is None else f'{p:.4g}'}"
        f"（{cmp.get('mcnemar_method')}）"
        + ("；p ≥ 0.05：这些视频上看不出两次运行有差别。" if p is not None and p >= 0.05 else
           "；p < 0.05：差别不太可能是偶然。" if p is not None else ""),
        "",
        f"**翻转的视频**：A 对→B 错（{len(flips['right_to_wrong'])}）："
        f"{', '.join(f'`{v}`' for v in flips['right_to_wrong']) or '无'}；"
        f"A 错→B 对（{len(flips['wrong_to_right'])}）：{', '.join(f'`{v}`' for v in flips['wrong_to_right']) or '无'}。",
    ]
    return "\n".join(lines)


def run_summary_md(summary: dict[str, Any], label_set: str | None) -> str:
    s = summary
    head = {"done": "运行完成", "cancelled": "运行已取消"}.get(s["status"], f"运行结束（{s['status']}）")
    extra = f"，{s['not_started']} 个未开始（可在命令行 `ghostprobe eval --resume {s['run_id']}` 继续）" \
        if s.get("not_started") else ""
    return (f"{head}：`{s['run_id']}`（标签集 {label_set or '—'}），{s['processed']} 个视频："
            f"已解析 {s['ok']}，未解析 {s['unparsed']}，出错 {s['errors']}{extra}；{s['text']}；"
            f"用时 {s['wall_s']:.1f} s。")


# -- the tab ------------------------------------------------------------------------------------------
def build(state: AppState, shared: dict[str, dict] | None = None) -> dict[str, Any]:
    plib0 = load_library(state)
    p_choices = prompt_choices(plib0)
    p_default = default_prompt(plib0)
    ls_default = default_label_set(state)
    e_choices, e_default = engine_choices(state.config.default_engine or "baseline")
    cancels: dict[str, threading.Event] = {}
    last_run = gr.State("")  # the id of the latest run made here; the Reports tab listens to it
    try:
        v0 = prompt_view(plib0, p_default) if p_default else ("", "", "", "", "", "")
    except Exception as e:  # a broken prompt file must not take the tab down
        log.warning("prompt view failed: %s", e)
        v0 = ("", "", "", "", "", "")

    with gr.Row():
        prompt_dd = gr.Dropdown(choices=p_choices, value=p_default, label=t("提示词版本"), scale=4,
                                elem_id="lab-prompt")
        refresh = gr.Button(t("刷新"), scale=0, elem_id="lab-refresh")
    with gr.Accordion(t("查看与编辑"), open=True, elem_id="lab-edit"):
        with gr.Row():
            with gr.Column(scale=1):
                yaml_view = gr.Code(language="yaml", value=v0[0], label=t("YAML（只读）"), interactive=False, elem_id="lab-yaml",
                                    max_lines=30)
                gr.Markdown(f"**{'与父版本的差异'}**")
                diff_view = gr.HTML(v0[1], elem_id="lab-diff")
            with gr.Column(scale=1):
                system = gr.Textbox(value=v0[2], label=t("系统提示词 (system)"), lines=8, max_lines=20, elem_id="lab-system")
                user = gr.Textbox(value=v0[3], label=t("用户提示词 (user)"), lines=5, max_lines=15, elem_id="lab-user")
                few_shot = gr.Textbox(value=v0[4], label=t("少样本示例 (few-shot)"), lines=3, max_lines=12, elem_id="lab-fewshot")
                notes = gr.Textbox(value=v0[5], label=t("版本说明 (notes)"), lines=2, elem_id="lab-notes",
                                   placeholder="这个版本改了什么、为什么")
                save = gr.Button(t("另存为新版本"), variant="primary", elem_id="lab-save")
                save_status = gr.Markdown(elem_id="lab-save-status")
                gr.Markdown(f"<small>新版本保存到 `{prompt_save_dir(state)}`；已有版本不会被修改。</small>")

    with gr.Accordion(t("运行"), open=True, elem_id="lab-run-box"):
        with gr.Row():
            engine = gr.Dropdown(choices=e_choices, value=e_default, label=t("引擎"), scale=2, elem_id="lab-engine")
            label_set = gr.Dropdown(choices=label_set_choices(state), value=ls_default, label=t("标签集"), scale=2,
                                    elem_id="lab-label-set")
            videos = gr.Dropdown(choices=video_choices(state, ls_default), value=[], multiselect=True,
                                 label=t("视频子集（留空 = 整个标签集）"), scale=3, elem_id="lab-videos")
        with gr.Row():
            run_btn = gr.Button(t("开始运行"), variant="primary", elem_id="lab-run")
            cancel_btn = gr.Button(t("取消"), variant="stop", elem_id="lab-cancel")
        run_status = gr.Markdown(elem_id="lab-run-status")

    gr.Markdown(f"### {'结果矩阵'}")
    runs_dd = gr.Dropdown(choices=run_choices(state, ls_default), value=default_runs(state, ls_default),
                          multiselect=True, label=t("显示的运行"), elem_id="lab-runs")
    matrix = gr.HTML(matrix_html(state, ls_default, default_runs(state, ls_default)), elem_id="lab-matrix",
                     js_on_load=MATRIX_JS)

    with gr.Accordion(t("单元格详情"), open=True, elem_id="lab-drill"):
        with gr.Row():
            d_video = gr.Dropdown(choices=video_choices(state, ls_default), label=t("视频"), scale=3,
                                  elem_id="lab-drill-video-id")
            d_run = gr.Dropdown(choices=run_choices(state, ls_default), label=t("运行 (run)"), scale=3,
                                elem_id="lab-drill-run")
            d_show = gr.Button(t("查看"), scale=0, elem_id="lab-drill-show")
        d_status = gr.Markdown(elem_id="lab-drill-status")
        with gr.Row():
            with gr.Column(scale=2):
                d_player = gr.Video(label=t("播放器"), interactive=False, elem_id="lab-drill-player", autoplay=False)
                d_label = gr.Markdown(elem_id="lab-drill-label")
            with gr.Column(scale=3):
                d_verdict = gr.Markdown(elem_id="lab-drill-verdict")
                d_raw = gr.Textbox(label=t("原始回答"), lines=6, max_lines=20, interactive=False,
                                   elem_id="lab-drill-raw")
        with gr.Row():
            with gr.Column():
                mark = gr.Radio(choices=MARKS, value="agree", label=t("评审标记"), elem_id="lab-review-mark")
                comment = gr.Textbox(label=t("评审意见"), lines=2, elem_id="lab-review-comment")
                review_btn = gr.Button(t("保存评审"), elem_id="lab-review-save")
                review_status = gr.Markdown(elem_id="lab-review-status")
                reviews_view = gr.Markdown(elem_id="lab-reviews")
            with gr.Column():
                gr.Markdown(f"**{'修正标签（另存为新标签集）'}** — 修正保存在新标签集 `<原标签集>+fix` 中，原标签集保持不变。")
                fix_kind = gr.Radio(choices=FIX_CHOICES, value="ghost_probing", label=t("正确的标签"),
                                    elem_id="lab-fix-kind")
                fix_onset = gr.Textbox(label=t("出现时间 (s)"), placeholder="留空 = 未知", elem_id="lab-fix-onset")
                fix_note = gr.Textbox(label=t("备注"), elem_id="lab-fix-note")
                fix_btn = gr.Button(t("保存标签修正"), elem_id="lab-fix-save")
                fix_status = gr.Markdown(elem_id="lab-fix-status")

    with gr.Accordion(t("比较两次运行"), open=False, elem_id="lab-compare-box"):
        with gr.Row():
            cmp_a = gr.Dropdown(choices=run_choices(state, ls_default), label=t("运行 A"), elem_id="lab-cmp-a")
            cmp_b = gr.Dropdown(choices=run_choices(state, ls_default), label=t("运行 B"), elem_id="lab-cmp-b")
            cmp_policy = gr.Radio(choices=POLICY_CHOICES, value="counted_wrong", label=t("未解析/出错的处理"),
                                  elem_id="lab-cmp-policy")
            cmp_btn = gr.Button(t("比较"), scale=0, elem_id="lab-cmp-btn")
        cmp_out = gr.Markdown(elem_id="lab-compare")

    # -- handlers -----------------------------------------------------------------------------------
    def fail(e: BaseException, what: str) -> str:
        if not is_user_error(e):
            log.exception("%s failed", what)
        return status_md(user_message(e), ok=False)

    def on_prompt(ref):
        if not ref:
            return "", diff_html("", "请选择一个提示词版本。"), "", "", "", "", ""
        try:
            return (*prompt_view(load_library(state), ref), gr.skip())
        except Exception as e:
            return "", "", "", "", "", "", fail(e, "prompt view")

    def on_refresh(ref, ls, selected):
        plib = load_library(state)
        choices = prompt_choices(plib)
        refs = [v for _, v in choices]
        ref = ref if ref in refs else default_prompt(plib)
        problems = "；".join(plib.problems)
        rc = run_choices(state, ls)
        ids = [v for _, v in rc]
        keep = [r for r in (selected or []) if r in ids] or default_runs(state, ls)
        return (gr.update(choices=choices, value=ref), gr.update(choices=label_set_choices(state)),
                gr.update(choices=rc, value=keep), matrix_html(state, ls, keep),
                gr.update(choices=rc), gr.update(choices=rc), gr.update(choices=rc),
                status_md(f"有提示词文件未能加载：{problems}", ok=False) if problems else "")

    def on_save(ref, sys_txt, user_txt, fs_txt, notes_txt):
        try:
            plib = load_library(state)
            base = plib.get(ref)
            new = plib.save_new_version(base, system=sys_txt, user=user_txt, few_shot=fs_txt or "",
                                        notes=notes_txt or "", dir=prompt_save_dir(state))
        except Exception as e:
            return gr.skip(), gr.skip(), gr.skip(), fail(e, "prompt save")
        plib = load_library(state)
        yaml_txt, d, *_ = prompt_view(plib, new.ref)
        msg = f"已保存新版本 **{new.ref}**（父版本 {base.ref}，sha256 {new.short_hash}）到 `{new.source}`。"
        return gr.update(choices=prompt_choices(plib), value=new.ref), yaml_txt, d, status_md(msg)

    def on_label_set(ls):
        rc = run_choices(state, ls)
        sel = default_runs(state, ls)
        vids = video_choices(state, ls)
        return (gr.update(choices=vids, value=[]), gr.update(choices=rc, value=sel), matrix_html(state, ls, sel),
                gr.update(choices=vids, value=None), gr.update(choices=rc, value=None), gr.update(choices=rc),
                gr.update(choices=rc))

    def on_runs(ls, selected):
        try:
            return matrix_html(state, ls, selected)
        except Exception as e:
            return f"<p>{html.escape(fail(e, 'matrix'))}</p>"

    def on_run(ref, eng, ls, vids, selected, request: gr.Request, progress=gr.Progress()):
        from webapp.evaluation import run_eval

        key = getattr(request, "session_hash", None) or "default"
        cancel = threading.Event()
        cancels[key] = cancel
        progress(0, desc="准备中…")

        def cb(ev: dict[str, Any]) -> None:
            if ev.get("event") == "start":
                progress((ev.get("skipped", 0), ev.get("total")), desc=f"运行 {ev['run_id']}：{ev['total']} 个视频",
                         unit="视频")
            elif ev.get("event") == "video":
                progress((ev["index"], ev["total"]), desc=f"{ev['video_id']}：{ev['status']}", unit="视频")

        skip7 = (gr.skip(),) * 7
        try:
            if not ref:
                raise R.RunError("Choose a prompt version first.")
            if not eng:
                raise R.RunError("Choose an engine first.")
            if not ls:
                raise R.RunError("Choose a label set first; accuracy needs labels.")
            run = run_eval(state.store, engine_name=eng, label_set=ls, video_ids=list(vids or []) or None,
                           prompt_ref=ref, progress=cb, cancel=cancel)
        except Exception as e:
            return (fail(e, "run"), *skip7)
        finally:
            cancels.pop(key, None)
        rc = run_choices(state, ls)
        ids = [v for _, v in rc]
        sel = [str(run)] + [r for r in (selected or []) if r in ids and r != str(run)]
        sel = sel[:max(MATRIX_DEFAULT_RUNS, len(selected or []) + 1)]
        return (status_md(run_summary_md(run.summary, ls), ok=run.summary["status"] == "done"),
                gr.update(choices=rc, value=sel), matrix_html(state, ls, sel), gr.update(choices=rc, value=str(run)),
                gr.update(choices=rc), gr.update(choices=rc, value=str(run)), gr.update(), str(run))

    def on_cancel(request: gr.Request):
        ev = cancels.get(getattr(request, "session_hash", None) or "default")
        if ev is None:
            return status_md("当前没有正在进行的运行。", ok=False)
        ev.set()
        return status_md("正在取消：进行中的视频完成后停止，已完成的预测都已保存。")

    def show(video_id, run_id):
        empty = (None, "", "", "", "")
        if not video_id or not run_id:
            return (*empty, status_md("请选择一个视频和一次运行（或点击矩阵中的单元格）。", ok=False))
        try:
            run = R.get_run(state.store, run_id)
            p = find_prediction(state, run["run_id"], video_id)
            lid = library_id(state, video_id)
            player, note = None, ""
            if lid is None:
                note = f"视频 {video_id} 不在视频库中，无法播放。"
            else:
                try:
                    player = str(state.library.playable(lid))
                except Exception as e:
                    note = user_message(e)
            raw = (p.get("raw") or "（空回答）") if p else ""
            return (player, label_md(state, run.get("label_set"), video_id), verdict_md(p, run), raw,
                    reviews_md(state, run["run_id"], p["video_id"]) if p else "",
                    status_md(note, ok=False) if note else status_md(f"{video_id} · {run['run_id']}"))
        except Exception as e:
            return (*empty, fail(e, "drill-down"))

    def on_cell(evt: gr.EventData):
        data = getattr(evt, "_data", None) or {}
        v, r = data.get("video"), data.get("run")
        if not v or not r:
            return (gr.skip(),) * 8
        return (v, r, *show(v, r))

    def on_review(video_id, run_id, m, c, request: gr.Request):
        try:
            if not video_id or not run_id:
                raise R.RunError("Pick a video and a run first.")
            p = find_prediction(state, run_id, video_id)
            if p is None:
                raise R.RunError(f"Run {run_id} has no prediction for {video_id}.")
            R.add_review(state.store, run_id, p["video_id"], m, (c or "").strip() or None,
                         getattr(request, "username", None))
        except Exception as e:
            return fail(e, "review"), gr.skip(), gr.skip()
        return status_md(f"已记录评审：{m}（{p['video_id']} · {run_id}）"), reviews_md(state, run_id, p["video_id"]), ""

    def on_fix(video_id, run_id, ls, kind, onset, note):
        try:
            if not video_id:
                raise lab.LabelError("Pick a video first.")
            parent = None
            if run_id:
                parent = R.get_run(state.store, run_id).get("label_set")
            parent = parent or ls
            if not parent:
                raise lab.LabelError("Choose the label set to correct first.")
            key = lab.video_key(video_id)
            rows = [r for r in lab.list_labels(state.store, parent) if lab.video_key(r["video_id"]) == key]
            vid = rows[0]["video_id"] if rows else video_id
            onset_s = None
            if str(onset or "").strip():
                try:
                    onset_s = float(str(onset).strip().rstrip("sS"))
                except ValueError:
                    raise lab.LabelError(f"Onset must be a number of seconds such as 2.5, not '{onset}'.") from None
            target = lab.save_correction(state.store, parent, vid, kind == "ghost_probing", kind=kind,
                                         onset_s=onset_s, note=(note or "").strip() or None)
        except Exception as e:
            return fail(e, "label correction"), gr.skip(), gr.skip()
        msg = (f"已把 {vid} 的修正保存到新标签集 **{target}**；原标签集 **{parent}** 保持不变。"
               f"在上方选择 {target} 可以按修正后的标签查看和运行。")
        return status_md(msg), label_md(state, target, vid), gr.update(choices=label_set_choices(state))

    def on_compare(a, b, policy, ls):
        try:
            if not a or not b:
                raise R.RunError("Pick two runs to compare.")
            return compare_md(M.compare_runs(state.store, a, b, policy=policy, label_set=ls or None))
        except Exception as e:
            return fail(e, "compare")

    # -- API endpoints ------------------------------------------------------------------------------
    def run_eval_api(label_set: str, engine: str = "baseline", prompt: str = "",
                     video_ids: list[str] | None = None) -> str:
        """Run a prompt version (id, id@version or hash prefix; empty = the detect default) with an engine on a
        label set (or a subset of its videos) and return the run id."""
        from webapp.evaluation import run_eval

        return str(run_eval(state.store, engine_name=engine, label_set=label_set or None,
                            video_ids=list(video_ids or []) or None, prompt_ref=prompt or None))

    def prompt_versions() -> list[dict]:
        """Every detect prompt version: ref, title, parent, sha256."""
        return [{"ref": p.ref, "title": p.title, "parent": p.parent, "hash": p.hash,
                 "source": str(p.source) if p.source else None}
                for p in load_library(state).all() if p.kind == "detect"]

    def save_prompt_version(base: str, system: str, user: str, few_shot: str = "", notes: str = "") -> str:
        """Save a new version derived from `base` (id@version) and return its ref."""
        plib = load_library(state)
        return plib.save_new_version(plib.get(base), system=system, user=user, few_shot=few_shot, notes=notes,
                                     dir=prompt_save_dir(state)).ref

    def lab_matrix(label_set: str, run_ids: list[str]) -> list[dict]:
        """The matrix as rows: video_id, label, and per run the cell class (right/wrong/unparsed/error/missing)."""
        labels = lab.list_labels(state.store, label_set)
        by_run = {rid: {lab.video_key(p["video_id"]): p for p in R.predictions(state.store, rid)} for rid in run_ids}
        return [{"video_id": lr["video_id"], "label": lab.label_badge(lr),
                 **{rid: classify(by_run[rid].get(lab.video_key(lr["video_id"])), True) for rid in run_ids}}
                for lr in labels]

    gr.api(run_eval_api, api_name="run_eval_api")
    gr.api(prompt_versions, api_name="prompt_versions")
    gr.api(save_prompt_version, api_name="save_prompt_version")
    gr.api(lab_matrix, api_name="lab_matrix")

    # -- wiring -------------------------------------------------------------------------------------
    view_outs = [yaml_view, diff_view, system, user, few_shot, notes, save_status]
    prompt_dd.change(on_prompt, [prompt_dd], view_outs)
    refresh.click(on_refresh, [prompt_dd, label_set, runs_dd],
                  [prompt_dd, label_set, runs_dd, matrix, d_run, cmp_a, cmp_b, save_status])
    save.click(on_save, [prompt_dd, system, user, few_shot, notes], [prompt_dd, yaml_view, diff_view, save_status])
    label_set.change(on_label_set, [label_set], [videos, runs_dd, matrix, d_video, d_run, cmp_a, cmp_b])
    runs_dd.change(on_runs, [label_set, runs_dd], [matrix])
    run_btn.click(on_run, [prompt_dd, engine, label_set, videos, runs_dd],
                  [run_status, runs_dd, matrix, d_run, cmp_a, cmp_b, d_video, last_run])
    cancel_btn.click(on_cancel, None, [run_status], queue=False)
    drill_outs = [d_player, d_label, d_verdict, d_raw, reviews_view, d_status]
    d_show.click(show, [d_video, d_run], drill_outs)
    matrix.click(on_cell, None, [d_video, d_run, *drill_outs])
    review_btn.click(on_review, [d_video, d_run, mark, comment], [review_status, reviews_view, comment])
    fix_btn.click(on_fix, [d_video, d_run, label_set, fix_kind, fix_onset, fix_note], [fix_status, d_label, label_set])
    cmp_btn.click(on_compare, [cmp_a, cmp_b, cmp_policy, label_set], [cmp_out])

    def on_page_load(ref, ls):
        """A fresh page shows what the store holds now (runs made elsewhere, new label sets, new versions)."""
        plib = load_library(state)
        choices = prompt_choices(plib)
        refs = [v for _, v in choices]
        ref = ref if ref in refs else default_prompt(plib)
        sets = label_set_choices(state)
        ls = ls if ls in [v for _, v in sets] else default_label_set(state)
        rc = run_choices(state, ls)
        sel = default_runs(state, ls)
        vids = video_choices(state, ls)
        try:
            view = prompt_view(plib, ref) if ref else ("", "", "", "", "", "")
        except Exception as e:
            view = ("", "", "", "", "", "")
            log.warning("prompt view failed: %s", e)
        return (gr.update(choices=choices, value=ref), *view, gr.update(choices=sets, value=ls),
                gr.update(choices=vids), gr.update(choices=rc, value=sel), matrix_html(state, ls, sel),
                gr.update(choices=vids), gr.update(choices=rc), gr.update(choices=rc), gr.update(choices=rc))

    on_load(on_page_load, [prompt_dd, label_set],
            [prompt_dd, yaml_view, diff_view, system, user, few_shot, notes, label_set, videos, runs_dd, matrix,
             d_video, d_run, cmp_a, cmp_b])
    return {"prompt": prompt_dd, "label_set": label_set, "runs": runs_dd, "matrix": matrix, "last_run": last_run}


def on_load(fn, inputs, outputs) -> None:
    """Register ``fn`` on the page load of the Blocks being built (tabs do not get the Blocks object)."""
    from gradio.context import Context

    root = Context.root_block
    if root is not None:
        root.load(fn, inputs, outputs)
