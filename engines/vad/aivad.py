"""AI-VAD (Reiss & Hoshen, attribute-based video anomaly detection) on anomalib 2.x: ``aivad``.

The model is anomalib's own ``AiVadModel`` (RAFT flow, Mask R-CNN regions, keypoint R-CNN pose,
CLIP deep features, density estimators), never a re-implementation. What this module adds:

- **Offline construction** (:func:`build_model`): the four backbones are built with
  ``weights=None, weights_backbone=None`` and a plain CLIP ViT-B/16 of the real shape in place of
  ``clip.load`` — no network, shapes equal to the real checkpoints — then an artifact's state dict
  is loaded. ``weights="pretrained"`` builds them with torchvision's weights from ``$TORCH_HOME``
  and CLIP from ``~/.cache/clip`` (``ghostprobe vad weights pull`` fetches them on request);
  ``weights="random"`` keeps them random (seeded): every output then says
  "random weights: scores are meaningless".
- **The seed's three-file artifact** (:func:`save_artifact` / :func:`load_artifact`):
  ``ai_vad_config.yaml`` (every AiVadModel parameter — AiVad and AiVadModel disagree on defaults
  — plus ``enable_foreground_detections``, ``threshold``, weights provenance, the SHA-256 of the
  fitting clips and, once ``ghostprobe vad calibrate`` ran, ``calibrated: true`` and the calibration's
  provenance; see :mod:`engines.vad.calibrate`),
  ``ai_vad_banks.joblib`` (the density estimators' buffers: GMM means/covariances/weights, the
  appearance and pose memory banks, min/max; small) and ``ai_vad_weights.pth`` (the rest of the
  state dict; with random backbones only their seed, since they are rebuilt bit-identically).
  An anomalib Lightning checkpoint (``state_dict`` with ``model.`` keys) loads too.
- **Fitting** (:func:`fit`): AI-VAD is one-class; the banks are fitted on frame pairs of >= 2
  normal videos (one group per video: a single group fails in the KNN fit), identical pairs
  skipped (DADA AVIs repeat frames: the GMM gives NaN means on duplicated rows).
- **Boxes and per-box scores** via forward hooks on ``model.region_extractor`` (boxes, labels,
  detector scores, masks) and ``model.density_estimator`` (per-box scores); ``anomaly_map``
  rebuilt from them equals anomalib's.
- ``internal_resize="input"`` (default) runs RAFT and the R-CNNs at the input size instead of
  RAFT's hard-coded 520x960 and the R-CNNs' 800/1333 (the measured CPU cost drops ~30 %).

AI-VAD is a GPU model; on CPU subsample pairs at reduced size (``stride``, ``max_side``).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from engines.base import DETECTOR, Artifacts, Box, CallRecord, CostLocation, Detection, Engine, GenerationOptions
from engines.errors import EngineError
from engines.types import Clip, Verdict

MODEL_ID = "anomalib-ai-vad"
CONFIG_FILE, BANKS_FILE, WEIGHTS_FILE = "ai_vad_config.yaml", "ai_vad_banks.joblib", "ai_vad_weights.pth"
RANDOM_NOTE = "random weights: scores are meaningless"

# Every AiVadModel parameter, written into ai_vad_config.yaml (AiVad's Lightning defaults differ:
# box_score_thresh 0.7, n_velocity_bins 1, n_components_velocity 2). Foreground boxes are off: on a
# moving dashcam frame differencing gives 150-1,900 components per pair (tens of GiB).
MODEL_DEFAULTS: dict[str, Any] = {
    "box_score_thresh": 0.7, "persons_only": False, "min_bbox_area": 100, "max_bbox_overlap": 0.65,
    "enable_foreground_detections": False, "foreground_kernel_size": 3, "foreground_binary_threshold": 18,
    "n_velocity_bins": 1, "use_velocity_features": True, "use_pose_features": True, "use_deep_features": True,
    "n_components_velocity": 2, "n_neighbors_pose": 1, "n_neighbors_deep": 1,
}
RUN_DEFAULTS: dict[str, Any] = {"threshold": 1.0, "calibrated": False, "internal_resize": "input",
                                "weights": "random", "seed": 0, "max_boxes": 20}
# Measured by bench/bench_vad.py (random backbones, 144x256, 2 threads, medians of 3) on this 2-core
# machine under a load average of ~20 (shared by other jobs): pessimistic for an idle CPU.
# "velocity" = RAFT flow + Mask R-CNN regions + velocity (41.1 + 31.2 + 0.3 s).
S_PER_PAIR_CPU = {"velocity": 72.6, "pose": 14.3, "deep_per_box": 9.4}

_BUILD_LOCK = threading.Lock()
# provenance kept in ai_vad_config.yaml but not model or run settings
IGNORED_KEYS = frozenset({"format", "created", "fitted_on", "fitted_sha256", "calibration"})


def _require() -> None:
    try:
        import anomalib  # noqa: F401
        import torch  # noqa: F401
    except ImportError as e:
        raise EngineError(f"AI-VAD needs anomalib and torch: pip install -e '.[vad]' ({e.name} is missing).") from None


def split_config(cfg: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    unknown = sorted(set(cfg) - set(MODEL_DEFAULTS) - set(RUN_DEFAULTS) - IGNORED_KEYS)
    if unknown:
        raise EngineError(f"Unknown AI-VAD setting(s): {', '.join(unknown)}.")
    model = {k: cfg.get(k, v) for k, v in MODEL_DEFAULTS.items()}
    run = {k: cfg.get(k, v) for k, v in RUN_DEFAULTS.items()}
    if not any((model["use_velocity_features"], model["use_pose_features"], model["use_deep_features"])):
        raise EngineError("AI-VAD needs at least one of use_velocity_features, use_pose_features, use_deep_features.")
    return model, run


@contextlib.contextmanager
def _offline_backbones():
    """Build anomalib's backbones with random weights and no download (restored afterwards)."""
    import torchvision.models.detection as det
    import torchvision.models.optical_flow as of
    from anomalib.models.video.ai_vad import features, flow, regions
    from anomalib.models.video.ai_vad.clip import model as clip_model

    def plain_clip(*_a, **_k):
        m = clip_model.CLIP(embed_dim=512, image_resolution=224, vision_layers=12, vision_width=768,
                            vision_patch_size=16, context_length=77, vocab_size=49408, transformer_width=512,
                            transformer_heads=8, transformer_layers=12)
        return m.float().eval(), None

    saved = (flow.raft_large, regions.maskrcnn_resnet50_fpn_v2, features.keypointrcnn_resnet50_fpn,
             features.clip.load)
    flow.raft_large = lambda *a, **k: of.raft_large(weights=None)
    regions.maskrcnn_resnet50_fpn_v2 = lambda *a, weights=None, **k: det.maskrcnn_resnet50_fpn_v2(
        weights=None, weights_backbone=None, **k)
    features.keypointrcnn_resnet50_fpn = lambda *a, weights=None, **k: det.keypointrcnn_resnet50_fpn(
        weights=None, weights_backbone=None, **k)
    features.clip.load = plain_clip
    try:
        yield
    finally:
        (flow.raft_large, regions.maskrcnn_resnet50_fpn_v2, features.keypointrcnn_resnet50_fpn,
         features.clip.load) = saved


