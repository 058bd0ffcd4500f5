"""对话检测 (Chat & Detect) tab: pick a library video, watch it, chat about it with a video LLM (streamed),
and run the ghost-probing detection prompt to get a verdict card.

Every turn goes through :mod:`webapp.detection` (the same path as ``ghostprobe detect`` / ``chat``), so it
is logged to the chat log with its engine, model, revision, prompt hash, options, sampling, latency and
tokens. A failure becomes one sentence in ``#chat-status`` and an error turn in the log.
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
from webapp.i18n import add_translations, t
from webapp.state import AppState, is_user_error, status_md, user_message

log = logging.getLogger(__name__)

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
    "输入问题，回车发送（留空则使用默认问题）": "Ask a question and press Enter (empty: the default question)",
    "发送": "Send",
    "停止": "Stop",
    "新对话": "New chat",
    "检测结果": "Verdict",
    "跳到出现时间": "Jump to onset",
    "原始输出": "Raw model output",
    "逐帧得分": "Per-frame score",
    "该视频的历史对话": "Past chats about this video",
    "引擎状态": "Engine status",
    "设置": "Settings",
})

HISTORY_HEADERS = ["开始时间", "轮数", "类型", "引擎", "模型", "首个问题", "会话 ID"]
NO_VERDICT = ('<div class="verdict-card" style="color: var(--body-text-color-subdued)">'
              '尚未检测：选择视频和引擎后点击“检测鬼探头”。</div>')
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


# -- pure helpers (unit-tested) ------------------------------------------------------------------------

def engine_label(row: dict[str, Any]) -> str:
    return f"{row['name']}" + ("" if row["available"] else "（不可用）")


def engine_choices(rows: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(engine_label(r), r["name"]) for r in rows]


def engine_info_md(row: dict[str, Any] | None) -> str:
    if row is None:
        return "⚠️ 未知引擎。"
    if row["available"]:
        return f"✅ **{row['name']}** 可用：{row['reason']}"
    return f"⚠️ **{row['name']}** 不可用：{row['reason']}"


def engines_table_md(rows: list[dict[str, Any]]) -> str:
    lines = ["| 引擎 | 状态 | 说明 |", "|---|---|---|"]
    for r in rows:
        reason = str(r["reason"]).replace("|", "\\|")
        lines.append(f"| {r['name']} | {'可用' if r['available'] else '不可用'} | {reason} |")
    return "\n".join(lines)


def frames_default(engine_cls: Any) -> int:
    """The slider value for an engine: its default frame count, or 0 when it samples at a rate."""
    s = getattr(engine_cls, "default_sampling", None) or {}
    if s.get("fps"):
        return 0
    return int(s.get("num_frames") or 16)


def sampling_note(engine_cls: Any) -> str:
    s = getattr(engine_cls, "default_sampling", None) or {}
    if s.get("fps"):
        what = f"每秒 {s['fps']:g} 帧"
    else:
        what = f"均匀抽取 {s.get('num_frames') or 16} 帧"
    side = f"，长边不超过 {s['max_side']} 像素" if s.get("max_side") else ""
    return f"引擎默认采样：{what}{side}。"


def _fmt_conf(v: Any) -> str:
    return "—" if v is None else f"{float(v):.2f}"


def verdict_label(v: dict[str, Any]) -> tuple[str, str]:
    """(text, css colour) of the headline. An unparsed answer is never shown as 否."""
    status = v.get("status")
    if status == "error":
        return "出错 (error)", "#b45309"
    if status != "ok" or v.get("ghost_probing") is None:
        return "无法解析 (unparsed)", "#6b7280"
    return ("是", "#dc2626") if v["ghost_probing"] else ("否", "#16a34a")


def verdict_card_html(v: dict[str, Any], prompt_ref: str | None = None) -> str:
    """The verdict card. Every value is escaped: model output may contain anything."""
    label, colour = verdict_label(v)
    e = html.escape
    onset = v.get("onset_s")
    rows = [
        ("置信度", _fmt_conf(v.get("confidence"))),
        ("危险等级", D.DANGER_ZH.get(v.get("danger_level") or "", v.get("danger_level") or "—")),
        ("目标类型", D.OBJECT_ZH.get(v.get("object_type") or "", v.get("object_type") or "—")),
        ("出现时间", "—" if onset is None else f"{float(onset):.1f} s"),
        ("理由", v.get("reason") or "—"),
    ]
    cell = "border:none;padding:3px 14px 3px 0;vertical-align:top;background:none"
    body = "".join(f'<tr style="border:none;background:none"><th style="{cell};text-align:left;white-space:nowrap">'
                   f'{e(k)}</th><td style="{cell}" data-field="{e(k)}">{e(str(val))}</td></tr>' for k, val in rows)
    note = ""
    if v.get("status") == "error":
        note = "本次检测没有得到模型的回答，记为“出错”，不算作“否”。"
    elif label.startswith("无法解析"):
        note = ("模型的回答中读不出明确的结论，记为“无法解析（unparsed）”——不算作“否”。"
                "原始输出见下方“原始输出”。")
    note_html = f'<p class="verdict-note" style="margin:8px 0 0 0">{e(note)}</p>' if note else ""
    ref = f'<span style="float:right;font-size:12px;opacity:.7">{e(prompt_ref)}</span>' if prompt_ref else ""
    status = e(str(v.get("status") or ""))
    return (f'<div class="verdict-card" data-status="{status}">{ref}'
            f'<div style="font-size:18px;margin-bottom:6px">是否鬼探头：'
            f'<b class="verdict-answer" style="color:{colour}">{e(label)}</b></div>'
            f'<table style="border:none;border-collapse:collapse;margin:0">{body}</table>{note_html}</div>')


def verdict_short(v: dict[str, Any] | None, error: str | None = None) -> str:
    """One line for the chat transcript."""
    if v is None:
        return f"⚠️ 检测失败：{error or '未知错误'}"
    label, _ = verdict_label(v)
    bits = []
    if v.get("status") == "ok" and v.get("ghost_probing") is not None:
        if v.get("confidence") is not None:
            bits.append(f"置信度 {float(v['confidence']):.2f}")
        if v.get("onset_s") is not None:
            bits.append(f"出现时间 {float(v['onset_s']):.1f} s")
    if v.get("status") == "error":
        bits.append(str(v.get("reason") or ""))
    return f"🔍 检测结果：**{label}**" + (f"（{'，'.join(b for b in bits if b)}）" if any(bits) else "")


def turns_to_messages(rows: list[dict[str, Any]]) -> list[dict[str, str]]:
    """Logged turns → gr.Chatbot messages (role/content), errors and stops marked."""
    msgs: list[dict[str, str]] = []
    for r in rows:
        if r.get("kind") == "detect":
            msgs.append({"role": "user", "content": "🔍 检测鬼探头"})
            msgs.append({"role": "assistant", "content": verdict_short(r.get("verdict"), r.get("error"))})
            continue
        msgs.append({"role": "user", "content": r.get("question") or ""})
        answer = r.get("answer") or ""
        err = r.get("error")
        if err == D.STOPPED:
            answer = (answer + "\n\n" if answer else "") + "*（已停止）*"
        elif err:
            answer = (answer + "\n\n" if answer else "") + f"⚠️ {err}"
        msgs.append({"role": "assistant", "content": answer})
    return msgs


def call_line(call: dict[str, Any] | None, engine: str, model: str | None, prompt_ref: str | None = None,
              prompt_hash: str | None = None) -> str:
    line = D.call_line_zh(call, engine, model)
    if prompt_ref:
        line += f" · 提示词 {prompt_ref}" + (f"（{prompt_hash[:12]}）" if prompt_hash else "")
    return "⏱ " + line


def track_figure(track: list[tuple[float, float]], onset_s: float | None = None, threshold: float | None = None):
    import plotly.graph_objects as go

    xs = [float(a) for a, _ in track]
    ys = [float(b) for _, b in track]
    fig = go.Figure(go.Scatter(x=xs, y=ys, mode="lines+markers", name="得分", line={"width": 2}, marker={"size": 4}))
    if threshold is not None and math.isfinite(threshold):
        fig.add_hline(y=threshold, line_dash="dash", line_color="#dc2626", annotation_text=f"阈值 {threshold:.2f}")
    if onset_s is not None:
        fig.add_vline(x=float(onset_s), line_dash="dot", line_color="#2563eb", annotation_text=f"出现 {onset_s:.1f} s")
    fig.update_layout(height=240, margin={"l": 40, "r": 10, "t": 20, "b": 36}, xaxis_title="时间 (s)",
                      yaxis_title="得分", showlegend=False, template="plotly_white")
    return fig


def _threshold_from_raw(raw: str) -> float | None:
    try:
        d = json.loads(raw)
    except (TypeError, ValueError):
        return None
    v = d.get("threshold") if isinstance(d, dict) else None
    return float(v) if isinstance(v, (int, float)) else None


def _short_model(model: str | None) -> str:
    if not model:
        return ""
    p = Path(model)
    return p.name if p.is_absolute() else model


def history_rows(store, video_id: str) -> tuple[list[list[Any]], list[str]]:
    from reports.chats import history

    if not video_id:
        return [], []
    rows, ids = [], []
    for h in history(store, video_id=video_id, limit=50):
        first_q = next((t.get("question") for t in h["turns"] if t.get("kind") == "chat"), None)
        kinds = sorted({t.get("kind") for t in h["turns"]})
        q = first_q if first_q else "🔍 检测鬼探头"
        q = q if len(q) <= 40 else q[:40] + "…"
        started = h["started_at"]
        rows.append([started.strftime("%Y-%m-%d %H:%M:%S") if hasattr(started, "strftime") else str(started),
                     h["n_turns"], "+".join("对话" if k == "chat" else "检测" for k in kinds), h["engine"] or "",
                     _short_model(h["model"]), q, h["chat_id"]])
        ids.append(h["chat_id"])
    return rows, ids


def _jsonable(obj: Any) -> Any:
    return json.loads(json.dumps(obj, ensure_ascii=False, default=str))


def _error_result(video_id: str, engine: str, message: str) -> dict[str, Any]:
    out: dict[str, Any] = {k: None for k in D.VERDICT_FIELDS}
    out.update(status="error", reason=message, raw="", call=None, engine=engine, video_id=video_id, error=message)
    return out


# -- the tab --------------------------------------------------------------------------------------------

def build(state: AppState, shared: dict[str, dict] | None = None) -> dict[str, Any]:
    from engines.registry import all_engines
    from prompts import PromptLibrary

    shared = shared or {}
    tab = gr.context.get_render_context()
    engines = all_engines()
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

    p_choices, p_default = prompt_choices()
    v_choices = video_choices()

    chat_id = gr.State("")
    hist_ids = gr.State([])
    lib_seen = gr.State("")
    with gr.Row():
        with gr.Column(scale=2):
            with gr.Row():
                video = gr.Dropdown(choices=v_choices, value=None, label=t("选择视频"), scale=4, elem_id="chat-video",
                                    filterable=True)
                refresh = gr.Button(t("刷新"), scale=0, min_width=60, elem_id="chat-refresh")
            upload = gr.File(label=t("上传视频到视频库"), file_types=["video", ".avi", ".mkv"], height=90,
                             elem_id="chat-upload")
            player = gr.Video(label=t("播放器"), interactive=False, autoplay=False, elem_id="chat-player")
            with gr.Group():
                engine = gr.Dropdown(choices=[(n, n) for n in names], value=default_engine, label=t("引擎"),
                                     elem_id="chat-engine")
                engine_info = gr.Markdown(elem_id="chat-engine-info")
                model = gr.Textbox(value=D.default_model(default_engine) if default_engine else "", label=t("模型"),
                                   placeholder="model id / 本地文件夹 / 服务端模型名", elem_id="chat-model")
                prompt = gr.Dropdown(choices=p_choices, value=p_default, label=t("提示词版本（检测）"),
                                     elem_id="chat-prompt")
                frames = gr.Slider(0, 64, step=1, value=frames_default(engines.get(default_engine)),
                                   label=t("抽帧数（0 = 引擎默认采样）"),
                                   info=sampling_note(engines.get(default_engine)), elem_id="chat-frames")
                max_new = gr.Slider(16, 2048, step=16, value=512, label=t("回答长度上限（token）"),
                                    elem_id="chat-max-new")
            detect_btn = gr.Button(t("检测鬼探头"), variant="primary", elem_id="chat-detect")
            with gr.Accordion(t("引擎状态"), open=False, elem_id="chat-engines"):
                engines_md = gr.Markdown()
        with gr.Column(scale=3):
            status = gr.Markdown(elem_id="chat-status")
            chatbot = gr.Chatbot(label=t("对话"), height=380, elem_id="chat-chatbot", feedback_options=None,
                                 buttons=["copy"])
            with gr.Row():
                question = gr.Textbox(show_label=False, placeholder="输入问题，回车发送（留空则使用默认问题）",
                                      scale=5, elem_id="chat-input", lines=1)
                send = gr.Button(t("发送"), variant="primary", scale=0, min_width=70, elem_id="chat-send")
                stop = gr.Button(t("停止"), variant="stop", scale=0, min_width=70, elem_id="chat-stop")
                clear = gr.Button(t("新对话"), scale=0, min_width=80, elem_id="chat-clear")
            gr.Markdown("#### 检测结果")
            card = gr.HTML(NO_VERDICT, elem_id="verdict-card")
            with gr.Row():
                onset_btn = gr.Button(t("跳到出现时间"), visible=False, size="sm", scale=0, min_width=140,
                                      elem_id="chat-onset")
                onset_val = gr.Number(value=None, visible="hidden", elem_id="chat-onset-value")
            call_md = gr.Markdown(elem_id="chat-call")
            with gr.Accordion(t("原始输出"), open=False, elem_id="verdict-raw"):
                raw = gr.Code(value="", language=None, lines=6, max_lines=30, interactive=False, wrap_lines=True,
                              elem_id="chat-raw")
            track = gr.Plot(label=t("逐帧得分"), visible=False, elem_id="chat-track")
            with gr.Accordion(t("该视频的历史对话"), open=True, elem_id="chat-history-box"):
                hist = gr.Dataframe(headers=HISTORY_HEADERS, value=[], interactive=False, wrap=True,
                                    elem_id="chat-history")

    # -- handlers --------------------------------------------------------------------------------------
    def _fail(e: BaseException, what: str) -> str:
        if not is_user_error(e):
            log.exception("%s failed", what)
            return status_md(f"{what}失败：{user_message(e)}", ok=False)
        return status_md(user_message(e), ok=False)

    def _engine_row(name: str, model_text: str) -> dict[str, Any]:
        from engines.registry import get_engine

        try:
            eng = get_engine(name, model=(model_text or "").strip() or None)
            ok, reason = eng.availability()
        except Exception as e:
            ok, reason = False, user_message(e)
        return {"name": name, "available": bool(ok), "reason": reason}

    def _run_buttons(ok: bool):
        return gr.update(interactive=ok), gr.update(interactive=ok)

    def on_engine(name: str):
        if not name:
            return gr.skip(), "", gr.skip(), gr.skip(), *_run_buttons(False)
        m = D.default_model(name)
        row = _engine_row(name, m)
        cls = all_engines().get(name)
        return (m, engine_info_md(row), gr.update(value=frames_default(cls), info=sampling_note(cls)),
                gr.skip(), *_run_buttons(row["available"]))

    def on_model(name: str, m: str):
        if not name:
            return gr.skip(), *_run_buttons(False)
        row = _engine_row(name, m)
        return engine_info_md(row), *_run_buttons(row["available"])

    def on_video(video_id: str):
        empty = ([], "", NO_VERDICT, gr.update(visible=False), None, "", "", gr.update(value=None, visible=False))
        if not video_id:
            return None, *empty, [], [], ""
        try:
            playable = str(state.library.playable(video_id))
            msg = ""
        except Exception as e:
            playable, msg = None, _fail(e, "打开视频")
        rows, ids = history_rows(state.store, video_id)
        return playable, *empty[:1], msg, *empty[2:], rows, ids, ""

    def on_refresh(current: str, current_engine: str, lib_current: str, seen: str):
        from engines.registry import engine_status

        try:
            state.library.scan()
        except Exception as e:
            log.warning("library scan failed: %s", e)
        choices = video_choices()
        value = current
        if lib_current and lib_current != seen and lib_current in choices:
            value = lib_current  # the video just opened in the Library tab
        rows = engine_status()
        pc, _ = prompt_choices()
        eng_update = gr.update(choices=engine_choices(rows))
        by_name = {r["name"]: r for r in rows}
        if current_engine not in by_name or not by_name[current_engine]["available"]:
            # an engine that cannot run here is no useful default: the configured one, else the first that can
            ready = [r["name"] for r in rows if r["available"]]
            if ready:
                eng_update = gr.update(choices=engine_choices(rows),
                                       value=default_engine if default_engine in ready else ready[0])
        return (gr.update(choices=choices, value=value if value in choices else None),
                eng_update, engines_table_md(rows),
                gr.update(choices=pc), lib_current or seen)

    def on_upload(file):
        if file is None:
            return gr.skip(), gr.skip(), None
        path = Path(file if isinstance(file, str) else file.name)
        try:
            row, new = state.library.add_upload(path, path.name)
        except Exception as e:
            return gr.skip(), _fail(e, "上传"), None
        msg = f"已上传 {row['video_id']}" if new else f"该视频已在库中：{row['video_id']}（按内容识别，未重复保存）"
        return gr.update(choices=video_choices(), value=row["video_id"]), status_md(msg), None

    def _frames_arg(n) -> int | None:
        try:
            n = int(n or 0)
        except (TypeError, ValueError):
            return None
        return n if n > 0 else None

    def _options(max_new_tokens) -> GenerationOptions:
        return GenerationOptions(max_new_tokens=int(max_new_tokens or 512))

    def _transcript(cid: str) -> list[dict[str, str]]:
        from reports.chats import turns

        return turns_to_messages(turns(state.store, cid)) if cid else []

    def on_send(q: str, cid: str, video_id: str, eng: str, m: str, n_frames, max_new_tokens):
        import time as _time
        import uuid

        q = (q or "").strip()
        cid = cid or uuid.uuid4().hex
        shown = _transcript(cid)
        if not video_id:
            yield shown, gr.skip(), status_md("请先选择一个视频。", ok=False), cid, gr.skip(), gr.skip()
            return
        try:
            path = str(state.library.path(video_id))
        except Exception as e:
            yield shown, gr.skip(), _fail(e, "打开视频"), cid, gr.skip(), gr.skip()
            return
        turn = D.ChatTurn(state.store, engine=eng, model=m, video=path, video_id=video_id, question=q, chat_id=cid,
                          frames=_frames_arg(n_frames), options=_options(max_new_tokens))
        pending = [{"role": "user", "content": q or "（默认问题）"}, {"role": "assistant", "content": ""}]
        yield [*shown, *pending], "", status_md(f"{eng} 正在回答…"), cid, gr.skip(), gr.skip()
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
            msg = status_md(call_line(turn.call.to_dict() if turn.call else None, eng,
                                      (turn.call.model if turn.call else None) or m, turn.prompt_ref)
                            .removeprefix("⏱ ") + f" · 第 {turn.turn} 轮")
        except Exception as e:
            msg = _fail(e, "对话")
        finally:
            it.close()  # Stop closes this generator: the turn logs its partial answer as stopped
        rows, ids = history_rows(state.store, video_id)
        yield _transcript(cid), gr.skip(), msg, cid, rows, ids

    def on_stop():
        return status_md("已停止：已生成的部分回答已记入对话记录。")

    def on_clear():
        return [], "", status_md("已开始新的对话（上一段对话仍在历史记录中）。"), NO_VERDICT, gr.update(visible=False), \
            None, "", "", gr.update(value=None, visible=False)

    def on_detect(video_id: str, eng: str, m: str, p: str, n_frames, max_new_tokens, cid: str):
        import uuid

        cid = cid or uuid.uuid4().hex
        none = (gr.skip(),) * 6
        if not video_id:
            return (*none, status_md("请先选择一个视频。", ok=False), gr.skip(), cid, gr.skip(), gr.skip())
        try:
            path = str(state.library.path(video_id))
            out = D.run_detect(state.store, engine=eng, model=m, video=path, video_id=video_id, prompt=p,
                               frames=_frames_arg(n_frames), options=_options(max_new_tokens), chat_id=cid)
        except Exception as e:
            rows, ids = history_rows(state.store, video_id)
            err_v = {"status": "error", "reason": user_message(e)}
            return (verdict_card_html(err_v), gr.update(visible=False), None, "", "",
                    gr.update(value=None, visible=False), _fail(e, "检测"), _transcript(cid), cid, rows, ids)
        v = out.verdict.to_dict()
        onset = v.get("onset_s")
        btn = (gr.update(value=f"跳到 {float(onset):.1f} s", visible=True) if onset is not None
               else gr.update(visible=False))
        fig = (gr.update(value=track_figure(out.track, onset, _threshold_from_raw(out.verdict.raw)), visible=True)
               if out.track else gr.update(value=None, visible=False))
        label, _ = verdict_label(v)
        rows, ids = history_rows(state.store, video_id)
        return (verdict_card_html(v, out.prompt_ref), btn, onset,
                call_line(out.call.to_dict(), out.engine, out.model, out.prompt_ref, out.prompt_hash),
                out.verdict.raw or "（模型没有输出任何文字）", fig,
                status_md(f"检测完成：{label}（第 {out.turn} 轮）"), _transcript(cid), cid, rows, ids)

    def on_history(ids: list[str], evt: gr.SelectData):
        from reports.chats import turns

        try:
            row = evt.index[0] if isinstance(evt.index, (list, tuple)) else evt.index
            cid = ids[int(row)]
        except (IndexError, TypeError, ValueError):
            return gr.skip(), gr.skip(), gr.skip(), gr.skip(), gr.skip(), gr.skip(), gr.skip(), gr.skip(), gr.skip()
        rows = turns(state.store, cid)
        last_det = next((r for r in reversed(rows) if r.get("kind") == "detect"), None)
        card_v, btn, onset, cl, rawv = NO_VERDICT, gr.update(visible=False), None, "", ""
        if last_det is not None:
            v = last_det.get("verdict") or {"status": "error", "reason": last_det.get("error") or "未知错误"}
            card_v = verdict_card_html(v)
            onset = v.get("onset_s")
            if onset is not None:
                btn = gr.update(value=f"跳到 {float(onset):.1f} s", visible=True)
            cl = call_line(last_det, last_det.get("engine") or "", last_det.get("model"))
            rawv = last_det.get("answer") or ""
        msg = status_md(f"已载入对话 {cid}（{len(rows)} 轮）；继续提问会接着这段对话。")
        return (turns_to_messages(rows), cid, msg, card_v, btn, onset, cl, rawv, gr.update(value=None, visible=False))

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
            return _error_result(video_id, engine, user_message(e))
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
    refresh_outputs = [video, engine, engines_md, prompt, lib_seen]
    refresh.click(on_refresh, [video, engine, lib_current, lib_seen], refresh_outputs)
    if isinstance(tab, gr.Tab):
        tab.select(on_refresh, [video, engine, lib_current, lib_seen], refresh_outputs) \
            .then(on_model, [engine, model], [engine_info, send, detect_btn])
    video_outputs = [player, chatbot, status, card, onset_btn, onset_val, call_md, raw, track, hist, hist_ids, chat_id]
    video.change(on_video, [video], video_outputs)
    upload.upload(on_upload, [upload], [video, status, upload])
    engine.change(on_engine, [engine], [model, engine_info, frames, status, send, detect_btn])
    model.submit(on_model, [engine, model], [engine_info, send, detect_btn])
    model.blur(on_model, [engine, model], [engine_info, send, detect_btn])
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
    return {"video": video, "player": player, "engine": engine, "chatbot": chatbot, "status": status,
            "card": card, "chat_id": chat_id}
