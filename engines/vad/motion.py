"""The weights-free *motion map* anomaly engine (``motion``): works on any CPU, downloads nothing.

It reuses the baseline's independent-motion evidence (:func:`engines.baseline.detector.extract_features`
with ``keep_masks``: optical flow, ego-motion compensation, persistence over pairs, cleaned with
morphology). For every analysed frame:

- **map**: the fraction of pixels flagged as persistent independent motion in each cell of a
  ``map_width``-wide grid with the frame's aspect (area resampling of the full-frame mask, so the
  map covers exactly the frame), lightly blurred; float32 in 0..1;
- **boxes**: the baseline's motion blobs on that frame, in pixels of the frame as sampled, each
  scored ``peak map density inside the box × proximity`` where proximity is how far its bottom
  edge lies below the horizon (0 at the horizon, 1 at the bottom row): dense independent motion
  close to the car scores high, far-away or faint motion low;
- **score**: the highest box score on the frame (0 when nothing moves on its own).

The verdict follows :mod:`engines.vad.verdict` (peak in-path box score ≥ ``threshold``), with the
ego path's apex at the focus of expansion the baseline measured. ``threshold`` (0.5: dense motion
whose ground contact is halfway between the horizon and the bottom row) is a fixed a-priori
choice, not fitted on any data set, until ``ghostprobe vad calibrate --engine motion`` sets it on
held-out normal clips: the engine then reads ``motion_calibration.json`` (``calibration=`` a file or
folder, else ``$GHOSTPROBE_MOTION_CALIBRATION``, else ``<data dir>/vad/motion_calibration.json``) and its
verdicts say "threshold calibrated on N normal clips at q=…". An explicit ``threshold=`` wins over the
file (and is then uncalibrated). The calibration's date and clip hashes are part of the revision.
"""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any, ClassVar

import numpy as np

from engines.base import DETECTOR, Artifacts, Box, CallRecord, CostLocation, Detection, Engine, GenerationOptions
from engines.errors import EngineError
from engines.types import Clip, Verdict

MODEL_ID = "motion-map-v1"
# Measured by bench/bench_vad.py (motion_s_per_pair: 0.049 s at 144x256, 0.064 s at 288x512, medians,
# load average 15-20 on this 2-core machine): seconds per analysed frame, rounded up.
S_PER_FRAME_CPU = 0.07

PARAMS: dict[str, Any] = {"map_width": 64, "threshold": 0.5, "blur": 3}


