"""``ghostprobe vad``: anomaly heatmaps (motion map, AI-VAD local, AI-VAD on SageMaker).

- ``vad run VIDEO --engine motion|aivad|sagemaker [--artifacts DIR|--endpoint NAME] [--stride N]
  [--fps F] [--max-side N] [--out DIR] [--recompute] [--json]``: the same path as the Heatmap tab
  (webapp/vad.py): reuse by cache key, or detect, log and store per frame and per box; writes the
  heatmap MP4 and the gallery frames. The time estimate is printed before a run starts.
- ``vad fit --normal DIR --out ARTIFACTS [--weights random|pretrained]``: fit AI-VAD's memory banks
  on >= 2 normal videos; writes the three-file artifact.
- ``vad calibrate --engine aivad|motion [--artifacts DIR] --normal DIR [--quantile 0.99] [--level frame|peak]
  [--json]``: the threshold at a quantile of held-out normal clips' in-path scores (never the clips the
  banks were fitted on: refused by SHA-256), written with its provenance into ai_vad_config.yaml or
  motion_calibration.json (see engines/vad/calibrate.py).
- ``vad weights pull [--list]``: the pretrained backbones (RAFT, Mask R-CNN v2, keypoint R-CNN,
  CLIP ViT-B/16), downloaded only on this explicit request, with sizes and progress.
- ``vad serve --model-dir DIR [--port 8080]``: the SageMaker serving container's server.
- ``vad deploy NAME --image URI --model-data s3://… --role ARN`` / ``vad delete NAME``.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from webapp.cli import CliError, print_json

WEIGHT_SIZES_MB = {"raft_large": 21, "maskrcnn_resnet50_fpn_v2": 177, "keypointrcnn_resnet50_fpn": 227,
                   "clip_vit_b16": 335}
VIDEO_EXT = {".mp4", ".avi", ".mkv", ".mov", ".webm", ".m4v"}


def register(sub) -> None:
    p = sub.add_parser("vad", help="anomaly heatmaps: motion map, AI-VAD local or on SageMaker")
    vs = p.add_subparsers(dest="vad_command", metavar="ACTION")
    vs.required = True

    r = vs.add_parser("run", help="anomaly scores, boxes and a heatmap video for one video")
    r.add_argument("video", metavar="VIDEO")
    r.add_argument("--engine", default="motion", choices=("motion", "aivad", "sagemaker"))
    r.add_argument("--artifacts", help="AI-VAD artifact folder (three files) or anomalib .ckpt; motion: the folder "
                                       "or file of its calibration")
    r.add_argument("--endpoint", help="SageMaker endpoint name")
    r.add_argument("--region", help="AWS region of the endpoint")
    r.add_argument("--async-input", help="sagemaker: s3:// prefix for request files — asynchronous inference "
                                         "(an endpoint deployed with --async-output; long videos)")
    r.add_argument("--async-timeout", type=float, help="sagemaker async: seconds to wait for the result (3600)")
    r.add_argument("--stride", type=int, help="AI-VAD: score every N-th frame pair")
    r.add_argument("--fps", type=float, help="sampling rate (default: the engine's)")
    r.add_argument("--max-side", type=int, help="longer side of the sampled frames")
    r.add_argument("--threshold", type=float, help="decision threshold (engine default otherwise)")
    r.add_argument("--out", help="folder for the heatmap MP4 and gallery (default: the cache folder)")
    r.add_argument("--recompute", action="store_true", help="do not reuse a stored result")
    r.add_argument("--json", action="store_true")
    r.set_defaults(func=cmd_run)

    f = vs.add_parser("fit", help="fit AI-VAD's memory banks on normal videos")
    f.add_argument("--normal", required=True, help="folder with >= 2 normal videos")
    f.add_argument("--out", required=True, help="artifact folder to write")
    f.add_argument("--weights", choices=("random", "pretrained"), default="pretrained")
    f.add_argument("--fps", type=float, default=2.0)
    f.add_argument("--max-side", type=int, default=320)
    f.add_argument("--max-frames", type=int, default=20, help="frames per video (CPU cost!)")
    f.add_argument("--no-pose", action="store_true", help="without pose features")
    f.add_argument("--no-deep", action="store_true", help="without CLIP deep features")
    f.add_argument("--json", action="store_true")
    f.set_defaults(func=cmd_fit)

    c = vs.add_parser("calibrate", help="set the threshold on held-out normal clips")
    c.add_argument("--engine", default="aivad", choices=("aivad", "motion"))
    c.add_argument("--artifacts", help="aivad: the artifact folder (its ai_vad_config.yaml is updated); motion: "
                                       "where motion_calibration.json goes (default <data dir>/vad)")
    c.add_argument("--normal", required=True, help="folder of held-out normal videos (not the fitting clips)")
    c.add_argument("--quantile", type=float, default=0.99)
    c.add_argument("--level", choices=("frame", "peak"), default="frame",
                   help="quantile over every frame's score (default) or over each clip's peak")
    c.add_argument("--fps", type=float, help="sampling rate (default: the engine's, as `vad run` uses)")
    c.add_argument("--max-side", type=int, help="longer side of the sampled frames (default: the engine's)")
    c.add_argument("--stride", type=int, help="AI-VAD: score every N-th frame pair")
    c.add_argument("--max-pairs", type=int, help="AI-VAD: at most N pairs per clip (CPU cost)")
    c.add_argument("--json", action="store_true")
    c.set_defaults(func=cmd_calibrate)

    w = vs.add_parser("weights", help="pretrained AI-VAD backbones")
    ws = w.add_subparsers(dest="weights_command", metavar="ACTION")
    ws.required = True
    wp = ws.add_parser("pull", help="download the pretrained backbones (~760 MB) into $TORCH_HOME and ~/.cache/clip")
    wp.add_argument("--list", action="store_true", help="only say what is there and what would be downloaded")
    wp.set_defaults(func=cmd_weights_pull)

    s = vs.add_parser("serve", help="the SageMaker serving container's server (port 8080)")
    s.add_argument("--model-dir", default="/opt/ml/model")
    s.add_argument("--port", type=int, default=8080)
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--engine", choices=("aivad", "motion"), default="aivad")
    s.set_defaults(func=cmd_serve)

    d = vs.add_parser("deploy", help="create a SageMaker endpoint for the container and wait until in service")
    d.add_argument("name")
    d.add_argument("--image", required=True, help="ECR image URI")
    d.add_argument("--model-data", required=True, help="s3://…/model.tar.gz with the three AI-VAD files")
    d.add_argument("--role", required=True, help="SageMaker execution role ARN")
    d.add_argument("--instance-type", default="ml.g4dn.xlarge")
    d.add_argument("--instances", type=int, default=1)
    d.add_argument("--region")
    d.add_argument("--async-output", help="s3:// output path: an asynchronous-inference endpoint (long videos)")
    d.add_argument("--async-failure", help="s3:// path for failed asynchronous requests (default OUTPUT/failures)")
    d.add_argument("--max-concurrent", type=int, help="async: MaxConcurrentInvocationsPerInstance")
    d.add_argument("--no-wait", action="store_true")
    d.set_defaults(func=cmd_deploy)

    x = vs.add_parser("delete", help="delete a SageMaker endpoint, its config and model")
    x.add_argument("name")
    x.add_argument("--region")
    x.set_defaults(func=cmd_delete)


def _progress(frac: float, msg: str) -> None:
    print(f"\r[{frac * 100:5.1f}%] {msg[:100]:<100}", end="", file=sys.stderr, flush=True)


def cmd_run(args, ctx) -> int:
    from engines.registry import get_engine
    from engines.video import probe
    from webapp import vad as V

    p = Path(args.video)
    if not p.exists():
        raise CliError(f"{args.video} does not exist")
    config: dict = {}
    if args.engine == "aivad":
        if args.artifacts:
            config["artifacts"] = args.artifacts
        if args.stride:
            config["stride"] = args.stride
    elif args.engine == "sagemaker":
        if args.endpoint:
            config["endpoint"] = args.endpoint
        if args.region:
            config["region"] = args.region
        if args.async_input:
            config["async_input"] = args.async_input
        if args.async_timeout:
            config["async_timeout_s"] = args.async_timeout
    elif args.endpoint or args.async_input:
        raise CliError("--endpoint and --async-input are for --engine sagemaker")
    elif args.artifacts:  # motion: its calibration
        config["calibration"] = args.artifacts
    if args.threshold is not None:
        config["threshold"] = args.threshold
    eng = get_engine(args.engine, **config)
    ok, why = eng.availability()
    if not ok:
        from engines.errors import EngineError

        raise EngineError(why)
    sampling = V.sampling_for(type(eng), args.fps, args.max_side)
    est = V.estimate_s(eng, probe(p).duration_s, sampling)
    if est is not None:
        from webapp.messages import CATALOGUE, m

        basis = m(f"vad_basis_{args.engine}" if f"vad_basis_{args.engine}" in CATALOGUE else "vad_basis_default", "en")
        print(f"estimate: ~{V.fmt_duration(est, 'en')} ({basis})", file=sys.stderr)
    cache = Path(args.out) if args.out else ctx.config.cache_dir
    out = V.run_heatmap(ctx.store, cache, p, p.name, args.engine, config=config, fps=args.fps,
                        max_side=args.max_side, progress=None if args.json else _progress, reuse=not args.recompute)
    if not args.json:
        print(file=sys.stderr)
    r = out.result
    v = r.verdict
    doc = {"response_id": out.response_id, "cached": out.cached, "engine": args.engine, "video": str(p),
           "verdict": v.to_dict(), "frames": len(r.track), "boxes": len(r.artifacts.boxes),
           "threshold": r.threshold, "heatmap": str(out.video) if out.video else None,
           "gallery": [g for g, _ in out.gallery], "decode_s": out.decode_s, "detect_s": out.detect_s,
           "random_weights": r.random_weights, "sampling": out.sampling}
    if args.json:
        print_json(doc)
    else:
        if v.status != "ok":
            print(f"error: {v.reason}")
        else:
            yes = "ghost probing" if v.ghost_probing else "no ghost probing"
            onset = f", peak at {v.onset_s:.2f} s" if v.onset_s is not None else ""
            print(f"{yes} (confidence {v.confidence:.2f}{onset}) — {v.reason}")
        print(f"response #{out.response_id}{' (reused)' if out.cached else ''}: {len(r.track)} frame scores, "
              f"{len(r.artifacts.boxes)} boxes; heatmap {out.video}")
        if r.random_weights:
            print("random weights: scores are meaningless")
    return 0 if v.status == "ok" else 1


def _normal_videos(folder: Path) -> list[Path]:
    from engines.video import is_frame_folder

    if not folder.is_dir():
        raise CliError(f"--normal {folder} is not a folder")
    vids = [q for q in sorted(folder.iterdir()) if (q.is_file() and q.suffix.lower() in VIDEO_EXT)
            or (q.is_dir() and is_frame_folder(q))]
    if len(vids) < 2:
        raise CliError(f"--normal {folder} holds {len(vids)} video(s); AI-VAD fitting needs at least 2 normal videos")
    return vids


def cmd_fit(args, ctx) -> int:
    from engines.vad import aivad as A
    from engines.video import load_clip

    vids = _normal_videos(Path(args.normal))
    normal = []
    for v in vids:
        clip = load_clip(v, num_frames=None, fps=args.fps, max_side=args.max_side)
        normal.append((v.name, clip.frames[: max(2, args.max_frames)]))
    shapes = {f.shape[1:3] for _, f in normal}
    if len(shapes) > 1:
        import cv2
        import numpy as np

        h, w = normal[0][1].shape[1:3]
        normal = [(n, np.stack([cv2.resize(x, (w, h)) for x in f])) for n, f in normal]
    cfg = {"weights": args.weights, "use_pose_features": not args.no_pose, "use_deep_features": not args.no_deep}
    model, report = A.fit(normal, cfg, on_pair=lambda d, t: _progress(d / t, f"fitting: pair {d}/{t}"))
    print(file=sys.stderr)
    from engines.video import sha256_file

    A.save_artifact(model, {**A.MODEL_DEFAULTS, **A.RUN_DEFAULTS, **cfg,
                            "fitted_on": [n for n, _ in normal],
                            "fitted_sha256": [sha256_file(v) for v in vids if v.is_file()]}, args.out)
    report["out"] = str(args.out)
    report["random_weights"] = args.weights == "random"
    if args.json:
        print_json(report)
    else:
        print(f"fitted on {len(report['videos'])} videos, {report['regions']} regions "
              f"({report['skipped_identical_pairs']} identical pairs skipped); wrote {args.out}")
        print("threshold: not calibrated (1.0) — run `ghostprobe vad calibrate --artifacts "
              f"{args.out} --normal HELD_OUT_DIR` on other normal clips")
        if args.weights == "random":
            print("random weights: scores are meaningless")
    return 0


def _calibration_clips(folder: Path) -> list[dict]:
    """The held-out normal videos: every visible file must be a readable video (one sentence otherwise)."""
    from engines.video import probe, sha256_file

    if not folder.exists():
        raise CliError(f"--normal {folder} does not exist")
    files = [folder] if folder.is_file() else sorted(q for q in folder.iterdir() if not q.name.startswith("."))
    out, seen = [], {}
    for q in files:
        if q.is_dir():
            continue
        if q.suffix.lower() not in VIDEO_EXT:
            raise CliError(f"--normal: {q.name} is not a video (expected {', '.join(sorted(VIDEO_EXT))})")
        try:
            meta = probe(q)
        except Exception as e:
            raise CliError(f"--normal: {q.name} is not a readable video ({type(e).__name__})") from None
        if meta.frames is not None and meta.frames < 2:
            raise CliError(f"--normal: {q.name} has fewer than two frames")
        sha = sha256_file(q)
        if sha in seen:
            raise CliError(f"--normal: {q.name} is the same file as {seen[sha]} (SHA-256); each clip counts once")
        seen[sha] = q.name
        out.append({"name": q.name, "sha256": sha, "path": str(q)})
    if not out:
        raise CliError(f"--normal {folder} holds no videos to calibrate on")
    return out


def cmd_calibrate(args, ctx) -> int:
    from engines.registry import get_engine
    from engines.vad import calibrate as C
    from webapp import vad as V
    from webapp.detection import load_clip_timed

    C.check_quantile(args.quantile)
    clips = _calibration_clips(Path(args.normal))
    warnings: list[str] = []
    config: dict = {}
    if args.engine == "aivad":
        import yaml

        from engines.vad import aivad as A

        art = args.artifacts or A._env_artifacts()
        if not art:
            raise CliError("--artifacts is required for --engine aivad (the folder `vad fit` wrote)")
        if Path(art).is_file():
            raise CliError(f"{art} is an anomalib checkpoint: calibration is written into a three-file artifact's "
                           f"{A.CONFIG_FILE}")
        config["artifacts"] = art
        if args.stride:
            config["stride"] = args.stride
        if args.max_pairs:
            config["max_pairs"] = args.max_pairs
        eng = get_engine("aivad", **config)
        ok, why = eng.availability()
        if not ok:
            raise CliError(why)
        cfg = yaml.safe_load((Path(art) / A.CONFIG_FILE).read_text(encoding="utf-8")) or {}
        same, warnings = C.overlap(clips, cfg.get("fitted_sha256"), cfg.get("fitted_on"))
        if same:
            raise CliError(f"--normal holds {len(same)} clip(s) the memory banks were fitted on ({', '.join(same)}); "
                           f"calibrate on held-out normal clips")
    else:
        if args.stride or args.max_pairs:
            raise CliError("--stride and --max-pairs are for --engine aivad")
        eng = get_engine("motion", threshold=0.5)  # scores do not depend on the threshold
    sampling = V.sampling_for(type(eng), args.fps, args.max_side)
    ident = eng.identity(sampling=sampling)
    t0 = time.perf_counter()

    def load(c):
        try:
            return load_clip_timed(c["path"], sampling)[0]
        except Exception as e:
            raise CliError(f"--normal: {c['name']} could not be decoded ({type(e).__name__})") from None

    def on_clip(i, n, name):
        if not args.json:
            _progress(i / n, f"scoring normal clip {i + 1}/{n}: {name}")

    prov = C.calibrate(eng.detect, clips, load, args.quantile, args.level, on_clip)
    prov["engine"] = {"engine": ident.engine, "model": ident.model, "revision": ident.revision,
                      "random_weights": (getattr(eng, "_cfg", None) or {}).get("weights") == "random"}
    prov["sampling"] = sampling
    prov["seconds"] = round(time.perf_counter() - t0, 2)
    if args.engine == "aivad":
        prov["engine"]["settings"] = {k: ident.settings.get(k) for k in ("stride", "max_pairs", "max_boxes")}
        written = C.write_aivad(config["artifacts"], prov)
    else:
        written = C.write_motion(C.motion_path(args.artifacts), prov)
    if not args.json:
        print(file=sys.stderr)
    doc = {**prov, "written": str(written), "warnings": warnings}
    if args.json:
        print_json(doc)
    else:
        for w in warnings:
            print(f"warning: {w}", file=sys.stderr)
        print(f"threshold {prov['threshold']:.6g} = q{args.quantile:g} of {prov['n_values']} {args.level} scores "
              f"from {prov['n_clips']} normal clips ({prov['n_frames']} frames); wrote {written}")
        if prov["engine"]["random_weights"]:
            print("random weights: scores are meaningless")
    return 0


def cmd_weights_pull(args, ctx) -> int:
    from engines.vad import aivad as A

    files = A.pretrained_files()
    todo = []
    for name, (path, url) in files.items():
        there = path.is_file()
        print(f"{'✓' if there else '·'} {name:<28} ~{WEIGHT_SIZES_MB.get(name, 0):>4} MB  {path}")
        if not there:
            todo.append((name, path, url))
    if not todo:
        print("all AI-VAD backbones are on this machine")
        return 0
    total = sum(WEIGHT_SIZES_MB.get(n, 0) for n, _, _ in todo)
    if args.list:
        print(f"{len(todo)} file(s) to download, ~{total} MB (run without --list to download)")
        return 0
    import torch.hub

    for name, path, url in todo:
        print(f"downloading {name} (~{WEIGHT_SIZES_MB.get(name, 0)} MB) from {url.split('/')[2]}", file=sys.stderr)
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            torch.hub.download_url_to_file(url, str(path), progress=True)
        except Exception as e:
            from engines.errors import EngineError

            raise EngineError(f"Downloading {name} failed ({type(e).__name__}); no network or the host refused.") \
                from None
    return 0


def cmd_serve(args, ctx) -> int:
    from engines.vad.serve.server import main

    return main(["serve", "--model-dir", args.model_dir, "--port", str(args.port), "--host", args.host,
                 "--engine", args.engine])


def cmd_deploy(args, ctx) -> int:
    from engines.vad.serve.deploy import deploy

    res = deploy(args.name, args.image, args.model_data, args.role, instance_type=args.instance_type,
                 instance_count=args.instances, region=args.region, async_output=args.async_output,
                 async_failure=args.async_failure, max_concurrent=args.max_concurrent,
                 wait=not args.no_wait)
    print(f"endpoint {res.endpoint}: {res.status} (config {res.config}, model {res.model})")
    return 0


def cmd_delete(args, ctx) -> int:
    from engines.vad.serve.deploy import delete

    for what in delete(args.name, region=args.region):
        print(f"deleted {what}")
    return 0
