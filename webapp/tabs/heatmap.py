"""The 异常热力图 (Heatmap) tab: an anomaly engine over one video, as a heatmap video, a timeline, a gallery.

Pick a library video and an anomaly engine (the weights-free motion map works everywhere; AI-VAD
local or on SageMaker when installed/configured), see the time it will take, run with progress and
cancel. Results are stored per frame and per box and reused (webapp/vad.py). The Plotly timeline
shares its time axis (seconds of the source video) with the heatmap player, the same video's LLM
onset and baseline score track; clicking it seeks the player.
"""

from __future__ import annotations

import json
import logging
import math
import re
import threading
from typing import Any

import gradio as gr

from webapp import messages as MSG
from webapp.i18n import add_translations, t
from webapp.messages import escape_md, m, md
from webapp.state import AppState, is_user_error, status_md

log = logging.getLogger(__name__)

NEED_VIDEO = "⚠️ 先在上方选择一个视频，才能运行。"
add_translations({
    "异常热力图": "Heatmap",
    "异常检测引擎": "Anomaly engine",
    "采样帧率 (fps)": "Sampling rate (fps)",
    "最长边 (像素)": "Longest side (pixels)",
    "运行": "Run",
    "取消": "Cancel",
    "热力图视频": "Heatmap video",
    "逐帧异常得分": "Per-frame anomaly score",
    "最异常的帧": "Most anomalous frames",
    "判定": "Verdict",
    "重新计算（不复用已保存结果）": "Recompute (do not reuse the stored result)",
    NEED_VIDEO: "⚠️ Pick a video above first; then you can run.",
})