def build_model(model_cfg: dict[str, Any], weights: str = "random", seed: int = 0):
    """anomalib's AiVadModel; ``weights`` = "random" (offline, seeded) or "pretrained" (local caches)."""
    _require()
    import torch
    from anomalib.models.video.ai_vad.torch_model import AiVadModel

    with _BUILD_LOCK:
        if weights == "random":
            state = torch.random.get_rng_state()
            torch.manual_seed(int(seed))
            try:
                with _offline_backbones():
                    model = AiVadModel(**model_cfg)
            finally:
                torch.random.set_rng_state(state)
        elif weights == "pretrained":
            missing = missing_pretrained()
            if missing:
                raise EngineError("Pretrained AI-VAD backbones are not on this machine (" + ", ".join(missing) +
                                  "); run `ghostprobe vad weights pull` or use --weights random.")
            model = AiVadModel(**model_cfg)
        else:
            raise EngineError(f"weights must be 'random' or 'pretrained', not {weights!r}.")
    return model.eval()


def pretrained_files() -> dict[str, tuple[Path, str]]:
    """name -> (path, download url) of the backbone weights AI-VAD uses."""
    import os

    from torchvision.models.detection import KeypointRCNN_ResNet50_FPN_Weights, MaskRCNN_ResNet50_FPN_V2_Weights
    from torchvision.models.optical_flow import Raft_Large_Weights

    hub = Path(os.environ.get("TORCH_HOME", Path.home() / ".cache" / "torch")) / "hub" / "checkpoints"
    out = {}
    for name, w in (("raft_large", Raft_Large_Weights.DEFAULT),
                    ("maskrcnn_resnet50_fpn_v2", MaskRCNN_ResNet50_FPN_V2_Weights.DEFAULT),
                    ("keypointrcnn_resnet50_fpn", KeypointRCNN_ResNet50_FPN_Weights.DEFAULT)):
        out[name] = (hub / Path(w.url).name, w.url)
    from anomalib.models.video.ai_vad.clip import clip as aclip

    url = aclip._MODELS["ViT-B/16"]
    out["clip_vit_b16"] = (Path.home() / ".cache" / "clip" / Path(url).name, url)
    return out


