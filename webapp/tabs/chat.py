"""对话检测 (Chat & Detect) tab: pick a library video, watch it, chat about it with a video LLM (streamed),
and run the ghost-probing detection prompt to get a verdict card.

Every turn goes through :mod:`webapp.detection` (the same path as ``ghostprobe detect`` / ``chat``), so it
is logged to the chat log with its engine, model, revision, prompt hash, options, sampling, latency and
tokens. A failure becomes one sentence in ``#chat-status`` and an error turn in the log.

Until a video is picked, the question box, Send and 检测鬼探头 are off with one sentence saying so
(``#chat-need-video``). An engine that cannot chat (a detector such as the default ``baseline``) disables the
question box and Send with one sentence saying why and what to do; the 模型目录 (model catalogue, :mod:`webapp.models`)
in the engine panel pulls a small video LLM on request, which then runs as the ``transformers`` engine.
Run-time text follows the browser's language (:mod:`webapp.messages`); static labels go through gr.I18n.
"""

from __future__ import annotations

import html
import json
import logging
import math
from pathlib import Path
from typing import Any

import gradio as gr

from engines.base import GenerationOptions
from webapp import detection as D
from webapp import messages as MSG
from webapp.i18n import add_translations, t
from webapp.state import AppState, is_user_error

log = logging.getLogger(__name__)

QUESTION_PLACEHOLDER = "输入问题，回车发送（留空则使用默认问题）"
MODEL_PLACEHOLDER = "model id / 本地文件夹 / 服务端模型名"
add_translations({
    "选择视频": "Pick a video",
    "刷新": "Refresh",
    "上传视频到视频库": "Upload a video to the library",
    "播放器": "Player",
    "引擎": "Engine",
    "模型": "Model",
    "提示词版本（检测）": "Prompt version (detection)",
    "抽帧数（0 = 引擎默认采样）": "Frames (0 = the engine's default sampling)",
    "回答长度上限（token）": "Answer length limit (tokens)",
    "检测鬼探头": "Detect ghost probing",
    "对话": "Chat",
    QUESTION_PLACEHOLDER: "Ask a question and press Enter (empty: the default question)",
    MODEL_PLACEHOLDER: "model id / local folder / served model name",
    "发送": "Send",
    "停止": "Stop",
    "新对话": "New chat",
    "检测结果": "Verdict",
    "#### 检测结果": "#### Verdict",
    "跳到出现时间": "Jump to onset",
    "原始输出": "Raw model output",
    "逐帧得分": "Per-frame score",
    "该视频的历史对话": "Past chats about this video",
    "引擎状态": "Engine status",
    "设置": "Settings",
    "模型目录": "Model catalogue",
    "目录中的模型": "Catalogue model",
    "查询大小": "Check size",
    "下载": "Download",
    "使用此模型": "Use this model",
})

