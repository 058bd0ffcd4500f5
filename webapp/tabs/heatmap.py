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
import threading
from typing import Any

import gradio as gr

from webapp.i18n import add_translations, t
from webapp.state import AppState, is_user_error, status_md, user_message

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
                    others: dict[str, Any] | None = None, random_weights: bool = False, engine: str = ""):
    """Per-frame anomaly scores with the threshold; the baseline's track (right axis) and the LLM
    onset on the same time axis when they exist."""
    import plotly.graph_objects as go

    others = others or {}
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=[float(a) for a, _ in track], y=[float(b) for _, b in track], mode="lines+markers",
                             name=f"异常得分 ({engine})" if engine else "异常得分", line={"width": 2},
                             marker={"size": 5}))
    if threshold is not None and math.isfinite(threshold):
        fig.add_hline(y=threshold, line_dash="dash", line_color="#dc2626", annotation_text=f"阈值 {threshold:.2f}")
    if onset_s is not None:
        fig.add_vline(x=float(onset_s), line_dash="dot", line_color="#2563eb",
                      annotation_text=f"异常峰值 {onset_s:.1f} s")
    b = others.get("baseline")
    if b:
        fig.add_trace(go.Scatter(x=[float(a) for a, _ in b["track"]], y=[float(s) for _, s in b["track"]],
                                 mode="lines", name="基线得分 (右轴)", yaxis="y2",
                                 line={"width": 1, "dash": "dot", "color": "#16a34a"}))
    llm = others.get("llm")
    if llm:
        fig.add_vline(x=float(llm["onset_s"]), line_dash="dashdot", line_color="#9333ea",
                      annotation_text=f"{llm['engine']} 出现 {llm['onset_s']:.1f} s", annotation_position="bottom right")
    title = "随机权重：得分没有意义 / random weights: scores are meaningless" if random_weights else None
    fig.update_layout(height=280, margin={"l": 44, "r": 44, "t": 30 if title else 16, "b": 36},
                      xaxis_title="时间 (s)", yaxis_title="异常得分", template="plotly_white", hovermode="x",
                      clickmode="event", title=title, legend={"orientation": "h", "y": -0.3},
                      yaxis2={"overlaying": "y", "side": "right", "showgrid": False, "title": "基线"} if b else None)
    return fig


def verdict_md(result: Any, cached: bool, outcome: Any) -> str:
    v = result.verdict
    if v.status != "ok":
        return f"**判定：出错** — {v.reason}"
    yes = "**疑似鬼探头**" if v.ghost_probing else "**未发现鬼探头**"
    onset = f" · 峰值时间 {v.onset_s:.2f} s" if v.onset_s is not None else ""
    line = f"{yes} · 置信度 {v.confidence:.2f}{onset}\n\n{v.reason}"
    parts = []
    if outcome.decode_s is not None:
        parts.append(f"解码 {outcome.decode_s:.2f} s")
    if outcome.detect_s is not None:
        parts.append(f"检测 {outcome.detect_s:.2f} s")
    parts.append(f"响应 #{outcome.response_id}" + ("（复用已保存结果）" if cached else ""))
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

    def on_engine(name: str, video_id: str, f, ms):
        cls = engines.get(name or "")
        if cls is None:
            return "⚠️ 没有可用的异常检测引擎。", gr.update(), ""
        try:
            ok, why = cls().availability()
        except Exception as e:
            ok, why = False, user_message(e)
        info = f"{'✅' if ok else '⚠️'} **{cls.title or name}** — {why}"
        return info, gr.update(value=default_fps(name)), on_estimate(video_id, name, default_fps(name), ms)

    def on_estimate(video_id: str, name: str, f, ms) -> str:
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
                    return "♻️ 已有同一视频、引擎与设置的结果：运行将直接复用，不再计算。"
            except Exception:
                pass
            est = V.estimate_s(eng, meta.duration_s, sampling)
            where = getattr(eng, "estimate_basis", "CPU，按本机实测的每帧耗时")
            return f"⏳ 预计耗时约 {V.fmt_duration(est)}（{meta.duration_s:.1f} 秒视频，{where}）。" if est else ""
        except Exception as e:
            return status_md(user_message(e), ok=False)

    def on_refresh(current: str):
        try:
            state.library.scan()
        except Exception as e:
            log.warning("library scan failed: %s", e)
        ch = video_choices()
        return gr.update(choices=ch, value=current if current in ch else None)

    def on_run(video_id: str, name: str, f, ms, again: bool, request: gr.Request, progress=gr.Progress()):
        sid = getattr(request, "session_hash", None) or "default"
        ev = threading.Event()
        with _CANCELS_LOCK:
            _CANCELS[sid] = ev
        empty = (None, None, [])
        if not video_id:
            return (status_md("请先选择一个视频。", ok=False), "", *empty)
        if not name:
            return (status_md("没有可用的异常检测引擎。", ok=False), "", *empty)
        try:
            path = state.library.path(video_id)
            out = V.run_heatmap(state.store, state.config.cache_dir, path, video_id, name, fps=f, max_side=ms,
                                progress=lambda frac, msg: progress(frac, desc=msg), cancel=ev, reuse=not again)
        except Exception as e:
            if not is_user_error(e):
                log.exception("heatmap run failed")
                return (status_md(f"运行失败：{type(e).__name__}: {e}", ok=False), "", *empty)
            return (status_md(user_message(e), ok=False), "", *empty)
        finally:
            with _CANCELS_LOCK:
                if _CANCELS.get(sid) is ev:
                    _CANCELS.pop(sid, None)
        r = out.result
        others = V.other_tracks(state.store, video_id)
        fig = timeline_figure(r.track, r.threshold, r.verdict.onset_s, others, r.random_weights, r.engine) \
            if r.track else None
        ok = r.verdict.status == "ok"
        msg = ("复用已保存的结果。" if out.cached else "完成，结果已保存。") if ok else "检测出错，未生成热力图。"
        if r.random_weights:
            msg += " 随机权重：得分没有意义（random weights: scores are meaningless）。"
        return (status_md(msg, ok=ok), verdict_md(r, out.cached, out),
                str(out.video) if out.video else None, fig, out.gallery)

    def on_cancel(request: gr.Request):
        sid = getattr(request, "session_hash", None) or "default"
        with _CANCELS_LOCK:
            ev = _CANCELS.get(sid)
        if ev is None:
            return status_md("没有正在运行的检测。", ok=False)
        ev.set()
        return status_md("正在取消…", ok=False)

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
