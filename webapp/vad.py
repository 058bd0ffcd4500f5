"""One anomaly-engine run for the Heatmap tab and ``ghostprobe vad run``: reuse or detect, store, render.

:func:`run_heatmap` resolves the engine and its sampling, looks the result up by identity cache key
(engine identity + the file's SHA-256: the same clip, engine and settings never run twice), otherwise
samples the video, runs ``detect`` in a worker thread (so progress shows and a cancel is honoured
between frame pairs), logs the response and its per-frame and per-box rows in one transaction
(:func:`reports.vad.record`), and renders the heatmap MP4 and the gallery of the most anomalous
frames once per cache key under ``<cache>/vad/``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engines.errors import EngineError
from webapp.messages import add_messages, m

ProgressFn = Callable[[float, str], None]


class Cancelled(EngineError):
    """The user stopped the run; nothing was stored."""


# what a run says while it works and when it stops (zh: the Chinese UI and no request; en: English browsers)
add_messages({
    # how an estimate was made (the Heatmap tab and `vad run` both say it)
    "vad_basis_default": {"zh": "CPU，按本机实测的每帧耗时", "en": "CPU, from the time per frame measured on this machine"},
    "vad_basis_aivad": {"zh": "CPU，按本机实测的每帧对耗时；AI-VAD 是 GPU 模型",
                        "en": "CPU, from the time per frame pair measured on this machine; AI-VAD is a GPU model"},
    "vad_basis_sagemaker": {"zh": "SageMaker 端点（GPU），按每帧对约 1 秒估计，未实测",
                            "en": "SageMaker endpoint (GPU), estimated at about 1 s per frame pair, not measured"},
    "vad_cancelled": {"zh": "已取消：检测在完成前被停止，没有保存任何结果。",
                      "en": "Cancelled: the detection was stopped before it finished; nothing was stored."},
    "vad_not_anomaly": {"zh": "引擎 {name} 不是异常检测引擎（可选：{choices}）。",
                        "en": "Engine {name} is not an anomaly engine (choose from: {choices})."},
    "vad_none": {"zh": "无", "en": "none"},
    "vad_p_detecting": {"zh": "检测中… 已用 {el} 秒", "en": "Detecting… {el} s so far"},
    "vad_p_of_about": {"zh": "，预计共 {total}", "en": ", about {total} in all"},
    "vad_p_reuse": {"zh": "复用已保存的结果（同一视频、引擎与设置）…",
                    "en": "Reusing the stored result (same video, engine and settings)…"},
    "vad_p_sampling": {"zh": "采样视频（{sampling}）…", "en": "Sampling the video ({sampling})…"},
    "vad_p_resample": {"zh": "重新采样视频以渲染热力图…", "en": "Sampling the video again to render the heatmap…"},
    "vad_p_render": {"zh": "渲染热力图视频（H.264）…", "en": "Rendering the heatmap video (H.264)…"},
    "vad_p_done": {"zh": "完成", "en": "Done"},
    "vad_unknown": {"zh": "未知", "en": "unknown"},
    "vad_secs": {"zh": "{n:.0f} 秒", "en": "{n:.0f} s"},
    "vad_mins": {"zh": "{n:.0f} 分钟", "en": "{n:.0f} min"},
    "vad_hours": {"zh": "{n:.1f} 小时", "en": "{n:.1f} h"},
})


def anomaly_engines() -> dict[str, type]:
    """Registered engines that produce anomaly maps (class attribute ``anomaly = True``)."""
    from engines.registry import all_engines

    return {n: c for n, c in sorted(all_engines().items()) if getattr(c, "anomaly", False)}


def sampling_for(cls: Any, fps: float | None = None, max_side: int | None = None) -> dict[str, Any]:
    s = dict(getattr(cls, "default_sampling", {}) or {})
    if fps:
        s["fps"] = float(fps)
        s["num_frames"] = None
    if max_side:
        s["max_side"] = int(max_side)
    return s


def estimate_s(engine: Any, duration_s: float, sampling: dict[str, Any]) -> float | None:
    fn = getattr(engine, "estimate_s", None)
    if fn is None:
        return None
    try:
        return float(fn(duration_s, sampling))
    except Exception:  # an estimate must never stop a run
        return None


def fmt_duration(s: float | None, lang: str | None = "zh") -> str:
    if s is None:
        return m("vad_unknown", lang)
    if s < 90:
        return m("vad_secs", lang, n=s)
    if s < 5400:
        return m("vad_mins", lang, n=s / 60)
    return m("vad_hours", lang, n=s / 3600)


@dataclass
class HeatmapOutcome:
    response_id: int
    cached: bool
    result: Any  # reports.vad.VadResult
    video: Path | None
    gallery: list[tuple[str, str]] = field(default_factory=list)
    decode_s: float | None = None
    detect_s: float | None = None
    render_s: float | None = None
    sampling: dict[str, Any] = field(default_factory=dict)
    cache_key: str = ""


def _detect_in_thread(engine: Any, clip: Any, progress: ProgressFn | None, cancel: threading.Event,
                      estimate: float | None, lang: str | None = "zh") -> Any:
    box: dict[str, Any] = {}

    def work() -> None:
        try:
            box["det"] = engine.detect(clip, None)
        except BaseException as e:  # handed to the caller's thread
            box["err"] = e

    engine.cancel_event = cancel  # engines that loop over frame pairs check it between pairs
    th = threading.Thread(target=work, name="vad-detect", daemon=True)
    t0 = time.perf_counter()
    th.start()
    while th.is_alive():
        th.join(0.25)
        if cancel.is_set():  # the worker stops at its next pair (AI-VAD) or finishes unseen (motion)
            raise Cancelled(m("vad_cancelled", lang))
        if progress is not None:
            el = time.perf_counter() - t0
            frac = min(0.95, el / estimate) if estimate else 0.5
            done = getattr(engine, "progress_done", None)
            if done:  # (done, total) pairs reported by the engine
                frac = min(0.99, done[0] / max(1, done[1]))
            progress(0.1 + 0.75 * frac, m("vad_p_detecting", lang, el=f"{el:.0f}")
                     + (m("vad_p_of_about", lang, total=fmt_duration(estimate, lang)) if estimate else ""))
    if "err" in box:
        raise box["err"]
    if cancel.is_set():
        raise Cancelled(m("vad_cancelled", lang))
    return box["det"]


def run_heatmap(store: Any, cache_dir: Path, video_path: str | Path, video_id: str | None, engine_name: str,
                *, config: dict[str, Any] | None = None, fps: float | None = None, max_side: int | None = None,
                progress: ProgressFn | None = None, cancel: threading.Event | None = None,
                reuse: bool = True, gallery_k: int = 6, lang: str | None = "zh") -> HeatmapOutcome:
    """``lang`` (zh/en) is the language of the progress text and of a cancel's sentence."""
    from engines.registry import get_engine
    from engines.vad.heatmap import gallery, write_heatmap_video
    from engines.video import probe, sha256_file
    from reports import vad
    from webapp.detection import load_clip_timed

    cancel = cancel or threading.Event()
    say = progress or (lambda f, m: None)
    engine = get_engine(engine_name, **(config or {}))
    if not getattr(engine, "anomaly", False):
        raise EngineError(m("vad_not_anomaly", lang, name=engine_name,
                            choices=", ".join(anomaly_engines()) or m("vad_none", lang)))
    ok, why = engine.availability()
    if not ok:
        raise EngineError(why)
    sampling = sampling_for(type(engine), fps, max_side)
    sha = sha256_file(video_path)
    ident = engine.identity(sampling=sampling)
    key = ident.cache_key(sha)
    rid = vad.find(store, key) if reuse else None
    clip = None
    decode_s = detect_s = None
    if rid is not None:
        say(0.8, m("vad_p_reuse", lang))
        result = vad.load(store, rid)
        cached = True
    else:
        meta = probe(video_path)
        est = estimate_s(engine, meta.duration_s, sampling)
        say(0.02, m("vad_p_sampling", lang, sampling=sampling))
        clip, decode_s = load_clip_timed(video_path, sampling)
        if cancel.is_set():
            raise Cancelled(m("vad_cancelled", lang))
        t0 = time.perf_counter()
        det = _detect_in_thread(engine, clip, progress, cancel, est, lang)
        detect_s = time.perf_counter() - t0
        rid = vad.record(store, det, identity=ident, sha256=sha, video_id=video_id, sampling=sampling,
                         decode_s=decode_s, timestamps=list(clip.timestamps_s))
        result = vad.load(store, rid)
        cached = False
    out_dir = Path(cache_dir) / "vad"
    out_dir.mkdir(parents=True, exist_ok=True)
    mp4 = out_dir / f"{key[:32]}.mp4"
    gal_dir = out_dir / key[:32]
    t1 = time.perf_counter()
    arts = result.artifacts
    gal: list[tuple[str, str]] = []
    if result.verdict.status == "ok" and result.track:
        need_video = not (mp4.is_file() and mp4.stat().st_size > 0)
        captions = gal_dir / "captions.txt"
        need_gallery = not captions.is_file()
        if need_video or need_gallery:
            if clip is None:
                say(0.85, m("vad_p_resample", lang))
                clip, _ = load_clip_timed(video_path, dict(result.identity.get("sampling") or sampling))
            if need_video:
                say(0.88, m("vad_p_render", lang))
                write_heatmap_video(clip.frames, clip.timestamps_s, arts.maps, arts.map_times, arts.boxes, mp4,
                                    threshold=result.threshold, random_weights=result.random_weights)
            if need_gallery:
                import cv2

                gal_dir.mkdir(parents=True, exist_ok=True)
                items = gallery(clip.frames, clip.timestamps_s, result.track, arts.maps, arts.map_times, arts.boxes,
                                result.threshold, result.random_weights, k=gallery_k)
                lines = []
                for i, (img, cap) in enumerate(items):
                    p = gal_dir / f"top_{i}.jpg"
                    cv2.imwrite(str(p), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
                    lines.append(cap)
                captions.write_text("\n".join(lines), encoding="utf-8")
        caps = (gal_dir / "captions.txt").read_text(encoding="utf-8").splitlines()
        gal = [(str(gal_dir / f"top_{i}.jpg"), c) for i, c in enumerate(caps) if (gal_dir / f"top_{i}.jpg").is_file()]
        video: Path | None = mp4
    else:
        video = None
    say(1.0, m("vad_p_done", lang))
    return HeatmapOutcome(response_id=rid, cached=cached, result=result, video=video, gallery=gal,
                          decode_s=decode_s, detect_s=detect_s, render_s=time.perf_counter() - t1,
                          sampling=sampling, cache_key=key)


def other_tracks(store: Any, video_id: str) -> dict[str, Any]:
    """The same video's latest baseline score track and LLM verdict onset, from the response log."""
    import json

    out: dict[str, Any] = {}
    try:
        rows = store.query(
            "SELECT engine, engine_kind, onset_s, ghost_probing, status, artifacts FROM responses"
            " WHERE video_id = ? AND coalesce(status, '') = 'ok' ORDER BY created_at DESC LIMIT 200", [video_id])
    except Exception:  # no response log yet (older database): nothing to draw beside
        return out
    for r in rows:
        if r["engine"] == "baseline" and "baseline" not in out:
            a = r["artifacts"]
            a = json.loads(a) if isinstance(a, str) else (a or {})
            tr = (a.get("tracks") or {}).get("score")
            if tr:
                out["baseline"] = {"track": [(float(t), float(s)) for t, s in tr],
                                   "threshold": (a.get("thresholds") or {}).get("score")}
        elif r["engine_kind"] == "chat" and "llm" not in out and r["onset_s"] is not None:
            out["llm"] = {"engine": r["engine"], "onset_s": float(r["onset_s"]), "ghost_probing": r["ghost_probing"]}
    return out