# run-time text, in the browser's language (webapp.messages.lang_of); zh without a request
MSG.add_messages({
    # the verdict line and its timings
    "vad_v_error": {"zh": "**判定：出错** — {reason}", "en": "**Verdict: error** — {reason}"},
    "vad_v_yes": {"zh": "**疑似鬼探头**", "en": "**Suspected ghost probing**"},
    "vad_v_no": {"zh": "**未发现鬼探头**", "en": "**No ghost probing found**"},
    "vad_v_line": {"zh": "{yes} · 置信度 {conf:.2f}{onset}", "en": "{yes} · confidence {conf:.2f}{onset}"},
    "vad_v_onset": {"zh": " · 峰值时间 {t:.2f} s", "en": " · peak at {t:.2f} s"},
    "vad_t_decode": {"zh": "解码 {s:.2f} s", "en": "decode {s:.2f} s"},
    "vad_t_detect": {"zh": "检测 {s:.2f} s", "en": "detect {s:.2f} s"},
    "vad_t_response": {"zh": "响应 #{id}", "en": "response #{id}"},
    "vad_t_reused": {"zh": "（复用已保存结果）", "en": " (stored result reused)"},
    # the timeline
    "vad_f_score": {"zh": "异常得分", "en": "Anomaly score"},
    "vad_f_score_of": {"zh": "异常得分 ({engine})", "en": "Anomaly score ({engine})"},
    "vad_f_threshold": {"zh": "阈值 {v:.2f}", "en": "threshold {v:.2f}"},
    "vad_f_peak": {"zh": "异常峰值 {v:.1f} s", "en": "anomaly peak {v:.1f} s"},
    "vad_f_baseline": {"zh": "基线得分 (右轴)", "en": "Baseline score (right axis)"},
    "vad_f_baseline_axis": {"zh": "基线", "en": "Baseline"},
    "vad_f_llm_onset": {"zh": "{engine} 出现 {v:.1f} s", "en": "{engine} onset {v:.1f} s"},
    "vad_f_time": {"zh": "时间 (s)", "en": "Time (s)"},
    "vad_random_weights": {"zh": "随机权重：得分没有意义", "en": "Random weights: the scores are meaningless"},
    # the run's status line
    "vad_s_pick_video": {"zh": "请先选择一个视频。", "en": "Pick a video first."},
    "vad_s_no_engine": {"zh": "没有可用的异常检测引擎。", "en": "No anomaly engine is available."},
    "vad_s_failed": {"zh": "运行失败：{err}", "en": "The run failed: {err}"},
    "vad_s_reused": {"zh": "复用已保存的结果。", "en": "Reused the stored result."},
    "vad_s_done": {"zh": "完成，结果已保存。", "en": "Done; the result is stored."},
    "vad_s_error": {"zh": "检测出错，未生成热力图。", "en": "The detection failed; no heatmap was made."},
    "vad_s_random": {"zh": " 随机权重：得分没有意义。", "en": " Random weights: the scores are meaningless."},
    "vad_s_not_running": {"zh": "没有正在运行的检测。", "en": "No detection is running."},
    "vad_s_cancelling": {"zh": "正在取消…", "en": "Cancelling…"},
    # the engine panel and the estimate
    "vad_e_info": {"zh": "{mark} **{title}** — {why}", "en": "{mark} **{title}** — {why}"},
    "vad_title_motion": {"zh": "运动异常图 (CPU, 无需权重)", "en": "Motion anomaly map (CPU, no weights)"},
    "vad_title_aivad": {"zh": "AI-VAD 异常检测 (anomalib, 本地)", "en": "AI-VAD anomaly detection (anomalib, local)"},
    "vad_title_sagemaker": {"zh": "AI-VAD 异常检测 (SageMaker 端点)",
                            "en": "AI-VAD anomaly detection (SageMaker endpoint)"},
    "vad_est_reuse": {"zh": "♻️ 已有同一视频、引擎与设置的结果：运行将直接复用，不再计算。",
                      "en": "♻️ A result for this video, engine and settings exists: Run reuses it without computing."},
    "vad_est": {"zh": "⏳ 预计耗时约 {dur}（{secs:.1f} 秒视频，{where}）。",
                "en": "⏳ Expected to take about {dur} ({secs:.1f} s of video, {where})."},
    # the engine's verdict reason (engines/vad/verdict.py writes it in Chinese), in English
    "vad_r_where_path": {"zh": "本车路径内", "en": "inside the ego path"},
    "vad_r_where_frame": {"zh": "画面中", "en": "in the frame"},
    "vad_r_yes": {"zh": "在 {t} 秒，{where}的异常得分达到 {peak} ≥ 阈值 {thr}（规则 {rule}：路径内峰值），判定为疑似鬼探头。",
                  "en": "At {t} s the anomaly score {where} reached {peak} ≥ threshold {thr} (rule {rule}: in-path "
                        "peak): suspected ghost probing."},
    "vad_r_no": {"zh": "{where}的最高异常得分 {peak}（{t} 秒）< 阈值 {thr}（规则 {rule}），未发现鬼探头。",
                 "en": "The highest anomaly score {where} was {peak} (at {t} s) < threshold {thr} (rule {rule}): "
                       "no ghost probing found."},
    "vad_r_no_blob": {"zh": "没有检测到独立于本车运动的目标，", "en": "No object moving independently of the car was found."},
    # gallery captions (engines/vad/heatmap.py writes "<t> s · 得分 <s> · <n> 框")
    "vad_c_score": {"zh": "得分 {s}", "en": "score {s}"},
    "vad_c_box": {"zh": "{n} 框", "en": "{n} box"},
    "vad_c_boxes": {"zh": "{n} 框", "en": "{n} boxes"},
})

_NUM = r"[-+\w.]+"  # a number as the engine formats it (nan/inf included)
_REASON_YES = re.compile(rf"在 (?P<t>{_NUM}) 秒，(?P<where>本车路径内|画面中)的异常得分达到 (?P<peak>{_NUM}) ≥ 阈值 "
                         rf"(?P<thr>{_NUM})（规则 (?P<rule>[^：）]+)：路径内峰值），判定为疑似鬼探头。")
_REASON_NO = re.compile(rf"(?P<where>本车路径内|画面中)的最高异常得分 (?P<peak>{_NUM})（(?P<t>{_NUM}) 秒）< 阈值 "
                        rf"(?P<thr>{_NUM})（规则 (?P<rule>[^）]+)），未发现鬼探头。")