def missing_pretrained() -> list[str]:
    try:
        return [n for n, (p, _u) in pretrained_files().items() if not p.is_file()]
    except ImportError:
        return ["anomalib/torchvision"]


def _set_internal_resize(model, h: int, w: int) -> None:
    """RAFT and the R-CNNs at the input size (RAFT needs multiples of 8, at least 128 px)."""
    import torchvision.transforms.functional as F

    fh, fw = max(128, int(math.ceil(h / 8)) * 8), max(128, int(math.ceil(w / 8)) * 8)
    fx = model.flow_extractor

    def pre_process(first, last):
        first = F.resize(first, size=[fh, fw], antialias=False)
        last = F.resize(last, size=[fh, fw], antialias=False)
        return fx.transforms(first, last)

    fx.pre_process = pre_process
    for t in (model.region_extractor.backbone.transform, model.feature_extractor.pose_extractor.transform
              if hasattr(model.feature_extractor, "pose_extractor") else None):
        if t is not None:
            t.min_size = (int(min(h, w)),)
            t.max_size = int(max(h, w))


# -- artifacts --------------------------------------------------------------------------------------
def _is_bank(key: str) -> bool:
    return key.startswith("density_estimator.")


def save_artifact(model, cfg: dict[str, Any], out_dir: str | Path) -> Path:
    """The seed's three files. With random backbones the weights file holds only their seed."""
    import joblib
    import torch
    import yaml

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    sd = model.state_dict()
    banks = {k: v.detach().cpu().numpy() for k, v in sd.items() if _is_bank(k)}
    joblib.dump(banks, out / BANKS_FILE)
    if cfg.get("weights") == "random":
        torch.save({"format": "ghostprobe-aivad-1", "random_seed": int(cfg.get("seed", 0)), "state_dict": {}},
                   out / WEIGHTS_FILE)
    else:
        torch.save({"format": "ghostprobe-aivad-1", "state_dict": {k: v for k, v in sd.items() if not _is_bank(k)}},
                   out / WEIGHTS_FILE)
    full = {**MODEL_DEFAULTS, **RUN_DEFAULTS, **cfg, "format": "ghostprobe-aivad-1"}
    (out / CONFIG_FILE).write_text(yaml.safe_dump(full, sort_keys=True, allow_unicode=True), encoding="utf-8")
    return out


def artifact_missing(path: str | Path) -> list[str]:
    p = Path(path)
    if p.is_file():
        return []  # a checkpoint file
    return [f for f in (CONFIG_FILE, BANKS_FILE, WEIGHTS_FILE) if not (p / f).is_file()]