MSG.add_messages({
    "chat_no_verdict": {"zh": "尚未检测：选择视频和引擎后点击“检测鬼探头”。",
                        "en": "Not run yet: pick a video and an engine, then press “Detect ghost probing”."},
    "chat_unknown_engine": {"zh": "⚠️ 未知引擎。", "en": "⚠️ Unknown engine."},
    "chat_engine_ok": {"zh": "✅ **{name}** 可用：{reason}", "en": "✅ **{name}** is available: {reason}"},
    "chat_engine_not": {"zh": "⚠️ **{name}** 不可用：{reason}", "en": "⚠️ **{name}** is unavailable: {reason}"},
    "chat_unavailable_tag": {"zh": "（不可用）", "en": " (unavailable)"},
    "chat_cannot_chat": {"zh": "{reason}",
                         "en": "Engine {name} only answers whether there is ghost probing and cannot chat; press "
                               "“Detect ghost probing”, or switch to a video LLM engine (see “Model catalogue”)."},
    "chat_cannot_chat_unavailable": {"zh": "引擎 {name} 现在不可用，所以不能提问：{reason}",
                                     "en": "Engine {name} is unavailable here, so it cannot take questions: {reason}"},
    "chat_table_head": {"zh": "| 引擎 | 状态 | 说明 |", "en": "| engine | state | why |"},
    "chat_available": {"zh": "可用", "en": "available"},
    "chat_unavailable": {"zh": "不可用", "en": "unavailable"},
    "chat_rate": {"zh": "每秒 {fps:g} 帧", "en": "{fps:g} frames per second"},
    "chat_uniform": {"zh": "均匀抽取 {n} 帧", "en": "{n} evenly spaced frames"},
    "chat_side": {"zh": "，长边不超过 {side} 像素", "en": ", long side at most {side} px"},
    "chat_sampling": {"zh": "引擎默认采样：{what}{side}。", "en": "The engine's default sampling: {what}{side}."},
    "chat_error_label": {"zh": "出错 (error)", "en": "error"},
    "chat_unparsed_label": {"zh": "无法解析 (unparsed)", "en": "unparsed"},
    "chat_yes": {"zh": "是", "en": "yes"},
    "chat_no": {"zh": "否", "en": "no"},
    "chat_f_conf": {"zh": "置信度", "en": "Confidence"},
    "chat_f_danger": {"zh": "危险等级", "en": "Danger level"},
    "chat_f_object": {"zh": "目标类型", "en": "Object"},
    "chat_f_onset": {"zh": "出现时间", "en": "Onset"},
    "chat_f_reason": {"zh": "理由", "en": "Reason"},
    "chat_headline": {"zh": "是否鬼探头：", "en": "Ghost probing: "},
    "chat_note_error": {"zh": "本次检测没有得到模型的回答，记为“出错”，不算作“否”。",
                        "en": "This detection got no answer from the model: it is recorded as an error, never as “no”."},
    "chat_note_unparsed": {"zh": "模型的回答中读不出明确的结论，记为“无法解析（unparsed）”——不算作“否”。"
                                 "原始输出见下方“原始输出”。",
                           "en": "No clear answer could be read from the model's output, so it is recorded as "
                                 "“unparsed” — never as “no”. See “Raw model output” below."},
    "chat_detect_failed": {"zh": "⚠️ 检测失败：{error}", "en": "⚠️ Detection failed: {error}"},
    "chat_unknown_error": {"zh": "未知错误", "en": "unknown error"},
    "chat_verdict_line": {"zh": "🔍 检测结果：**{label}**", "en": "🔍 Verdict: **{label}**"},
    "chat_conf_bit": {"zh": "置信度 {v:.2f}", "en": "confidence {v:.2f}"},
    "chat_onset_bit": {"zh": "出现时间 {v:.1f} s", "en": "onset {v:.1f} s"},
    "chat_detect_q": {"zh": "🔍 检测鬼探头", "en": "🔍 Detect ghost probing"},
    "chat_stopped_mark": {"zh": "*（已停止）*", "en": "*(stopped)*"},
    "chat_default_q": {"zh": "（默认问题）", "en": "(the default question)"},
    "chat_kind_chat": {"zh": "对话", "en": "chat"},
    "chat_kind_detect": {"zh": "检测", "en": "detect"},
    "chat_pick_video": {"zh": "请先选择一个视频。", "en": "Pick a video first."},
    "chat_need_video": {"zh": "先在左侧选择一个视频，才能提问或检测鬼探头。",
                        "en": "Pick a video on the left first; then you can ask questions or detect ghost probing."},
    "chat_answering": {"zh": "{engine} 正在回答…", "en": "{engine} is answering…"},
    "chat_turn_n": {"zh": " · 第 {n} 轮", "en": " · turn {n}"},
    "chat_stopped": {"zh": "已停止：已生成的部分回答已记入对话记录。",
                     "en": "Stopped: the part of the answer generated so far is in the chat log."},
    "chat_new": {"zh": "已开始新的对话（上一段对话仍在历史记录中）。",
                 "en": "New chat started (the previous one stays in the history)."},
    "chat_detect_done": {"zh": "检测完成：{label}（第 {n} 轮）", "en": "Detection done: {label} (turn {n})"},
    "chat_jump": {"zh": "跳到 {v:.1f} s", "en": "Jump to {v:.1f} s"},
    "chat_empty_output": {"zh": "（模型没有输出任何文字）", "en": "(the model returned no text)"},
    "chat_loaded": {"zh": "已载入对话 {cid}（{n} 轮）；继续提问会接着这段对话。",
                    "en": "Loaded chat {cid} ({n} turns); questions continue this chat."},
    "chat_uploaded": {"zh": "已上传 {v}", "en": "Uploaded {v}"},
    "chat_upload_known": {"zh": "该视频已在库中：{v}（按内容识别，未重复保存）",
                          "en": "This video is already in the library: {v} (recognised by content, not stored twice)"},
    "chat_failed": {"zh": "{what}失败：{error}", "en": "{what} failed: {error}"},
    "chat_what_open": {"zh": "打开视频", "en": "Opening the video"},
    "chat_what_chat": {"zh": "对话", "en": "Chat"},
    "chat_what_detect": {"zh": "检测", "en": "Detection"},
    "chat_what_upload": {"zh": "上传", "en": "Upload"},
    "chat_prompt_bit": {"zh": " · 提示词 {ref}", "en": " · prompt {ref}"},
    "chat_plot_score": {"zh": "得分", "en": "score"},
    "chat_plot_threshold": {"zh": "阈值 {v:.2f}", "en": "threshold {v:.2f}"},
    "chat_plot_onset": {"zh": "出现 {v:.1f} s", "en": "onset {v:.1f} s"},
    "chat_plot_time": {"zh": "时间 (s)", "en": "time (s)"},
    # model catalogue
    "cat_choice": {"zh": "{name} · {size} · 中文{zh}{pulled}", "en": "{name} · {size} · Chinese {zh}{pulled}"},
    "cat_zh_good": {"zh": "好", "en": "good"},
    "cat_zh_weak": {"zh": "弱", "en": "weak"},
    "cat_pulled_tag": {"zh": " · ✅ 已下载", "en": " · ✅ pulled"},
    "cat_info": {"zh": "**{repo}** · {params} B 参数 · 中文：{zh} · 适合：{runs}\n\n大小：{size}\n\n{note}",
                 "en": "**{repo}** · {params} B parameters · Chinese: {zh} · runs on: {runs}\n\nSize: {size}\n\n{note}"},
    "cat_where": {"zh": "已下载到 `{path}`：点“使用此模型”以 transformers 引擎运行。",
                  "en": "Pulled into `{path}`: press “Use this model” to run it as the transformers engine."},
    "cat_not_pulled": {"zh": "尚未下载（只在你点击“下载”时才会下载，启动时从不下载）。",
                       "en": "Not pulled (it downloads only when you press “Download”, never at start-up)."},
    "cat_size_first": {"zh": "⏳ {name}：共 {size}（{files} 个文件，来自模型库的文件清单），开始下载…",
                       "en": "⏳ {name}: {size} in {files} files (from the hub's file listing), downloading…"},
    "cat_size": {"zh": "{name}：共 {size}（{files} 个文件，来自模型库的文件清单）。",
                 "en": "{name}: {size} in {files} files (from the hub's file listing)."},
    "cat_pulled": {"zh": "已下载 {name}（{size}，用时 {sec:.1f} 秒）到 `{path}`；已选用 transformers 引擎和此模型。",
                   "en": "Pulled {name} ({size} in {sec:.1f} s) into `{path}`; the transformers engine with this model is selected."},
    "cat_already": {"zh": "{name} 已下载：`{path}`。", "en": "{name} is already pulled: `{path}`."},
    "cat_progress": {"zh": "下载 {name}：{done} / {total}", "en": "Downloading {name}: {done} / {total}"},
    "cat_pick": {"zh": "请先在目录中选择一个模型。", "en": "Pick a model from the catalogue first."},
    "cat_use": {"zh": "已选用 transformers 引擎和模型 `{path}`。", "en": "Selected the transformers engine with model `{path}`."},
})
MSG.add_error_translations([
    (r"No model named '(?P<n>.+)' in the catalogue; known models: (?P<k>.+)\.", "目录中没有名为“{n}”的模型；已有：{k}。"),
    (r"HF_HUB_OFFLINE \(or TRANSFORMERS_OFFLINE\) is set, so the model hub cannot be asked; unset it to see sizes and "
     r"pull models\.", "已设置 HF_HUB_OFFLINE（或 TRANSFORMERS_OFFLINE），无法访问模型库；取消该设置后才能查询大小和下载模型。"),
    (r"Could not get (?P<r>\S+) from the model hub \((?P<why>.+)\)\.", "无法从模型库获取 {r}（{why}）。"),
    (r"Another model is being pulled; wait until it finishes\.", "另一个模型正在下载，请等它完成。"),
    (r"(?P<n>\S+) needs (?P<a>.+) but only (?P<b>.+) is free under (?P<d>.+)\.", "{n} 需要 {a}，但 {d} 下只剩 {b}。"),
])

# the first render of the need-a-video sentence, in the browser's language before any handler has run
NEED_VIDEO_MD = "⚠️ " + MSG.escape_md(MSG.m("chat_need_video", "zh"))
add_translations({NEED_VIDEO_MD: "⚠️ " + MSG.escape_md(MSG.m("chat_need_video", "en"))})

HISTORY_HEADERS = ["开始时间", "轮数", "类型", "引擎", "模型", "首个问题", "会话 ID"]
HISTORY_HEADERS_EN = ["started", "turns", "kind", "engine", "model", "first question", "chat id"]
SEEK_JS = """(t) => {
  const v = document.querySelector('#chat-player video');
  if (v && t !== null && t !== undefined && !Number.isNaN(Number(t))) {
    v.pause();
    v.currentTime = Number(t);
    v.scrollIntoView({block: 'nearest'});
  }
  return [];
}"""
STREAM_EVERY_S = 0.08  # at most ~12 UI updates a second while streaming