class MotionMapEngine(Engine):
    """Independent-motion map + per-frame score from the baseline's flow and ego-motion fit."""

    name: ClassVar[str] = "motion"
    title: ClassVar[str] = "运动异常图 (CPU, 无需权重)"
    kinds: ClassVar[frozenset[str]] = frozenset({DETECTOR})
    process_safe: ClassVar[bool] = True
    anomaly: ClassVar[bool] = True  # listed in the Heatmap tab
    default_sampling: ClassVar[dict[str, Any]] = {"num_frames": None, "fps": 10, "max_side": 480}

    def __init__(self, model: str | None = None, **config: Any):
        super().__init__(model=model or MODEL_ID, **config)
        from engines.vad.calibrate import motion_path, read_motion

        from engines import settings

        where = config.pop("calibration", None)
        explicit = where is not None or settings.env("GHOSTPROBE_MOTION_CALIBRATION") is not None
        self.calibration_path = motion_path(where)
        self.calibration = None if "threshold" in config else read_motion(self.calibration_path)
        if self.calibration is None and explicit and "threshold" not in config:
            raise EngineError(f"There is no motion-map calibration at {self.calibration_path}; run "
                              f"`ghostprobe vad calibrate --engine motion` first.")
        if self.calibration is not None:
            config["threshold"] = float(self.calibration["threshold"])
        unknown = sorted(set(config) - set(PARAMS))
        if unknown:
            raise EngineError(f"Unknown motion-map parameter(s): {', '.join(unknown)}; known: "
                              f"{', '.join(PARAMS)}.")
        self.params = {**PARAMS, **config}
        try:
            self.params["map_width"] = int(self.params["map_width"])
            self.params["threshold"] = float(self.params["threshold"])
            self.params["blur"] = int(self.params["blur"])
        except (TypeError, ValueError):
            raise EngineError("Motion-map parameters must be numbers (map_width, threshold, blur).") from None
        if not 8 <= self.params["map_width"] <= 320:
            raise EngineError("map_width must be between 8 and 320 cells.")

    def availability(self) -> tuple[bool, str]:
        return True, "ready: weights-free independent-motion map on CPU"

    def model_id(self) -> str | None:
        return MODEL_ID

    def revision(self) -> str | None:
        from engines.baseline.config import DEFAULT_CONFIG

        cal = self._calibration_id()
        blob = json.dumps({"baseline": DEFAULT_CONFIG.revision(), **self.params, **({"calibration": cal} if cal
                                                                                     else {})}, sort_keys=True)
        return "cfg-" + hashlib.sha256(blob.encode()).hexdigest()[:12]

    def _calibration_id(self) -> str | None:
        if not self.calibration:
            return None
        c = self.calibration
        blob = json.dumps({k: c.get(k) for k in ("threshold", "quantile", "level", "date", "clips")}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:12]

    def describe(self) -> dict[str, Any]:
        settings: dict[str, Any] = dict(self.params)
        if self.calibration:
            settings["calibrated"] = True
            settings["calibration"] = self._calibration_id()
        return {"model": MODEL_ID, "revision": self.revision(), "dtype": "float32", "settings": settings}

    def cost_location(self) -> CostLocation:
        return CostLocation("local-cpu")

    def estimate_s(self, duration_s: float, sampling: dict[str, Any] | None = None) -> float:
        """Seconds this will take on this CPU, before starting (from the measured per-frame cost)."""
        fps = float((sampling or self.default_sampling).get("fps") or 10)
        return max(0.5, duration_s * min(fps, 10.0) * S_PER_FRAME_CPU)

    def detect(self, clip: Clip, options: GenerationOptions | None = None) -> Detection:
        start = time.perf_counter()
        try:
            arts, verdict = self.analyse(clip.frames, list(clip.timestamps_s))
        except Exception as e:  # never take the app down; an error is recorded, never a "no"
            arts, verdict = Artifacts(), Verdict.error(f"运动异常图出错：{type(e).__name__}: {e}")
        elapsed = time.perf_counter() - start
        call = CallRecord(engine=self.name, model=MODEL_ID, revision=self.revision(), latency_s=elapsed,
                          generate_s=elapsed, device="cpu",
                          extra={"frames": clip.num_frames, "sampling": dict(clip.sampling or {})})
        self.last_call = call
        return Detection(verdict=verdict, call=call, artifacts=arts)

    # -- the work -------------------------------------------------------------------------------
    def analyse(self, frames: np.ndarray, timestamps: list[float]) -> tuple[Artifacts, Verdict]:
        import cv2

        from engines.baseline.config import DEFAULT_CONFIG as cfg
        from engines.baseline.detector import extract_features, select_frames
        from engines.vad.verdict import RULE, EgoPath, verdict_from_scores

        n = len(frames)
        if n < 2:
            return Artifacts(), Verdict.error("运动异常图需要至少两帧，片段不足两帧，无法估计运动。")
        fh, fw = int(frames[0].shape[0]), int(frames[0].shape[1])
        feat = extract_features(frames, timestamps, cfg, keep_masks=True)
        masks = feat.pop("masks", [])
        if feat.get("note") in ("too_few_frames", "frames_too_small") or not masks:
            why = {"too_few_frames": "片段不足两帧", "frames_too_small": "画面太小"}.get(feat.get("note"), "没有帧对")
            return Artifacts(extra={"note": feat.get("note")}), Verdict.error(f"运动异常图无法估计运动：{why}。")
        ts = [float(t) for t in timestamps][:n]
        sel = select_frames(ts, cfg.analysis_fps)
        times = [ts[i] for i in sel]
        H, W = masks[0][0].shape
        mw = min(self.params["map_width"], W)
        mh = max(1, int(round(H * mw / W)))
        maps = np.zeros((len(sel), mh, mw), np.float32)
        k = self.params["blur"]
        for j, (m8, _raw, _ok) in enumerate(masks, start=1):
            m = cv2.resize(m8.astype(np.float32), (mw, mh), interpolation=cv2.INTER_AREA)
            if k >= 3:
                m = cv2.GaussianBlur(m, (k | 1, k | 1), 0)
            maps[j] = np.clip(m, 0.0, 1.0)

        foe = feat.get("foe")
        moving = [p for p in feat.get("pairs", []) if not p.get("skipped") and not p.get("stationary")]
        if foe and moving:
            hy = float(np.clip(foe[1], cfg.horizon_range[0], cfg.horizon_range[1]))
            ex = float(np.clip(foe[0], 0.3, 0.7))
        else:
            hy, ex = cfg.horizon_prior, 0.5
        path = EgoPath(center_x=ex, horizon_y=hy)

        t_index = {round(t, 5): j for j, t in enumerate(times)}
        boxes: list[Box] = []
        frame_best = np.zeros(len(sel), np.float64)
        for tr in feat.get("tracks", []):
            for o in tr["obs"]:
                j = t_index.get(round(float(o[0]), 5))
                if j is None:
                    j = int(np.argmin(np.abs(np.asarray(times) - float(o[0]))))
                x1, y1, x2, y2 = (float(v) for v in o[1:5])
                cx1, cy1 = int(np.floor(x1 * mw)), int(np.floor(y1 * mh))
                cx2, cy2 = max(cx1 + 1, int(np.ceil(x2 * mw))), max(cy1 + 1, int(np.ceil(y2 * mh)))
                density = float(maps[j, cy1:cy2, cx1:cx2].max()) if maps[j, cy1:cy2, cx1:cx2].size else 0.0
                prox = float(np.clip((y2 - hy) / max(1e-3, 1.0 - hy), 0.0, 1.0))
                s = round(density * prox, 5)
                boxes.append(Box(frame=int(sel[j]), t=round(float(times[j]), 4), x1=round(x1 * fw, 1),
                                 y1=round(y1 * fh, 1), x2=round(x2 * fw, 1), y2=round(y2 * fh, 1), score=s,
                                 label="motion"))
                frame_best[j] = max(frame_best[j], s)
        track = [(round(float(t), 4), round(float(s), 5)) for t, s in zip(times, frame_best)]
        thr = self.params["threshold"]
        verdict = verdict_from_scores(track, boxes, fw, fh, thr, path=path, engine=self.name,
                                      note=feat.get("note") or "", calibration=self.calibration)
        if not boxes and verdict.status == "ok":
            # no blob anywhere: the in-path score is the frame score, which is 0 on every frame
            verdict.reason = "没有检测到独立于本车运动的目标，" + verdict.reason
        arts = Artifacts(
            tracks={"anomaly": track}, thresholds={"anomaly": thr}, boxes=boxes, maps=maps,
            map_times=[round(float(t), 4) for t in times],
            extra={"rule": RULE, "frame_size": [fw, fh], "map_size": [mw, mh], "ego_path": {"center_x": ex,
                   "horizon_y": hy}, "frame_indices": [int(i) for i in sel], "pairs": len(masks),
                   "skipped_pairs": sum(1 for p in feat.get("pairs", []) if p.get("skipped")),
                   "note": feat.get("note") or "", "random_weights": False,
                   "calibrated": bool(self.calibration),
                   "calibration": {k: self.calibration.get(k) for k in ("n_clips", "n_frames", "quantile", "level",
                                                                        "date")} if self.calibration else None})
        return arts, verdict