def load_artifact(path: str | Path, weights: str | None = None):
    """(model, cfg) from a three-file artifact folder or an anomalib ``.ckpt``. Downloads nothing."""
    _require()
    import torch

    p = Path(path)
    if not p.exists():
        raise EngineError(f"The AI-VAD artifact {p} does not exist.")
    if p.is_file():
        return _load_checkpoint(p)
    missing = artifact_missing(p)
    if missing:
        raise EngineError(f"The AI-VAD artifact folder {p} lacks {', '.join(missing)}.")
    import joblib
    import yaml

    try:
        cfg = yaml.safe_load((p / CONFIG_FILE).read_text(encoding="utf-8")) or {}
        banks = joblib.load(p / BANKS_FILE)
        blob = torch.load(p / WEIGHTS_FILE, map_location="cpu", weights_only=True)
    except Exception as e:
        raise EngineError(f"The AI-VAD artifact {p} cannot be read ({type(e).__name__}: {e}).") from None
    if not isinstance(cfg, dict) or not isinstance(banks, dict) or not isinstance(blob, dict):
        raise EngineError(f"The AI-VAD artifact {p} is not in the expected format.")
    model_cfg, run_cfg = split_config({k: v for k, v in cfg.items()})
    rest = blob.get("state_dict") or {}
    if rest:
        model = build_model(model_cfg, "random", 0)  # replaced by the stored weights below
    else:
        run_cfg["weights"] = "random" if "random_seed" in blob else (weights or run_cfg["weights"])
        model = build_model(model_cfg, run_cfg["weights"], int(blob.get("random_seed", run_cfg["seed"])))
    sd = {**{k: torch.as_tensor(v) for k, v in banks.items()}, **rest}
    _load_state(model, sd, strict=bool(rest), where=str(p))
    return model, {**model_cfg, **run_cfg}


def _load_state(model, sd: dict[str, Any], strict: bool, where: str) -> None:
    try:
        res = model.load_state_dict(sd, strict=strict)
    except RuntimeError as e:
        first = str(e).splitlines()[0]
        raise EngineError(f"{where} does not fit this AI-VAD configuration (feature flags differ?): {first}") from None
    if not strict:
        unexpected = list(res.unexpected_keys)
        if unexpected:
            raise EngineError(f"{where} has weights this AI-VAD configuration lacks: {', '.join(unexpected[:3])}.")
        unfitted = [k for k in res.missing_keys if _is_bank(k)]
        if unfitted:
            raise EngineError(f"{where} has no fitted memory bank for {', '.join(unfitted[:3])} "
                              f"(its feature flags differ from the config; refit with `ghostprobe vad fit`).")
    model.eval()


def _load_checkpoint(p: Path):
    import torch

    try:
        ck = torch.load(p, map_location="cpu", weights_only=False)
    except Exception as e:
        raise EngineError(f"{p} is not a readable anomalib checkpoint ({type(e).__name__}).") from None
    sd = ck.get("state_dict") if isinstance(ck, dict) else None
    if not sd:
        raise EngineError(f"{p} has no state_dict: not an anomalib checkpoint.")
    hp = dict(ck.get("hyper_parameters") or {})
    cfg = {k: hp[k] for k in MODEL_DEFAULTS if k in hp}
    model_cfg, run_cfg = split_config(cfg)
    model = build_model(model_cfg, "random", 0)
    sd = {k[len("model."):]: v for k, v in sd.items() if k.startswith("model.")}
    _load_state(model, sd, strict=True, where=str(p))
    run_cfg["weights"] = "checkpoint"
    return model, {**model_cfg, **run_cfg}


# -- scoring ----------------------------------------------------------------------------------------
@dataclass
class PairResult:
    pred_score: float
    boxes: np.ndarray  # [M, 4] x1 y1 x2 y2, pixels of the input
    labels: list[str]
    det_scores: np.ndarray
    box_scores: np.ndarray
    anomaly_map: np.ndarray  # [H, W] at the input size
    masks: np.ndarray | None = None  # [M, H, W] region masks (keep_masks=True)


def _category_names() -> list[str]:
    from torchvision.models.detection import MaskRCNN_ResNet50_FPN_V2_Weights

    return list(MaskRCNN_ResNet50_FPN_V2_Weights.DEFAULT.meta["categories"])