def _m(key: str, lang: str = "zh", **kw: Any) -> str:
    return MSG.m(key, lang, **kw)


def no_verdict_html(lang: str = "zh") -> str:
    return ('<div class="verdict-card" style="color: var(--body-text-color-subdued)">'
            f'{html.escape(_m("chat_no_verdict", lang))}</div>')


NO_VERDICT = no_verdict_html("zh")


# -- pure helpers (unit-tested) ------------------------------------------------------------------------

def engine_label(row: dict[str, Any], lang: str = "zh") -> str:
    return f"{row['name']}" + ("" if row["available"] else _m("chat_unavailable_tag", lang))


def engine_choices(rows: list[dict[str, Any]], lang: str = "zh") -> list[tuple[str, str]]:
    return [(engine_label(r, lang), r["name"]) for r in rows]


def engine_info_md(row: dict[str, Any] | None, lang: str = "zh") -> str:
    if row is None:
        return _m("chat_unknown_engine", lang)
    reason = MSG.escape_md(MSG.translate(str(row["reason"]), lang))
    return _m("chat_engine_ok" if row["available"] else "chat_engine_not", lang, name=row["name"], reason=reason)


def engines_table_md(rows: list[dict[str, Any]], lang: str = "zh") -> str:
    lines = [_m("chat_table_head", lang), "|---|---|---|"]
    for r in rows:
        reason = MSG.escape_md(MSG.translate(str(r["reason"]), lang))
        state = _m("chat_available" if r["available"] else "chat_unavailable", lang)
        lines.append(f"| {r['name']} | {state} | {reason} |")
    return "\n".join(lines)


def cannot_chat_text(name: str, eng: Any, available: bool, reason: str = "", lang: str = "zh") -> str | None:
    """One sentence saying why the question box is off, or None when this engine can take questions."""
    if eng is not None:
        why = eng.can_chat_reason()
        if why:
            return why if lang == "zh" else _m("chat_cannot_chat", lang, name=name)  # titles are Chinese
    if not available:
        return _m("chat_cannot_chat_unavailable", lang, name=name, reason=MSG.translate(reason, lang))
    return None


def controls_state(video_id: str | None, cannot_chat: str | None, available: bool,
                   lang: str = "zh") -> tuple[str | None, bool, bool]:
    """(sentence why nothing can be asked yet or None, question box + Send on, 检测 on).

    Both need a picked video; questions also need an engine that can chat (``cannot_chat`` is None), the
    detection an available engine."""
    picked = bool(video_id)
    return (None if picked else _m("chat_need_video", lang), picked and cannot_chat is None,
            picked and bool(available))


def frames_default(engine_cls: Any) -> int:
    """The slider value for an engine: its default frame count, or 0 when it samples at a rate."""
    s = getattr(engine_cls, "default_sampling", None) or {}
    if s.get("fps"):
        return 0
    return int(s.get("num_frames") or 16)


def sampling_note(engine_cls: Any, lang: str = "zh") -> str:
    s = getattr(engine_cls, "default_sampling", None) or {}
    if s.get("fps"):
        what = _m("chat_rate", lang, fps=s["fps"])
    else:
        what = _m("chat_uniform", lang, n=s.get("num_frames") or 16)
    side = _m("chat_side", lang, side=s["max_side"]) if s.get("max_side") else ""
    return _m("chat_sampling", lang, what=what, side=side)


def _fmt_conf(v: Any) -> str:
    return "—" if v is None else f"{float(v):.2f}"


def verdict_label(v: dict[str, Any], lang: str = "zh") -> tuple[str, str]:
    """(text, css colour) of the headline. An unparsed answer is never shown as 否."""
    status = v.get("status")
    if status == "error":
        return _m("chat_error_label", lang), "#b45309"
    if status != "ok" or v.get("ghost_probing") is None:
        return _m("chat_unparsed_label", lang), "#6b7280"
    return (_m("chat_yes", lang), "#dc2626") if v["ghost_probing"] else (_m("chat_no", lang), "#16a34a")


def _label_of(value: Any, kind: str, lang: str) -> str:
    if value in (None, ""):
        return "—"
    return (MSG.danger if kind == "danger" else MSG.object_type)(value, lang)


def verdict_card_html(v: dict[str, Any], prompt_ref: str | None = None, lang: str = "zh") -> str:
    """The verdict card. Every value is escaped: model output may contain anything."""
    label, colour = verdict_label(v, lang)
    e = html.escape
    onset = v.get("onset_s")
    rows = [
        ("chat_f_conf", _m("chat_f_conf", lang), _fmt_conf(v.get("confidence"))),
        ("chat_f_danger", _m("chat_f_danger", lang), _label_of(v.get("danger_level"), "danger", lang)),
        ("chat_f_object", _m("chat_f_object", lang), _label_of(v.get("object_type"), "object", lang)),
        ("chat_f_onset", _m("chat_f_onset", lang), "—" if onset is None else f"{float(onset):.1f} s"),
        ("chat_f_reason", _m("chat_f_reason", lang), MSG.translate(str(v.get("reason")), lang) if v.get("reason") else "—"),
    ]
    cell = "border:none;padding:3px 14px 3px 0;vertical-align:top;background:none"
    body = "".join(f'<tr style="border:none;background:none"><th style="{cell};text-align:left;white-space:nowrap">'
                   f'{e(k)}</th><td style="{cell}" data-field="{e(key)}">{e(str(val))}</td></tr>'
                   for key, k, val in rows)
    note = ""
    if v.get("status") == "error":
        note = _m("chat_note_error", lang)
    elif v.get("status") != "ok" or v.get("ghost_probing") is None:
        note = _m("chat_note_unparsed", lang)
    note_html = f'<p class="verdict-note" style="margin:8px 0 0 0">{e(note)}</p>' if note else ""
    ref = f'<span style="float:right;font-size:12px;opacity:.7">{e(prompt_ref)}</span>' if prompt_ref else ""
    status = e(str(v.get("status") or ""))
    return (f'<div class="verdict-card" data-status="{status}" lang="{e(lang)}">{ref}'
            f'<div style="font-size:18px;margin-bottom:6px">{e(_m("chat_headline", lang))}'
            f'<b class="verdict-answer" style="color:{colour}">{e(label)}</b></div>'
            f'<table style="border:none;border-collapse:collapse;margin:0">{body}</table>{note_html}</div>')


def verdict_short(v: dict[str, Any] | None, error: str | None = None, lang: str = "zh") -> str:
    """One line for the chat transcript."""
    if v is None:
        return _m("chat_detect_failed", lang, error=MSG.translate(error, lang) if error else _m("chat_unknown_error", lang))
    label, _ = verdict_label(v, lang)
    bits = []
    if v.get("status") == "ok" and v.get("ghost_probing") is not None:
        if v.get("confidence") is not None:
            bits.append(_m("chat_conf_bit", lang, v=float(v["confidence"])))
        if v.get("onset_s") is not None:
            bits.append(_m("chat_onset_bit", lang, v=float(v["onset_s"])))
    if v.get("status") == "error":
        bits.append(MSG.translate(str(v.get("reason") or ""), lang))
    bits = [b for b in bits if b]
    tail = ("（" + "，".join(bits) + "）" if lang == "zh" else " (" + ", ".join(bits) + ")") if bits else ""
    return _m("chat_verdict_line", lang, label=label) + tail