_CAVEAT = re.compile(r"（([^（）]*?) / ([^（）]*)）")  # "（中文 / English）" notes after the sentence
_CJK = re.compile(r"[\u4e00-\u9fff]")


def reason_text(reason: str | None, lang: str | None = "zh") -> str:
    """An anomaly verdict's reason in ``lang``: stored as the engine wrote it (Chinese, with bilingual
    notes); for English the known sentence is rewritten and each note keeps its English half. A reason in
    English (a backend error) is translated for Chinese readers by webapp.messages."""
    s = (reason or "").strip()
    if MSG.norm(lang) == "zh":
        return MSG.translate(s, "zh") if s and not _CJK.search(s) else s
    if not _CJK.search(s):
        return s
    out = []
    rest = s
    head = m("vad_r_no_blob", "zh")
    if rest.startswith(head):
        out.append(m("vad_r_no_blob", "en"))
        rest = rest[len(head):]
    for rx, key in ((_REASON_YES, "vad_r_yes"), (_REASON_NO, "vad_r_no")):
        mm = rx.match(rest)
        if mm:
            g = mm.groupdict()
            where = m("vad_r_where_path" if g["where"] == "本车路径内" else "vad_r_where_frame", "en")
            out.append(m(key, "en", t=g["t"], where=where, peak=g["peak"], thr=g["thr"], rule=g["rule"]))
            rest = rest[mm.end():]
            break
    else:
        return s  # a sentence this tab does not know: shown as written
    notes = [en.strip() for _, en in _CAVEAT.findall(rest)]
    if _CAVEAT.sub("", rest).strip():  # something else after the sentence: keep it as written
        notes.append(_CAVEAT.sub("", rest).strip())
    return " ".join(out) + (" (" + "; ".join(notes) + ")" if notes else "")


def caption_text(cap: str, lang: str | None = "zh") -> str:
    """A gallery caption (``<t> s · 得分 <s> · <n> 框 · random weights: …``) in ``lang``."""
    from engines.vad.heatmap import RANDOM_WEIGHTS_BANNER

    out = []
    for part in cap.split(" · "):
        mm = re.fullmatch(r"得分 (\S+)", part) or re.fullmatch(r"score (\S+)", part)
        mb = re.fullmatch(r"(\d+) 框", part) or re.fullmatch(r"(\d+) box(?:es)?", part)
        if mm:
            part = m("vad_c_score", lang, s=mm.group(1))
        elif mb:
            part = m("vad_c_box" if mb.group(1) == "1" else "vad_c_boxes", lang, n=mb.group(1))
        elif part == RANDOM_WEIGHTS_BANNER:
            part = m("vad_random_weights", lang)
        out.append(part)
    return " · ".join(out)


def engine_title(name: str, cls: Any, lang: str | None = "zh") -> str:
    """The engine's title: its own (Chinese) in zh; the catalogue's English where there is one."""
    own = getattr(cls, "title", "") or name
    key = f"vad_title_{name}"
    return m(key, "en") if MSG.norm(lang) == "en" and key in MSG.CATALOGUE else own


def estimate_basis(name: str, eng: Any, lang: str | None = "zh") -> str:
    """How the estimate was made: the engine's own words in zh, the catalogue's in English."""
    own = getattr(eng, "estimate_basis", None)
    if MSG.norm(lang) == "zh":
        return own or m("vad_basis_default", "zh")
    key = f"vad_basis_{name}" if own else "vad_basis_default"
    if key in MSG.CATALOGUE:
        return m(key, "en")
    return own if not _CJK.search(own or "") else m("vad_basis_default", "en")

SEEK_ATTACH_JS = """() => {
  const attach = () => {
    document.querySelectorAll('#vad-timeline .js-plotly-plot').forEach((gd) => {
      if (gd.__vadSeek || typeof gd.on !== 'function') return;
      gd.__vadSeek = true;
      gd.on('plotly_click', (ev) => {
        const x = ev && ev.points && ev.points.length ? Number(ev.points[0].x) : NaN;
        const v = document.querySelector('#vad-player video');
        if (v && !Number.isNaN(x)) { v.pause(); v.currentTime = x; window.__vadSeek = x; }
      });
    });
  };
  let n = 0;
  const timer = setInterval(() => { attach(); if (++n > 60) clearInterval(timer); }, 250);
  return [];
}"""