def _to_tensor(frames: np.ndarray):
    import torch

    x = torch.from_numpy(np.ascontiguousarray(frames[..., :3])).float().div_(255.0)
    return x.permute(0, 3, 1, 2)  # [T, 3, H, W]


def score_pairs(model, firsts: np.ndarray, lasts: np.ndarray, cfg: dict[str, Any],
                cancel: threading.Event | None = None, on_pair=None, keep_masks: bool = False) -> list[PairResult]:
    """Score frame pairs (uint8 RGB [N, H, W, 3] each), one pair per forward, with the boxes and
    per-box scores read by forward hooks on ``region_extractor`` and ``density_estimator``."""
    import torch

    names = _category_names()
    got: dict[str, Any] = {}
    max_boxes = int(cfg.get("max_boxes") or 0)

    def on_regions(_m, _inp, out):
        if max_boxes:
            for r in out:  # keep the detector's most confident boxes (CLIP costs ~0.2 s per box on CPU)
                if r["boxes"].shape[0] > max_boxes:
                    keep = torch.argsort(r["scores"], descending=True)[:max_boxes]
                    for k in list(r):
                        r[k] = r[k][keep]
        got["regions"] = out
        return out

    def on_density(_m, _inp, out):
        got.setdefault("density", []).append(out)

    h1 = model.region_extractor.register_forward_hook(on_regions)
    h2 = model.density_estimator.register_forward_hook(on_density)
    results = []
    try:
        if cfg.get("internal_resize", "input") == "input":
            _set_internal_resize(model, firsts.shape[1], firsts.shape[2])
        for i in range(len(firsts)):
            if cancel is not None and cancel.is_set():
                break
            got.clear()
            batch = torch.stack([_to_tensor(firsts[i:i + 1])[0], _to_tensor(lasts[i:i + 1])[0]]).unsqueeze(0)
            with torch.no_grad():
                out = model(batch)
            reg = got["regions"][0]
            box_scores, _image = got["density"][0]
            boxes = reg["boxes"].detach().cpu().numpy().reshape(-1, 4)
            labels = [names[int(c)] if 0 < int(c) < len(names) else "foreground"
                      for c in reg["labels"].detach().cpu().numpy().tolist()]
            results.append(PairResult(pred_score=float(out.pred_score.reshape(-1)[0]), boxes=boxes, labels=labels,
                                      det_scores=reg["scores"].detach().cpu().numpy().reshape(-1),
                                      box_scores=box_scores.detach().cpu().numpy().reshape(-1),
                                      anomaly_map=out.anomaly_map[0].detach().cpu().numpy().reshape(
                                          firsts.shape[1], firsts.shape[2]),
                                      masks=reg["masks"].detach().cpu().numpy().reshape(-1, firsts.shape[1],
                                                                                          firsts.shape[2])
                                      if keep_masks else None))
            if on_pair is not None:
                on_pair(i + 1, len(firsts))
    finally:
        h1.remove()
        h2.remove()
    return results


def pair_indices(timestamps: list[float], stride: int = 1, max_pairs: int | None = None,
                 frames: np.ndarray | None = None) -> list[tuple[int, int]]:
    """Consecutive sampled frames as (first, last) pairs every ``stride``; identical pairs skipped."""
    out = []
    for i in range(0, len(timestamps) - 1, max(1, int(stride))):
        if frames is not None and np.array_equal(frames[i], frames[i + 1]):
            continue
        out.append((i, i + 1))
    if max_pairs and len(out) > max_pairs:
        sel = np.linspace(0, len(out) - 1, int(max_pairs)).round().astype(int)
        out = [out[j] for j in sorted(set(sel.tolist()))]
    return out