def turns_to_messages(rows: list[dict[str, Any]], lang: str = "zh") -> list[dict[str, str]]:
    """Logged turns → gr.Chatbot messages (role/content), errors and stops marked."""
    msgs: list[dict[str, str]] = []
    for r in rows:
        if r.get("kind") == "detect":
            msgs.append({"role": "user", "content": _m("chat_detect_q", lang)})
            msgs.append({"role": "assistant", "content": verdict_short(r.get("verdict"), r.get("error"), lang)})
            continue
        msgs.append({"role": "user", "content": r.get("question") or ""})
        answer = r.get("answer") or ""
        err = r.get("error")
        if err == D.STOPPED:
            answer = (answer + "\n\n" if answer else "") + _m("chat_stopped_mark", lang)
        elif err:
            answer = (answer + "\n\n" if answer else "") + f"⚠️ {MSG.translate(err, lang)}"
        msgs.append({"role": "assistant", "content": answer})
    return msgs


def call_line_en(call: dict[str, Any] | None, engine: str, model: str | None) -> str:
    """The English form of webapp.detection.call_line_zh: measured values only."""
    c = call or {}
    parts = [f"{name} {c[key]:.2f}" for key, name in (("decode_s", "decode"), ("preprocess_s", "preprocess"),
                                                        ("generate_s", "generate")) if c.get(key) is not None]
    line = f"engine {engine}" + (f" · model {model}" if model else "")
    if c.get("latency_s") is not None or c.get("decode_s") is not None:
        total = (c.get("decode_s") or 0) + (c.get("latency_s") or 0)
        line += f" · {total:.2f} s" + (f" ({' + '.join(parts)})" if parts else "")
    else:
        line += " · time not measured"
    if c.get("prompt_tokens") is not None or c.get("completion_tokens") is not None:
        pt, ct = c.get("prompt_tokens"), c.get("completion_tokens")
        line += f", {'?' if pt is None else pt} tokens in / {'?' if ct is None else ct} out"
    if c.get("device"):
        line += f" · {c['device']}"
    return line


def call_line(call: dict[str, Any] | None, engine: str, model: str | None, prompt_ref: str | None = None,
              prompt_hash: str | None = None, lang: str = "zh") -> str:
    line = D.call_line_zh(call, engine, model) if lang == "zh" else call_line_en(call, engine, model)
    if prompt_ref:
        line += _m("chat_prompt_bit", lang, ref=prompt_ref)
        if prompt_hash:
            line += f"（{prompt_hash[:12]}）" if lang == "zh" else f" ({prompt_hash[:12]})"
    return "⏱ " + line


def track_figure(track: list[tuple[float, float]], onset_s: float | None = None, threshold: float | None = None,
                 lang: str = "zh"):
    import plotly.graph_objects as go

    xs = [float(a) for a, _ in track]
    ys = [float(b) for _, b in track]
    score = _m("chat_plot_score", lang)
    fig = go.Figure(go.Scatter(x=xs, y=ys, mode="lines+markers", name=score, line={"width": 2}, marker={"size": 4}))
    if threshold is not None and math.isfinite(threshold):
        fig.add_hline(y=threshold, line_dash="dash", line_color="#dc2626",
                      annotation_text=_m("chat_plot_threshold", lang, v=threshold))
    if onset_s is not None:
        fig.add_vline(x=float(onset_s), line_dash="dot", line_color="#2563eb",
                      annotation_text=_m("chat_plot_onset", lang, v=float(onset_s)))
    fig.update_layout(height=240, margin={"l": 40, "r": 10, "t": 20, "b": 36}, xaxis_title=_m("chat_plot_time", lang),
                      yaxis_title=score, showlegend=False, template="plotly_white")
    return fig


def _threshold_from_raw(raw: str) -> float | None:
    try:
        d = json.loads(raw)
    except (TypeError, ValueError):
        return None
    v = d.get("threshold") if isinstance(d, dict) else None
    return float(v) if isinstance(v, (int, float)) else None


def outcome_threshold(out: Any) -> float | None:
    """The decision threshold of a detection: ``DetectOutcome.threshold`` (from the engine's artifacts), else
    the ``threshold`` the baseline writes into its raw JSON (older outcomes)."""
    th = getattr(out, "threshold", None)
    if isinstance(th, (int, float)) and math.isfinite(float(th)):
        return float(th)
    return _threshold_from_raw(getattr(out.verdict, "raw", "") or "")


def _short_model(model: str | None) -> str:
    if not model:
        return ""
    p = Path(model)
    return p.name if p.is_absolute() else model


def history_rows(store, video_id: str, lang: str = "zh") -> tuple[list[list[Any]], list[str]]:
    from reports.chats import history

    if not video_id:
        return [], []
    rows, ids = [], []
    for h in history(store, video_id=video_id, limit=50):
        first_q = next((t.get("question") for t in h["turns"] if t.get("kind") == "chat"), None)
        kinds = sorted({t.get("kind") for t in h["turns"]})
        q = first_q if first_q else _m("chat_detect_q", lang)
        q = q if len(q) <= 40 else q[:40] + "…"
        started = h["started_at"]
        rows.append([started.strftime("%Y-%m-%d %H:%M:%S") if hasattr(started, "strftime") else str(started),
                     h["n_turns"], "+".join(_m("chat_kind_chat" if k == "chat" else "chat_kind_detect", lang)
                                            for k in kinds), h["engine"] or "",
                     _short_model(h["model"]), q, h["chat_id"]])
        ids.append(h["chat_id"])
    return rows, ids


def history_headers(lang: str = "zh") -> list[str]:
    return HISTORY_HEADERS if lang == "zh" else HISTORY_HEADERS_EN


def catalogue_choices(config: Any, lang: str = "zh") -> list[tuple[str, str]]:
    from webapp import models as M

    out = []
    for m in M.CATALOGUE:
        done = M.pulled_info(config, m) is not None
        out.append((_m("cat_choice", lang, name=m.name, size=M.size_text(config, m, lang),
                       zh=_m("cat_zh_good" if m.chinese == "good" else "cat_zh_weak", lang),
                       pulled=_m("cat_pulled_tag", lang) if done else ""), m.name))
    return out


def catalogue_info_md(config: Any, name: str | None, lang: str = "zh") -> str:
    from webapp import models as M

    if not name:
        return ""
    m = M.get(name)
    info = _m("cat_info", lang, repo=MSG.escape_md(m.repo_id), params=f"{m.params_b:g}",
              zh=_m("cat_zh_good" if m.chinese == "good" else "cat_zh_weak", lang), runs=MSG.escape_md(m.runs_on),
              size=MSG.escape_md(M.size_text(config, m, lang)), note=MSG.escape_md(m.note_zh if lang == "zh" else m.note_en))
    done = M.pulled_info(config, m)
    where = (_m("cat_where", lang, path=M.local_path(config, m)) if done is not None else _m("cat_not_pulled", lang))
    return info + "\n\n" + where