_CANCELS: dict[str, threading.Event] = {}
_CANCELS_LOCK = threading.Lock()


def timeline_figure(track: list[tuple[float, float]], threshold: float | None, onset_s: float | None = None,
                    others: dict[str, Any] | None = None, random_weights: bool = False, engine: str = "",
                    lang: str | None = "zh"):
    """Per-frame anomaly scores with the threshold; the baseline's track (right axis) and the LLM
    onset on the same time axis when they exist. Every name, title and note in ``lang``."""
    import plotly.graph_objects as go

    others = others or {}
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=[float(a) for a, _ in track], y=[float(b) for _, b in track], mode="lines+markers",
                             name=m("vad_f_score_of", lang, engine=engine) if engine else m("vad_f_score", lang),
                             line={"width": 2},
                             marker={"size": 5}))
    if threshold is not None and math.isfinite(threshold):
        fig.add_hline(y=threshold, line_dash="dash", line_color="#dc2626", annotation_text=m("vad_f_threshold", lang, v=threshold))
    if onset_s is not None:
        fig.add_vline(x=float(onset_s), line_dash="dot", line_color="#2563eb",
                      annotation_text=m("vad_f_peak", lang, v=float(onset_s)))
    b = others.get("baseline")
    if b:
        fig.add_trace(go.Scatter(x=[float(a) for a, _ in b["track"]], y=[float(s) for _, s in b["track"]],
                                 mode="lines", name=m("vad_f_baseline", lang), yaxis="y2",
                                 line={"width": 1, "dash": "dot", "color": "#16a34a"}))
    llm = others.get("llm")
    if llm:
        fig.add_vline(x=float(llm["onset_s"]), line_dash="dashdot", line_color="#9333ea",
                      annotation_text=m("vad_f_llm_onset", lang, engine=llm["engine"], v=float(llm["onset_s"])),
                      annotation_position="bottom right")
    title = m("vad_random_weights", lang) if random_weights else None
    fig.update_layout(height=280, margin={"l": 44, "r": 44, "t": 30 if title else 16, "b": 36},
                      xaxis_title=m("vad_f_time", lang), yaxis_title=m("vad_f_score", lang),
                      template="plotly_white", hovermode="x",
                      clickmode="event", title=title, legend={"orientation": "h", "y": -0.3},
                      yaxis2={"overlaying": "y", "side": "right", "showgrid": False, "title": m("vad_f_baseline_axis", lang)} if b else None)
    return fig


def verdict_md(result: Any, cached: bool, outcome: Any, lang: str | None = "zh") -> str:
    """The verdict line, the reason (escaped: Markdown shows it literally) and the measured timings, in ``lang``."""
    v = result.verdict
    if v.status != "ok":
        return m("vad_v_error", lang, reason=escape_md(reason_text(v.reason, lang)))
    yes = m("vad_v_yes" if v.ghost_probing else "vad_v_no", lang)
    onset = m("vad_v_onset", lang, t=v.onset_s) if v.onset_s is not None else ""
    line = m("vad_v_line", lang, yes=yes, conf=v.confidence, onset=onset) + "\n\n" + escape_md(reason_text(v.reason, lang))
    parts = []
    if outcome.decode_s is not None:
        parts.append(m("vad_t_decode", lang, s=outcome.decode_s))
    if outcome.detect_s is not None:
        parts.append(m("vad_t_detect", lang, s=outcome.detect_s))
    parts.append(m("vad_t_response", lang, id=outcome.response_id) + (m("vad_t_reused", lang) if cached else ""))
    return line + "\n\n⏱ " + " · ".join(parts)