# -- fitting ----------------------------------------------------------------------------------------
def fit(normal: list[tuple[str, np.ndarray]], cfg: dict[str, Any], cancel: threading.Event | None = None,
        on_pair=None):
    """Fit the density estimators on normal videos: ``[(group name, frames uint8 [T,H,W,3])]``.

    Returns (model, report). Needs >= 2 videos with >= 1 non-identical pair each."""
    import torch

    model_cfg, run_cfg = split_config(cfg)
    groups = []
    report: dict[str, Any] = {"videos": [], "skipped_identical_pairs": 0}
    for name, frames in normal:
        pairs = [(i, i + 1) for i in range(len(frames) - 1)]
        keep = [(a, b) for a, b in pairs if not np.array_equal(frames[a], frames[b])]
        report["skipped_identical_pairs"] += len(pairs) - len(keep)
        report["videos"].append({"name": name, "pairs": len(keep)})
        if keep:
            groups.append((name, frames, keep))
    if len(groups) < 2:
        have = ", ".join(f"{v['name']} ({v['pairs']} pairs)" for v in report["videos"]) or "none"
        raise EngineError(f"Fitting AI-VAD needs at least 2 normal videos with distinct consecutive frames; "
                          f"usable: {have}.")
    model = build_model(model_cfg, run_cfg["weights"], int(run_cfg["seed"]))
    if run_cfg.get("internal_resize", "input") == "input":
        f0 = groups[0][1]
        _set_internal_resize(model, f0.shape[1], f0.shape[2])
    total = sum(len(k) for _, _, k in groups)
    done = 0
    n_regions = 0
    model.train()
    with torch.no_grad():
        for name, frames, keep in groups:
            for a, b in keep:
                if cancel is not None and cancel.is_set():
                    raise EngineError("Fitting was cancelled; nothing was written.")
                batch = torch.stack([_to_tensor(frames[a:a + 1])[0], _to_tensor(frames[b:b + 1])[0]]).unsqueeze(0)
                feats = model(batch)
                for f in feats:
                    n = int(next(iter(f.values())).shape[0]) if f else 0
                    n_regions += n
                    if n:
                        model.density_estimator.update(f, name)
                done += 1
                if on_pair is not None:
                    on_pair(done, total)
    report["regions"] = n_regions
    if n_regions < 2 * max(1, int(model_cfg["n_components_velocity"])):
        raise EngineError(f"Fitting AI-VAD found only {n_regions} regions in the normal videos; the density "
                          f"estimators need more (lower box_score_thresh, or add videos).")
    try:
        model.density_estimator.fit()
    except Exception as e:
        raise EngineError(f"Fitting the AI-VAD density estimators failed ({type(e).__name__}: {e}).") from None
    model.eval()
    bad = [k for k, v in model.state_dict().items() if _is_bank(k) and v.is_floating_point() and not
           bool(torch.isfinite(v).all())]
    if bad:
        raise EngineError(f"Fitting gave non-finite values in {', '.join(bad[:3])} (duplicated or too few regions).")
    return model, report