def _jsonable(obj: Any) -> Any:
    return json.loads(json.dumps(obj, ensure_ascii=False, default=str))


def _error_result(video_id: str, engine: str, message: str) -> dict[str, Any]:
    out: dict[str, Any] = {k: None for k in D.VERDICT_FIELDS}
    out.update(status="error", reason=message, raw="", call=None, engine=engine, video_id=video_id, error=message)
    return out


def _lang(request: Any) -> str:
    return MSG.lang_of(request)


# -- the tab --------------------------------------------------------------------------------------------

def build(state: AppState, shared: dict[str, dict] | None = None) -> dict[str, Any]:
    from engines.registry import all_engines, local_engines
    from prompts import PromptLibrary

    shared = shared or {}
    tab = gr.context.get_render_context()
    engines = local_engines()  # batch engines (azureml-job) are submitted (Jobs tab), not called here
    names = sorted(engines)
    default_engine = state.config.default_engine if state.config.default_engine in engines else (names[0] if names else None)

    def prompt_choices() -> tuple[list[tuple[str, str]], str | None]:
        try:
            lib = PromptLibrary.load(strict=False)
            det = [p for p in lib.all() if p.kind == "detect"]
            default = lib.detect_default().ref if det else None
        except Exception as e:  # a broken prompt folder must not take the tab down
            log.warning("prompt library: %s", e)
            return [], None
        return [(f"{p.ref} · {p.title}", p.ref) for p in det], default

    def video_choices() -> list[str]:
        return [r["video_id"] for r in state.library.videos()]

    def _engine_state(name: str | None, model_text: str = "") -> tuple[dict[str, Any], Any]:
        """(status row, engine instance or None) without loading any model."""
        from engines.registry import get_engine

        if not name:
            return {"name": "", "available": False, "reason": ""}, None
        try:
            eng = get_engine(name, model=(model_text or "").strip() or None)
            ok, reason = eng.availability()
        except Exception as e:
            return {"name": name, "available": False, "reason": MSG.error_text(e, "en")}, None
        return {"name": name, "available": bool(ok), "reason": reason}, eng

    p_choices, p_default = prompt_choices()
    v_choices = video_choices()
    init_model = D.default_model(default_engine) if default_engine else ""
    init_row, init_eng = _engine_state(default_engine, init_model)
    init_cannot = cannot_chat_text(default_engine or "", init_eng, init_row["available"], str(init_row["reason"]))
    init_need, init_chat_ok, init_detect_ok = controls_state(None, init_cannot, init_row["available"])

    chat_id = gr.State("")
    hist_ids = gr.State([])
    lib_seen = gr.State("")
    pending_model = gr.State("")  # a model picked in the catalogue, applied when the engine switches
    with gr.Row():
        with gr.Column(scale=2):
            with gr.Row(equal_height=True):
                video = gr.Dropdown(choices=v_choices, value=None, label=t("选择视频"), scale=4, elem_id="chat-video",
                                    filterable=True)
                refresh = gr.Button(t("刷新"), scale=1, min_width=96, elem_id="chat-refresh")
            upload = gr.File(label=t("上传视频到视频库"), file_types=["video", ".avi", ".mkv"], height=120,
                             elem_id="chat-upload")
            player = gr.Video(label=t("播放器"), interactive=False, autoplay=False, elem_id="chat-player")
            with gr.Group():
                engine = gr.Dropdown(choices=[(n, n) for n in names], value=default_engine, label=t("引擎"),
                                     elem_id="chat-engine")
                engine_info = gr.Markdown(elem_id="chat-engine-info")
                model = gr.Textbox(value=init_model, label=t("模型"), placeholder=t(MODEL_PLACEHOLDER),
                                   elem_id="chat-model")
                prompt = gr.Dropdown(choices=p_choices, value=p_default, label=t("提示词版本（检测）"),
                                     elem_id="chat-prompt")
                frames = gr.Slider(0, 64, step=1, value=frames_default(engines.get(default_engine)),
                                   label=t("抽帧数（0 = 引擎默认采样）"),
                                   info=sampling_note(engines.get(default_engine)), elem_id="chat-frames")
                max_new = gr.Slider(16, 2048, step=16, value=512, label=t("回答长度上限（token）"),
                                    elem_id="chat-max-new")
            with gr.Accordion(t("模型目录"), open=False, elem_id="chat-models"):
                cat_pick = gr.Dropdown(choices=catalogue_choices(state.config), value=None, label=t("目录中的模型"),
                                       elem_id="chat-models-pick")
                cat_info = gr.Markdown(elem_id="chat-models-info")
                with gr.Row():
                    cat_size = gr.Button(t("查询大小"), size="sm", elem_id="chat-models-size")
                    cat_pull = gr.Button(t("下载"), size="sm", variant="primary", elem_id="chat-models-pull")
                    cat_use = gr.Button(t("使用此模型"), size="sm", interactive=False, elem_id="chat-models-use")
                cat_status = gr.Markdown(elem_id="chat-models-status")
            detect_btn = gr.Button(t("检测鬼探头"), variant="primary", elem_id="chat-detect",
                                   interactive=init_detect_ok)
            with gr.Accordion(t("引擎状态"), open=False, elem_id="chat-engines"):
                engines_md = gr.Markdown()
        with gr.Column(scale=3):
            status = gr.Markdown(elem_id="chat-status")
            chatbot = gr.Chatbot(label=t("对话"), height=380, elem_id="chat-chatbot", feedback_options=None,
                                 buttons=["copy"])
            cannot = gr.Markdown(("⚠️ " + MSG.escape_md(init_cannot)) if init_cannot else "", visible=bool(init_cannot),
                                 elem_id="chat-cannot")
            need_video = gr.Markdown(t(NEED_VIDEO_MD) if init_need else "", visible=bool(init_need), elem_id="chat-need-video")
            with gr.Row():
                question = gr.Textbox(show_label=False, placeholder=t(QUESTION_PLACEHOLDER), scale=5,
                                      elem_id="chat-input", lines=1, interactive=init_chat_ok)
                send = gr.Button(t("发送"), variant="primary", scale=0, min_width=70, elem_id="chat-send",
                                 interactive=init_chat_ok)
                stop = gr.Button(t("停止"), variant="stop", scale=0, min_width=70, elem_id="chat-stop")
                clear = gr.Button(t("新对话"), scale=0, min_width=96, elem_id="chat-clear")
            gr.Markdown(t("#### 检测结果"))
            card = gr.HTML(NO_VERDICT, elem_id="verdict-card")
            with gr.Row():
                onset_btn = gr.Button(t("跳到出现时间"), visible=False, size="sm", scale=0, min_width=140,
                                      elem_id="chat-onset")
                onset_val = gr.Number(value=None, visible="hidden", elem_id="chat-onset-value")
            call_md = gr.Markdown(elem_id="chat-call")
            with gr.Accordion(t("原始输出"), open=False, elem_id="verdict-raw"):
                # a fixed, scrolling box: one long line of JSON must not stretch the page
                raw = gr.Code(value="", language=None, lines=6, max_lines=12, interactive=False, wrap_lines=True,
                              elem_id="chat-raw")
            track = gr.Plot(label=t("逐帧得分"), visible=False, elem_id="chat-track")
            with gr.Accordion(t("该视频的历史对话"), open=True, elem_id="chat-history-box"):
                hist = gr.Dataframe(headers=HISTORY_HEADERS, value=[], interactive=False, wrap=True,
                                    elem_id="chat-history")

    # -- handlers --------------------------------------------------------------------------------------
    def _fail(e: BaseException, what_key: str, lang: str) -> str:
        if not is_user_error(e):
            log.exception("%s failed", what_key)
            return "⚠️ " + MSG.escape_md(_m("chat_failed", lang, what=_m(what_key, lang), error=MSG.error_text(e, lang)))
        return MSG.error_md(e, lang)

    def _ok(text: str) -> str:
        return "✅ " + MSG.escape_md(text)

    def _warn(text: str) -> str:
        return "⚠️ " + MSG.escape_md(text)

    def _engine_controls(name: str, model_text: str, lang: str, video_id: str | None):
        """(engine line, cannot-chat line, need-a-video line, question, send, detect) for an engine, a model and
        the picked video (none: everything off, one sentence saying to pick one)."""
        row, eng = _engine_state(name, model_text)
        why = cannot_chat_text(name, eng, row["available"], str(row["reason"]), lang) if name else None
        need, chat_ok, detect_ok = controls_state(video_id, why, bool(row["available"]), lang)
        return (engine_info_md(row, lang) if name else "",
                gr.update(value=_warn(why) if why else "", visible=bool(why)),
                gr.update(value=_warn(need) if need else "", visible=bool(need)),
                gr.update(interactive=chat_ok), gr.update(interactive=chat_ok),
                gr.update(interactive=detect_ok))

    def on_engine(name: str, pending: str, video_id: str, request: gr.Request):
        lang = _lang(request)
        if not name:
            return gr.skip(), "", gr.skip(), gr.skip(), *_engine_controls("", "", lang, video_id)[1:], ""
        m = pending or D.default_model(name)
        cls = all_engines().get(name)
        info, *rest = _engine_controls(name, m, lang, video_id)
        return (m, info, gr.update(value=frames_default(cls), info=sampling_note(cls, lang)), gr.skip(), *rest, "")

    def on_model(name: str, m: str, video_id: str, request: gr.Request):
        lang = _lang(request)
        if not name:
            return gr.skip(), *_engine_controls("", "", lang, video_id)[1:]
        return _engine_controls(name, m, lang, video_id)

    def on_video(video_id: str, request: gr.Request):
        lang = _lang(request)
        empty = ([], "", no_verdict_html(lang), gr.update(visible=False), None, "", "", gr.update(value=None, visible=False))
        if not video_id:
            return None, *empty, [], [], ""
        try:
            playable = str(state.library.playable(video_id))
            msg = ""
        except Exception as e:
            playable, msg = None, _fail(e, "chat_what_open", lang)
        rows, ids = history_rows(state.store, video_id, lang)
        return (playable, *empty[:1], msg, *empty[2:], gr.update(value=rows, headers=history_headers(lang)), ids, "")

    def on_refresh(current: str, current_engine: str, lib_current: str, seen: str, request: gr.Request):
        from engines.registry import engine_status

        lang = _lang(request)
        try:
            state.library.scan()
        except Exception as e:
            log.warning("library scan failed: %s", e)
        choices = video_choices()
        value = current
        if lib_current and lib_current != seen and lib_current in choices:
            value = lib_current  # the video just opened in the Library tab
        rows = engine_status(local_only=True)
        pc, _ = prompt_choices()
        eng_update = gr.update(choices=engine_choices(rows, lang))
        by_name = {r["name"]: r for r in rows}
        if current_engine not in by_name or not by_name[current_engine]["available"]:
            # an engine that cannot run here is no useful default: the configured one, else the first that can
            ready = [r["name"] for r in rows if r["available"]]
            if ready:
                eng_update = gr.update(choices=engine_choices(rows, lang),
                                       value=default_engine if default_engine in ready else ready[0])
        return (gr.update(choices=choices, value=value if value in choices else None),
                eng_update, engines_table_md(rows, lang),
                gr.update(choices=pc), lib_current or seen, gr.update(choices=catalogue_choices(state.config, lang)))

    def on_tab_lang(cid: str, video_id: str, eng: str, request: gr.Request):
        """Language-dependent first content of the tab (its static labels translate through gr.I18n)."""
        lang = _lang(request)
        rows, ids = history_rows(state.store, video_id, lang) if video_id else ([], [])
        card_update = gr.skip() if cid else no_verdict_html(lang)
        cls = all_engines().get(eng) if eng else None
        return (card_update, gr.update(value=rows, headers=history_headers(lang)), ids,
                gr.update(info=sampling_note(cls, lang)) if cls else gr.skip())

    def on_upload(file, request: gr.Request):
        lang = _lang(request)
        if file is None:
            return gr.skip(), gr.skip(), None
        path = Path(file if isinstance(file, str) else file.name)
        try:
            row, new = state.library.add_upload(path, path.name)
        except Exception as e:
            return gr.skip(), _fail(e, "chat_what_upload", lang), None
        msg = _m("chat_uploaded" if new else "chat_upload_known", lang, v=row["video_id"])
        return gr.update(choices=video_choices(), value=row["video_id"]), _ok(msg), None

    def _frames_arg(n) -> int | None:
        try:
            n = int(n or 0)
        except (TypeError, ValueError):
            return None
        return n if n > 0 else None

    def _options(max_new_tokens) -> GenerationOptions:
        return GenerationOptions(max_new_tokens=int(max_new_tokens or 512))

    def _transcript(cid: str, lang: str) -> list[dict[str, str]]:
        from reports.chats import turns

        return turns_to_messages(turns(state.store, cid), lang) if cid else []

    def on_send(q: str, cid: str, video_id: str, eng: str, m: str, n_frames, max_new_tokens, request: gr.Request):
        import time as _time
        import uuid

        lang = _lang(request)
        q = (q or "").strip()
        cid = cid or uuid.uuid4().hex
        shown = _transcript(cid, lang)
        if not video_id:
            yield shown, gr.skip(), _warn(_m("chat_pick_video", lang)), cid, gr.skip(), gr.skip()
            return
        try:
            path = str(state.library.path(video_id))
        except Exception as e:
            yield shown, gr.skip(), _fail(e, "chat_what_open", lang), cid, gr.skip(), gr.skip()
            return
        turn = D.ChatTurn(state.store, engine=eng, model=m, video=path, video_id=video_id, question=q, chat_id=cid,
                          frames=_frames_arg(n_frames), options=_options(max_new_tokens))
        pending = [{"role": "user", "content": q or _m("chat_default_q", lang)}, {"role": "assistant", "content": ""}]
        yield [*shown, *pending], "", _ok(_m("chat_answering", lang, engine=eng)), cid, gr.skip(), gr.skip()
        last = _time.monotonic()
        msg = ""
        it = iter(turn)
        try:
            for _piece in it:
                now = _time.monotonic()
                if now - last >= STREAM_EVERY_S:
                    last = now
                    pending = [{"role": "user", "content": turn.question or q}, {"role": "assistant", "content": turn.answer}]
                    yield [*shown, *pending], gr.skip(), gr.skip(), cid, gr.skip(), gr.skip()
            line = call_line(turn.call.to_dict() if turn.call else None, eng,
                             (turn.call.model if turn.call else None) or m, turn.prompt_ref, lang=lang)
            msg = _ok(line.removeprefix("⏱ ") + _m("chat_turn_n", lang, n=turn.turn))
        except Exception as e:
            msg = _fail(e, "chat_what_chat", lang)
        finally:
            it.close()  # Stop closes this generator: the turn logs its partial answer as stopped
        rows, ids = history_rows(state.store, video_id, lang)
        yield _transcript(cid, lang), gr.skip(), msg, cid, rows, ids

    def on_stop(request: gr.Request):
        return _ok(_m("chat_stopped", _lang(request)))

    def on_clear(request: gr.Request):
        lang = _lang(request)
        return [], "", _ok(_m("chat_new", lang)), no_verdict_html(lang), gr.update(visible=False), \
            None, "", "", gr.update(value=None, visible=False)

    def on_detect(video_id: str, eng: str, m: str, p: str, n_frames, max_new_tokens, cid: str, request: gr.Request):
        import uuid

        lang = _lang(request)
        cid = cid or uuid.uuid4().hex
        none = (gr.skip(),) * 6
        if not video_id:
            return (*none, _warn(_m("chat_pick_video", lang)), gr.skip(), cid, gr.skip(), gr.skip())
        try:
            path = str(state.library.path(video_id))
            out = D.run_detect(state.store, engine=eng, model=m, video=path, video_id=video_id, prompt=p,
                               frames=_frames_arg(n_frames), options=_options(max_new_tokens), chat_id=cid)
        except Exception as e:
            rows, ids = history_rows(state.store, video_id, lang)
            err_v = {"status": "error", "reason": MSG.error_text(e, "en")}
            return (verdict_card_html(err_v, lang=lang), gr.update(visible=False), None, "", "",
                    gr.update(value=None, visible=False), _fail(e, "chat_what_detect", lang), _transcript(cid, lang),
                    cid, rows, ids)
        v = out.verdict.to_dict()
        onset = v.get("onset_s")
        btn = (gr.update(value=_m("chat_jump", lang, v=float(onset)), visible=True) if onset is not None
               else gr.update(visible=False))
        fig = (gr.update(value=track_figure(out.track, onset, outcome_threshold(out), lang), visible=True)
               if out.track else gr.update(value=None, visible=False))
        label, _ = verdict_label(v, lang)
        rows, ids = history_rows(state.store, video_id, lang)
        return (verdict_card_html(v, out.prompt_ref, lang), btn, onset,
                call_line(out.call.to_dict(), out.engine, out.model, out.prompt_ref, out.prompt_hash, lang),
                out.verdict.raw or _m("chat_empty_output", lang), fig,
                _ok(_m("chat_detect_done", lang, label=label, n=out.turn)), _transcript(cid, lang), cid, rows, ids)

    def on_history(ids: list[str], evt: gr.SelectData, request: gr.Request):
        from reports.chats import turns

        lang = _lang(request)
        try:
            row = evt.index[0] if isinstance(evt.index, (list, tuple)) else evt.index
            cid = ids[int(row)]
        except (IndexError, TypeError, ValueError):
            return gr.skip(), gr.skip(), gr.skip(), gr.skip(), gr.skip(), gr.skip(), gr.skip(), gr.skip(), gr.skip()
        rows = turns(state.store, cid)
        last_det = next((r for r in reversed(rows) if r.get("kind") == "detect"), None)
        card_v, btn, onset, cl, rawv = no_verdict_html(lang), gr.update(visible=False), None, "", ""
        if last_det is not None:
            v = last_det.get("verdict") or {"status": "error", "reason": last_det.get("error") or _m("chat_unknown_error", lang)}
            card_v = verdict_card_html(v, lang=lang)
            onset = v.get("onset_s")
            if onset is not None:
                btn = gr.update(value=_m("chat_jump", lang, v=float(onset)), visible=True)
            cl = call_line(last_det, last_det.get("engine") or "", last_det.get("model"), lang=lang)
            rawv = last_det.get("answer") or ""
        msg = _ok(_m("chat_loaded", lang, cid=cid, n=len(rows)))
        return (turns_to_messages(rows, lang), cid, msg, card_v, btn, onset, cl, rawv, gr.update(value=None, visible=False))

    # -- model catalogue -------------------------------------------------------------------------------
    def on_cat_pick(name: str, request: gr.Request):
        from webapp import models as M

        lang = _lang(request)
        if not name:
            return "", gr.update(interactive=False), ""
        done = M.pulled_info(state.config, M.get(name)) is not None
        return catalogue_info_md(state.config, name, lang), gr.update(interactive=done), ""

    def on_cat_size(name: str, request: gr.Request):
        from webapp import models as M

        lang = _lang(request)
        if not name:
            return _warn(_m("cat_pick", lang)), gr.skip(), gr.skip()
        m = M.get(name)
        try:
            s = M.remote_size(state.config, m)
        except Exception as e:
            if not is_user_error(e):
                log.exception("model size failed")
            return MSG.error_md(e, lang), gr.skip(), gr.skip()
        return (_ok(_m("cat_size", lang, name=m.name, size=M.human_bytes(s["bytes"]), files=s["files"])),
                catalogue_info_md(state.config, name, lang), gr.update(choices=catalogue_choices(state.config, lang)))

    def on_cat_pull(name: str, request: gr.Request, progress=gr.Progress()):
        from webapp import models as M

        lang = _lang(request)
        skip4 = (gr.skip(), gr.skip(), gr.skip(), "")  # ... and no model to apply afterwards
        if not name:
            yield _warn(_m("cat_pick", lang)), *skip4, ""
            return
        m = M.get(name)
        done = M.pulled_info(state.config, m)
        if done is not None:
            path = str(M.local_path(state.config, m))
            yield (_ok(_m("cat_already", lang, name=m.name, path=path)), gr.skip(), gr.skip(),
                   gr.update(interactive=True), "transformers", path)
            return
        try:
            size = M.remote_size(state.config, m)
        except Exception as e:
            yield MSG.error_md(e, lang), *skip4, ""
            return
        total_h = M.human_bytes(size["bytes"])
        yield (_ok(_m("cat_size_first", lang, name=m.name, size=total_h, files=size["files"])),
               catalogue_info_md(state.config, name, lang), gr.skip(), gr.skip(), gr.skip(), gr.skip())

        def report(got: int, total: int) -> None:
            progress((got, max(total, 1)), unit="B",
                     desc=_m("cat_progress", lang, name=m.name, done=M.human_bytes(got), total=total_h))

        try:
            path = M.pull(state.config, m.name, progress=report, size=size)
        except Exception as e:
            if not is_user_error(e):
                log.exception("model pull failed")
            yield MSG.error_md(e, lang), *skip4, ""
            return
        info = M.pulled_info(state.config, m) or {}
        yield (_ok(_m("cat_pulled", lang, name=m.name, size=M.human_bytes(info.get("bytes")),
                      sec=float(info.get("seconds") or 0), path=path)),
               catalogue_info_md(state.config, name, lang), gr.update(choices=catalogue_choices(state.config, lang)),
               gr.update(interactive=True), "transformers", str(path))

    def on_cat_use(name: str, request: gr.Request):
        from webapp import models as M

        lang = _lang(request)
        if not name:
            return _warn(_m("cat_pick", lang)), gr.skip(), gr.skip()
        m = M.get(name)
        if M.pulled_info(state.config, m) is None:
            return _warn(_m("cat_not_pulled", lang)), gr.skip(), gr.skip()
        path = str(M.local_path(state.config, m))
        return _ok(_m("cat_use", lang, path=path)), "transformers", path

    # -- API for scripts ------------------------------------------------------------------------------
    def detect_video(video_id: str, engine: str = "baseline", prompt: str = "", model: str = "") -> dict:
        """Run detect prompt `prompt` (default: latest ghost_probing) with `engine` on library video `video_id`.
        Returns the verdict fields (ghost_probing, confidence, danger_level, object_type, onset_s, reason, status,
        raw) plus `call` (latency, tokens) and what identifies the run. Failures come back as status "error"."""
        try:
            path = str(state.library.path(video_id))
            out = D.run_detect(state.store, engine=engine, model=model or None, video=path, video_id=video_id,
                               prompt=prompt or None)
        except Exception as e:
            if not is_user_error(e):
                log.exception("detect_video failed")
            return _error_result(video_id, engine, MSG.error_text(e, "en"))
        return _jsonable(out.to_dict())

    def chat_history(video_id: str = "", limit: int = 20) -> list[dict]:
        """Logged chats (newest first; of one library video if `video_id`), each with its turns."""
        from reports.chats import history

        return _jsonable(history(state.store, video_id=video_id or None, limit=int(limit)))

    gr.api(detect_video, api_name="detect_video")
    gr.api(chat_history, api_name="chat_history")

    # -- wiring ---------------------------------------------------------------------------------------
    lib = shared.get("library") or {}
    lib_current = lib.get("current") or gr.State("")
    refresh_outputs = [video, engine, engines_md, prompt, lib_seen, cat_pick]
    controls = [engine_info, cannot, need_video, question, send, detect_btn]
    control_inputs = [engine, model, video]
    # the controls' gating is quick: no progress overlay over the sentence and the buttons
    hidden = {"show_progress": "hidden"}
    refresh.click(on_refresh, [video, engine, lib_current, lib_seen], refresh_outputs) \
        .then(on_model, control_inputs, controls, **hidden)
    if isinstance(tab, gr.Tab):
        tab.select(on_refresh, [video, engine, lib_current, lib_seen], refresh_outputs) \
            .then(on_model, control_inputs, controls, **hidden) \
            .then(on_tab_lang, [chat_id, video, engine], [card, hist, hist_ids, frames])
    video_outputs = [player, chatbot, status, card, onset_btn, onset_val, call_md, raw, track, hist, hist_ids, chat_id]
    video.change(on_video, [video], video_outputs)
    video.change(on_model, control_inputs, controls, **hidden)  # picked: questions/detection on; cleared: off again
    upload.upload(on_upload, [upload], [video, status, upload])
    engine.change(on_engine, [engine, pending_model, video],
                  [model, engine_info, frames, status, cannot, need_video, question, send, detect_btn, pending_model],
                  **hidden)
    model.submit(on_model, control_inputs, controls, **hidden)
    model.blur(on_model, control_inputs, controls, **hidden)
    send_inputs = [question, chat_id, video, engine, model, frames, max_new]
    send_outputs = [chatbot, question, status, chat_id, hist, hist_ids]
    ev_send = send.click(on_send, send_inputs, send_outputs)
    ev_submit = question.submit(on_send, send_inputs, send_outputs)
    ev_detect = detect_btn.click(on_detect, [video, engine, model, prompt, frames, max_new, chat_id],
                                 [card, onset_btn, onset_val, call_md, raw, track, status, chatbot, chat_id, hist,
                                  hist_ids])
    stop.click(on_stop, None, [status], cancels=[ev_send, ev_submit, ev_detect])
    clear.click(on_clear, None, [chatbot, chat_id, status, card, onset_btn, onset_val, call_md, raw, track])
    hist.select(on_history, [hist_ids], [chatbot, chat_id, status, card, onset_btn, onset_val, call_md, raw, track])
    onset_btn.click(None, [onset_val], None, js=SEEK_JS)

    cat_pick.change(on_cat_pick, [cat_pick], [cat_info, cat_use, cat_status])
    cat_size.click(on_cat_size, [cat_pick], [cat_status, cat_info, cat_pick])

    def _apply_model(eng_name: str, path: str, current_engine: str, video_id: str, request: gr.Request):
        """After a pull or "use": select the transformers engine with that folder. When the engine is already
        transformers its change event does not fire, so the model and the controls are set here."""
        n = len(controls)
        if not path:
            return gr.skip(), gr.skip(), gr.skip(), *(gr.skip(),) * n
        if current_engine == eng_name:
            return gr.skip(), path, "", *_engine_controls(eng_name, path, _lang(request), video_id)
        return eng_name, gr.skip(), path, *(gr.skip(),) * n

    picked_engine = gr.State("")
    picked_model = gr.State("")
    apply_outputs = [engine, model, pending_model, *controls]
    cat_pull.click(on_cat_pull, [cat_pick], [cat_status, cat_info, cat_pick, cat_use, picked_engine, picked_model]) \
        .then(_apply_model, [picked_engine, picked_model, engine, video], apply_outputs, **hidden)
    cat_use.click(on_cat_use, [cat_pick], [cat_status, picked_engine, picked_model]) \
        .then(_apply_model, [picked_engine, picked_model, engine, video], apply_outputs, **hidden)
    return {"video": video, "player": player, "engine": engine, "chatbot": chatbot, "status": status,
            "card": card, "chat_id": chat_id, "video_choices": video_choices}