def build(state: AppState, shared: dict[str, dict] | None = None) -> dict[str, Any]:
    from webapp import vad as V

    tab = gr.context.get_render_context()
    engines = V.anomaly_engines()
    names = list(engines)
    default = "motion" if "motion" in engines else (names[0] if names else None)

    def video_choices() -> list[str]:
        return [r["video_id"] for r in state.library.videos()]

    def default_fps(name: str | None) -> float:
        cls = engines.get(name or "")
        return float((getattr(cls, "default_sampling", {}) or {}).get("fps") or 10)

    with gr.Row():
        with gr.Column(scale=2):
            with gr.Row():
                video = gr.Dropdown(choices=video_choices(), value=None, label=t("选择视频"), scale=4,
                                    filterable=True, elem_id="vad-video")
                refresh = gr.Button(t("刷新"), scale=0, min_width=60, elem_id="vad-refresh")
            engine = gr.Dropdown(choices=names, value=default, label=t("异常检测引擎"), elem_id="vad-engine")
            engine_info = gr.Markdown(elem_id="vad-engine-info")
            with gr.Row():
                fps = gr.Slider(1, 15, step=1, value=default_fps(default), label=t("采样帧率 (fps)"),
                                elem_id="vad-fps")
                max_side = gr.Slider(160, 960, step=16, value=480, label=t("最长边 (像素)"), elem_id="vad-max-side")
            recompute = gr.Checkbox(value=False, label=t("重新计算（不复用已保存结果）"), elem_id="vad-recompute")
            estimate = gr.Markdown(elem_id="vad-estimate")
            need_video = gr.Markdown(t(NEED_VIDEO), elem_id="vad-need-video")  # Run is off until one is picked
            with gr.Row():
                run_btn = gr.Button(t("运行"), variant="primary", elem_id="vad-run", interactive=False)
                cancel_btn = gr.Button(t("取消"), variant="stop", elem_id="vad-cancel")
            status = gr.Markdown(elem_id="vad-status")
            verdict = gr.Markdown(elem_id="vad-verdict")
        with gr.Column(scale=3):
            player = gr.Video(label=t("热力图视频"), interactive=False, autoplay=False, elem_id="vad-player")
            timeline = gr.Plot(label=t("逐帧异常得分"), elem_id="vad-timeline")
    gallery = gr.Gallery(label=t("最异常的帧"), columns=6, height=220, elem_id="vad-gallery", object_fit="contain")

    def on_engine(name: str, video_id: str, f, ms, request: gr.Request = None):
        lang = MSG.lang_of(request)
        cls = engines.get(name or "")
        if cls is None:
            return status_md(m("vad_s_no_engine", lang), ok=False), gr.update(), ""
        try:
            ok, why = cls().availability()
            why = MSG.translate(why, lang)
        except Exception as e:
            ok, why = False, MSG.error_text(e, lang)
        info = md("vad_e_info", lang, mark="✅" if ok else "⚠️", title=engine_title(name, cls, lang), why=why)
        return info, gr.update(value=default_fps(name)), on_estimate(video_id, name, default_fps(name), ms, request)

    def on_estimate(video_id: str, name: str, f, ms, request: gr.Request = None) -> str:
        lang = MSG.lang_of(request)
        if not video_id or not name or name not in engines:
            return ""
        try:
            from engines.registry import get_engine
            from engines.video import probe
            from reports import vad

            path = state.library.path(video_id)
            eng = get_engine(name)
            sampling = V.sampling_for(engines[name], f, ms)
            meta = probe(path)
            try:
                from engines.video import sha256_file

                if vad.find(state.store, eng.identity(sampling=sampling).cache_key(sha256_file(path))) is not None:
                    return m("vad_est_reuse", lang)
            except Exception:
                pass
            est = V.estimate_s(eng, meta.duration_s, sampling)
            return md("vad_est", lang, dur=V.fmt_duration(est, lang), secs=meta.duration_s,
                      where=estimate_basis(name, eng, lang)) if est else ""
        except Exception as e:
            return MSG.error_md(e, lang)

    def on_refresh(current: str):
        try:
            state.library.scan()
        except Exception as e:
            log.warning("library scan failed: %s", e)
        ch = video_choices()
        return gr.update(choices=ch, value=current if current in ch else None)

    def on_run(video_id: str, name: str, f, ms, again: bool, request: gr.Request, progress=gr.Progress()):
        lang = MSG.lang_of(request)
        sid = getattr(request, "session_hash", None) or "default"
        ev = threading.Event()
        with _CANCELS_LOCK:
            _CANCELS[sid] = ev
        empty = (None, None, [])
        if not video_id:
            return (status_md(m("vad_s_pick_video", lang), ok=False), "", *empty)
        if not name:
            return (status_md(m("vad_s_no_engine", lang), ok=False), "", *empty)
        try:
            path = state.library.path(video_id)
            out = V.run_heatmap(state.store, state.config.cache_dir, path, video_id, name, fps=f, max_side=ms,
                                progress=lambda frac, msg: progress(frac, desc=msg), cancel=ev, reuse=not again,
                                lang=lang)
        except Exception as e:
            if not is_user_error(e):
                log.exception("heatmap run failed")
                return (status_md(md("vad_s_failed", lang, err=MSG.error_text(f"{type(e).__name__}: {e}", lang)),
                                  ok=False), "", *empty)
            return (MSG.error_md(e, lang), "", *empty)
        finally:
            with _CANCELS_LOCK:
                if _CANCELS.get(sid) is ev:
                    _CANCELS.pop(sid, None)
        r = out.result
        others = V.other_tracks(state.store, video_id)
        fig = timeline_figure(r.track, r.threshold, r.verdict.onset_s, others, r.random_weights, r.engine,
                              lang=lang) if r.track else None
        ok = r.verdict.status == "ok"
        msg = m(("vad_s_reused" if out.cached else "vad_s_done") if ok else "vad_s_error", lang)
        if r.random_weights:
            msg += m("vad_s_random", lang)
        gallery_items = [(p, caption_text(c, lang)) for p, c in out.gallery]
        return (status_md(msg, ok=ok), verdict_md(r, out.cached, out, lang),
                str(out.video) if out.video else None, fig, gallery_items)

    def on_cancel(request: gr.Request):
        sid = getattr(request, "session_hash", None) or "default"
        with _CANCELS_LOCK:
            ev = _CANCELS.get(sid)
        lang = MSG.lang_of(request)
        if ev is None:
            return status_md(m("vad_s_not_running", lang), ok=False)
        ev.set()
        return status_md(m("vad_s_cancelling", lang), ok=False)

    def heatmap_result(video_id: str, engine: str = "motion") -> dict:
        """Latest stored anomaly result of a video for an engine (API: frames, boxes, verdict)."""
        from reports import vad

        rows = vad.latest_for_video(state.store, video_id, engine)
        if not rows:
            return {}
        r = vad.load(state.store, rows[0]["response_id"])
        return json.loads(json.dumps({
            "response_id": r.response_id, "engine": r.engine, "verdict": r.verdict.to_dict(), "track": r.track,
            "boxes": [b.to_dict() for b in r.artifacts.boxes], "threshold": r.threshold,
            "maps": list(getattr(r.artifacts.maps, "shape", ())), "random_weights": r.random_weights}, default=str))

    gr.api(heatmap_result, api_name="heatmap_result")
    def on_pick(video_id: str, name: str):
        return gr.update(interactive=bool(video_id and name)), gr.update(visible=not video_id)

    engine.change(on_engine, [engine, video, fps, max_side], [engine_info, fps, estimate])
    for comp in (video, engine):
        comp.change(on_pick, [video, engine], [run_btn, need_video])
    for comp in (video, fps, max_side):
        comp.change(on_estimate, [video, engine, fps, max_side], [estimate])
    refresh.click(on_refresh, [video], [video])
    run_btn.click(on_run, [video, engine, fps, max_side, recompute], [status, verdict, player, timeline, gallery],
                  concurrency_limit=2, concurrency_id="vad-run").then(None, None, None, js=SEEK_ATTACH_JS)
    cancel_btn.click(on_cancel, None, [status], queue=False)
    if tab is not None and hasattr(tab, "select"):
        tab.select(on_refresh, [video], [video]).then(on_engine, [engine, video, fps, max_side],
                                                      [engine_info, fps, estimate])
    return {"video": video, "engine": engine, "player": player, "timeline": timeline}