# -- the engine -------------------------------------------------------------------------------------
class AiVadEngine(Engine):
    """AI-VAD on this machine (anomalib). ``artifacts`` = a fitted folder or .ckpt."""

    name: ClassVar[str] = "aivad"
    title: ClassVar[str] = "AI-VAD 异常检测 (anomalib, 本地)"
    kinds: ClassVar[frozenset[str]] = frozenset({DETECTOR})
    anomaly: ClassVar[bool] = True
    default_sampling: ClassVar[dict[str, Any]] = {"num_frames": None, "fps": 2, "max_side": 320}
    estimate_basis: ClassVar[str] = "CPU，按本机实测的每帧对耗时；AI-VAD 是 GPU 模型"

    def __init__(self, model: str | None = None, **config: Any):
        super().__init__(model=model or MODEL_ID, **config)
        self.artifacts = config.pop("artifacts", None) or _env_artifacts()
        self.weights = config.pop("weights", None)
        self.stride = int(config.pop("stride", 1) or 1)
        self.max_pairs = config.pop("max_pairs", None)
        self.overrides = dict(config)
        self._model = None
        self._cfg: dict[str, Any] | None = None
        self.calibration: dict[str, Any] | None = None
        self.cancel_event: threading.Event | None = None
        self.progress_done: tuple[int, int] | None = None

    def availability(self) -> tuple[bool, str]:
        import importlib.util

        if importlib.util.find_spec("anomalib") is None:  # never import it here: ~1 min on a busy CPU
            return False, "AI-VAD needs anomalib: pip install -e '.[vad]'."
        if not self.artifacts:
            return False, ("AI-VAD needs fitted artifacts: set GHOSTPROBE_AIVAD_ARTIFACTS or pass --artifacts "
                           "(make them with `ghostprobe vad fit`).")
        missing = artifact_missing(self.artifacts)
        if not Path(self.artifacts).exists() or missing:
            return False, f"The AI-VAD artifacts at {self.artifacts} are missing {', '.join(missing) or 'entirely'}."
        return True, f"ready: AI-VAD artifacts {Path(self.artifacts).name} (CPU: slow, see the estimate)"

    def _artifact_digest(self) -> str:
        p = Path(self.artifacts)
        files = [p] if p.is_file() else [p / CONFIG_FILE, p / BANKS_FILE, p / WEIGHTS_FILE]
        h = hashlib.sha256()
        for f in files:
            st = f.stat()
            h.update(f"{f.name}:{st.st_size}:{st.st_mtime_ns}".encode())
            if st.st_size < 50_000_000:
                h.update(f.read_bytes())
        return h.hexdigest()[:16]

    def describe(self) -> dict[str, Any]:
        ok, why = self.availability()
        if not ok:
            raise EngineError(why)
        cfg = self._config()
        return {"model": MODEL_ID, "revision": "art-" + self._artifact_digest(), "dtype": "float32",
                "settings": {**{k: cfg[k] for k in sorted(cfg)}, "stride": self.stride, "max_pairs": self.max_pairs}}

    def cost_location(self) -> CostLocation:
        return CostLocation("local-cpu")

    def _config(self) -> dict[str, Any]:
        if self._cfg is None:
            import yaml

            p = Path(self.artifacts)
            cfg = {} if p.is_file() else (yaml.safe_load((p / CONFIG_FILE).read_text(encoding="utf-8")) or {})
            cfg.pop("format", None)
            cal = cfg.get("calibration")
            self.calibration = cal if isinstance(cal, dict) and cfg.get("calibrated") else None
            m, r = split_config(cfg)
            self._cfg = self._overridden({**m, **r})
        return self._cfg

    def _overridden(self, cfg: dict[str, Any]) -> dict[str, Any]:
        """The config with this engine's overrides; a threshold other than the calibrated one is uncalibrated."""
        out = {**cfg, **self.overrides}
        if "threshold" in self.overrides and float(self.overrides["threshold"]) != float(cfg.get("threshold") or 0):
            out["calibrated"] = False
            self.calibration = None
        split_config(out)  # unknown override keys are one sentence
        return out

    def _load(self):
        if self._model is None:
            self._config()  # reads the calibration provenance
            self._model, cfg = load_artifact(self.artifacts, self.weights)
            self._cfg = self._overridden(cfg)
        return self._model, self._cfg

    def estimate_s(self, duration_s: float, sampling: dict[str, Any] | None = None) -> float:
        cfg = self._config()
        fps = float((sampling or self.default_sampling).get("fps") or 2)
        pairs = max(1, int(duration_s * fps) - 1) / max(1, self.stride)
        if self.max_pairs:
            pairs = min(pairs, int(self.max_pairs))
        per = S_PER_PAIR_CPU["velocity"]
        if cfg["use_pose_features"]:
            per += S_PER_PAIR_CPU["pose"]
        if cfg["use_deep_features"]:
            per += S_PER_PAIR_CPU["deep_per_box"] * int(cfg.get("max_boxes") or 20)
        return pairs * per

    def detect(self, clip: Clip, options: GenerationOptions | None = None) -> Detection:
        start = time.perf_counter()
        try:
            model, cfg = self._load()
            det = self._detect(model, cfg, clip)
        except EngineError as e:
            det = Detection(verdict=Verdict.error(str(e)), call=CallRecord(engine=self.name, model=MODEL_ID))
        except Exception as e:  # recorded, never a "no"
            det = Detection(verdict=Verdict.error(f"AI-VAD 出错：{type(e).__name__}: {e}"),
                            call=CallRecord(engine=self.name, model=MODEL_ID))
        det.call.latency_s = time.perf_counter() - start
        self.last_call = det.call
        return det

    def _detect(self, model, cfg: dict[str, Any], clip: Clip) -> Detection:
        t0 = time.perf_counter()
        ts = list(clip.timestamps_s)
        pairs = pair_indices(ts, self.stride, self.max_pairs, clip.frames)
        if not pairs:
            return Detection(verdict=Verdict.error("AI-VAD 需要至少一对不同的相邻帧，片段中没有。"),
                             call=CallRecord(engine=self.name, model=MODEL_ID, device="cpu"))
        firsts = clip.frames[[a for a, _ in pairs]]
        lasts = clip.frames[[b for _, b in pairs]]

        def on_pair(done: int, total: int) -> None:
            self.progress_done = (done, total)

        res = score_pairs(model, firsts, lasts, cfg, self.cancel_event, on_pair)
        if self.cancel_event is not None and self.cancel_event.is_set():
            raise EngineError("已取消：AI-VAD 在完成前被停止。")
        return self.to_detection(res, pairs, clip, cfg, time.perf_counter() - t0)

    def to_detection(self, res: list[PairResult], pairs: list[tuple[int, int]], clip: Clip, cfg: dict[str, Any],
                     elapsed: float) -> Detection:
        import cv2

        from engines.vad.verdict import RULE, verdict_from_scores

        thr = float(cfg.get("threshold") or 1.0)
        random_w = cfg.get("weights") == "random"
        fh, fw = clip.frames.shape[1:3]
        mw = min(64, fw)
        mh = max(1, int(round(fh * mw / fw)))
        track, boxes, maps, times = [], [], [], []
        for (a, b), r in zip(pairs, res):
            t = float(clip.timestamps_s[b])
            track.append((round(t, 4), round(r.pred_score, 5)))
            times.append(round(t, 4))
            m = cv2.resize(np.nan_to_num(r.anomaly_map.astype(np.float32)), (mw, mh), interpolation=cv2.INTER_AREA)
            maps.append(np.clip(m / (2.0 * thr), 0.0, 1.0))  # 0.5 on the map = the threshold
            for bx, lab, s in zip(r.boxes, r.labels, r.box_scores):
                boxes.append(Box(frame=int(b), t=round(t, 4), x1=float(bx[0]), y1=float(bx[1]), x2=float(bx[2]),
                                 y2=float(bx[3]), score=round(float(s), 5), label=lab))
        cal = self.calibration if cfg.get("calibrated") else None
        verdict = verdict_from_scores(track, boxes, fw, fh, thr, engine=self.name, random_weights=random_w,
                                      calibrated=bool(cfg.get("calibrated")), calibration=cal)
        arts = Artifacts(tracks={"anomaly": track}, thresholds={"anomaly": thr}, boxes=boxes,
                         maps=np.stack(maps).astype(np.float32) if maps else None, map_times=times,
                         extra={"rule": RULE, "frame_size": [int(fw), int(fh)], "pairs": len(pairs),
                                "frame_indices": [int(b) for _a, b in pairs],
                                "random_weights": random_w, "calibrated": bool(cfg.get("calibrated")),
                                "calibration": {k: cal.get(k) for k in ("n_clips", "n_frames", "quantile", "level",
                                                                        "date")} if cal else None,
                                "map_scale": "anomaly score / (2 x threshold), clipped to 0..1",
                                "note": RANDOM_NOTE if random_w else ""})
        call = CallRecord(engine=self.name, model=MODEL_ID, generate_s=elapsed, device="cpu",
                          extra={"pairs": len(pairs), "s_per_pair": round(elapsed / max(1, len(pairs)), 3),
                                 "random_weights": random_w})
        return Detection(verdict=verdict, call=call, artifacts=arts)


def _env_artifacts() -> str | None:
    import os

    return os.environ.get("GHOSTPROBE_AIVAD_ARTIFACTS") or None


def summary_json(d: Detection) -> str:
    return json.dumps({"verdict": d.verdict.to_dict(), **d.artifacts.summary()}, ensure_ascii=False, default=str)
