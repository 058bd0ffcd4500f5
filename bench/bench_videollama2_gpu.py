#!/usr/bin/env python
"""GPU benchmark for the real VideoLLaMA2 checkpoints through the worker's adapters (in process).

Run it with the **worker environment's** Python on the GPU machine (``make worker-env`` with a CUDA
torch, see engines/llm/worker/README.md), with the weights already downloaded:

    .venv-worker/bin/python bench/bench_videollama2_gpu.py --clip some_dashcam.avi
    .venv-worker/bin/python bench/bench_videollama2_gpu.py --clip x.avi --v1-config eval_configs/video_llama_eval_only_vl.yaml

Figures, one JSON line each (``"figure"`` names it):

- ``load_s``: building the adapter (official ``model_init`` + our dtype/device handling), per setup;
- ``s_per_clip``: one 16-frame clip answered (JPEG decode + official ``process_video`` + generate,
  ``--max-new-tokens``), ``--reps`` times (>= 3), min and median;
- ``peak_mem_gib``: ``torch.cuda.max_memory_allocated`` after load and during the answers, summed
  over the GPUs in use and the largest single GPU;
- setups: ``one_gpu`` (``--device cuda:0``) and, with 2+ visible GPUs, ``auto`` (``device_map="auto"``
  across all of them, e.g. 4×V100 16 GB, which a 7B in float16 needs);
- reference (one GPU, VideoLLaMA2 only): the official ``videollama2.mm_infer`` on the same video tensor
  and question, timed interleaved with the adapter. ``passed`` = the adapter's greedy answer equals
  mm_infer's and its median time is within 10 % of mm_infer's.
- ``--v1-config``: the seed's Video-LLaMA-2-7B-Finetuned through the ``videollama_v1`` adapter (its
  own environment: video_llama, transformers 4.28), one GPU only (its loader moves the whole model to
  one device); no official in-process reference exists for it, so ``passed`` is null there.

Without a GPU, the package or the weights it says so in one sentence (stderr, and a ``"skipped"``
JSON line) and exits 0, so ``make bench`` on a CPU machine skips it; bad arguments exit 2. Started
with GhostProbe's Python (as bench/run.py does), it continues in .venv-worker when that exists.
Nothing is written outside a temporary folder.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
WORKER = REPO / "engines" / "llm" / "worker"
QUESTION = ("视频中是否出现“鬼探头”（行人、骑车人或车辆从遮挡物后突然冲出到本车前方）？"
            "请先回答“是”或“否”，再用一句话说明。")
V2_MODEL = "DAMO-NLP-SG/VideoLLaMA2.1-7B-16F"
DEFAULT_CLIP = REPO.parent / "shared" / "data" / "dada-dev" / "images_5_046.avi"


def emit(**fields) -> None:
    print(json.dumps({"bench": "videollama2_gpu", **fields}, ensure_ascii=False), flush=True)


def no_gpu_reason() -> str | None:
    """Why no NVIDIA GPU can be used here, found without importing torch (a second, not half a minute)."""
    if os.environ.get("CUDA_VISIBLE_DEVICES", "unset").strip() in ("", "-1"):
        return "CUDA_VISIBLE_DEVICES hides every GPU: this benchmark needs the GPU machine (nothing was measured)."
    import glob

    if not (glob.glob("/dev/nvidia[0-9]*") or glob.glob("/proc/driver/nvidia/gpus/*")):
        return "No NVIDIA GPU on this machine (no /dev/nvidia*): this benchmark needs the GPU machine (nothing was measured)."
    return None


def fail(sentence: str) -> None:
    """Bad input: one sentence, exit 2."""
    print(sentence, file=sys.stderr)
    raise SystemExit(2)


def unavailable(sentence: str) -> None:
    """Nothing to measure on this machine (no GPU, package or weights): say so and exit 0, so that
    ``make bench`` on a CPU machine reports a skip rather than a failure."""
    print(sentence, file=sys.stderr)
    emit(figure="skipped", reason=sentence, target=None, passed=None)
    raise SystemExit(0)


def _reexec_in_worker_env() -> None:
    """Started with GhostProbe's Python (e.g. by bench/run.py)? Continue in the worker env if it exists."""
    try:
        import videollama2  # noqa: F401
        return
    except ImportError:
        pass
    worker_py = REPO / ".venv-worker" / "bin" / "python"
    if worker_py.exists() and Path(sys.executable).absolute() != worker_py.absolute():
        os.execv(str(worker_py), [str(worker_py), *sys.argv])


def preflight(model: str, need_videollama2: bool) -> None:
    try:
        import torch
    except ImportError:
        unavailable("torch is not installed here: run this with the worker environment's Python (.venv-worker/bin/python).")
    if not torch.cuda.is_available():
        unavailable(f"No CUDA GPU is visible to torch {torch.__version__}: this benchmark needs the GPU machine "
             "(nothing was measured).")
    if need_videollama2:
        try:
            import videollama2  # noqa: F401
        except ImportError:
            unavailable("The videollama2 package is not installed here: build the worker env (make worker-env) and run "
                 "this with .venv-worker/bin/python.")
        if not os.path.isdir(model):
            try:
                from huggingface_hub import snapshot_download

                snapshot_download(model, local_files_only=True)
            except Exception:  # noqa: BLE001
                unavailable(f"The weights of {model} are not in the Hugging Face cache: download them first "
                     f"(huggingface-cli download {model}) or pass a local folder with --model.")


def clip_frames(path: str, n: int = 16, max_side: int = 448, quality: int = 90) -> tuple[list[bytes], list[float]]:
    """n frames spread evenly over the clip, as GhostProbe's sampler sends them (JPEG, longest side 448)."""
    import cv2

    cap = cv2.VideoCapture(path)
    total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
    fps = float(cap.get(cv2.CAP_PROP_FPS) or 25.0)
    if total <= 0:
        fail(f"Cannot read frames from {path}: is it a video file?")
    out, ts = [], []
    for i in range(n):
        idx = min(total - 1, int((i + 0.5) * total / n))
        cap.set(cv2.CAP_PROP_POS_FRAMES, idx)
        ok, frame = cap.read()
        if not ok:
            continue
        h, w = frame.shape[:2]
        s = min(1.0, max_side / max(h, w))
        if s < 1.0:
            frame = cv2.resize(frame, (int(w * s), int(h * s)), interpolation=cv2.INTER_AREA)
        out.append(cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, quality])[1].tobytes())
        ts.append(idx / fps)
    cap.release()
    if not out:
        fail(f"No frame could be decoded from {path}.")
    return out, ts


def gpu_peak(reset: bool = False) -> tuple[float, float]:
    import torch

    peaks = []
    for d in range(torch.cuda.device_count()):
        peaks.append(torch.cuda.max_memory_allocated(d) / 2**30)
        if reset:
            torch.cuda.reset_peak_memory_stats(d)
    return round(sum(peaks), 3), round(max(peaks or [0.0]), 3)


def load_adapter(name: str, model: str, device: str | None, options: dict):
    import gc

    import torch

    gc.collect()
    torch.cuda.empty_cache()
    gpu_peak(reset=True)
    if str(WORKER) not in sys.path:
        sys.path.insert(0, str(WORKER))
    import importlib

    module = importlib.import_module(f"adapters.{name}")
    t0 = time.perf_counter()
    adapter = module.Adapter(model=model, device=device, options=options)
    torch.cuda.synchronize()
    return adapter, time.perf_counter() - t0


def official_mm_infer(adapter, frames: list[bytes], messages: list[dict], max_new_tokens: int) -> str:
    """The upstream inference call itself (needs cuda:0, which is where the one-GPU setup puts the model)."""
    from PIL import Image
    from videollama2 import mm_infer

    images = [Image.open(io.BytesIO(b)).convert("RGB") for b in adapter._pick(frames)]
    video = adapter.processor["video"](images)
    user = [m for m in messages if m["role"] == "user"]
    return mm_infer(video, [dict(m) for m in user], model=adapter.model, tokenizer=adapter.tokenizer, modal="video",
                    do_sample=False, max_new_tokens=max_new_tokens)


def bench_setup(label: str, adapter_name: str, model: str, device: str | None, options: dict, frames, ts,
                reps: int, max_new_tokens: int, reference: bool) -> None:
    import torch

    adapter, load_s = load_adapter(adapter_name, model, device, options)
    info = adapter.describe()
    common = {"model": model, "adapter": adapter_name, "setup": label, "device": info.get("device"),
              "frames": len(frames), "max_new_tokens": max_new_tokens}
    emit(figure="load_s", value=round(load_s, 2), **common)
    total, largest = gpu_peak(reset=True)
    emit(figure="peak_mem_gib", phase="after_load", sum_gib=total, max_gpu_gib=largest, **common)
    messages = [{"role": "user", "content": QUESTION}]
    ours, ref, texts, ref_texts = [], [], [], []
    adapter.chat(frames, ts, messages, max_new_tokens=8)  # warm-up (kernels, allocator), not counted
    for _ in range(reps):  # interleaved: adapter, then the official mm_infer, each repetition
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        out = adapter.chat(frames, ts, messages, max_new_tokens=max_new_tokens)
        torch.cuda.synchronize()
        ours.append(time.perf_counter() - t0)
        texts.append(out["text"])
        if reference:
            t0 = time.perf_counter()
            ref_texts.append(official_mm_infer(adapter, frames, messages, max_new_tokens))
            torch.cuda.synchronize()
            ref.append(time.perf_counter() - t0)
    total, largest = gpu_peak()
    emit(figure="peak_mem_gib", phase="answering", sum_gib=total, max_gpu_gib=largest, **common)
    row = {"figure": "s_per_clip", "min": round(min(ours), 3), "median": round(statistics.median(ours), 3),
           "reps": reps, "completion_tokens": out.get("completion_tokens"), "answer": texts[-1][:200], **common}
    if reference:
        same = all(a.strip() == b.strip() for a, b in zip(texts, ref_texts))
        ratio = statistics.median(ours) / statistics.median(ref)
        row.update(reference="videollama2.mm_infer", ref_min=round(min(ref), 3),
                   ref_median=round(statistics.median(ref), 3), ratio=round(ratio, 3), same_answer=same,
                   target="same greedy answer as mm_infer and median within 1.10x of it",
                   passed=bool(same and ratio <= 1.10))
    else:
        row.update(reference=None, passed=None,
                   note="no official in-process reference for this setup (mm_infer only runs on cuda:0)")
    emit(**row)
    del adapter
    import gc

    gc.collect()
    torch.cuda.empty_cache()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--clip", default=str(DEFAULT_CLIP), help=f"a dashcam video (default {DEFAULT_CLIP})")
    ap.add_argument("--model", default=V2_MODEL, help=f"VideoLLaMA2 checkpoint id or folder (default {V2_MODEL})")
    ap.add_argument("--v1-config", help="Video-LLaMA v1 eval config YAML (Video-LLaMA-2-7B-Finetuned); run in its env")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--skip-v2", action="store_true", help="only the v1 checkpoint")
    args = ap.parse_args(argv)
    if args.reps < 3:
        fail("--reps must be at least 3.")
    why = no_gpu_reason()
    if why:
        unavailable(why)
    if not args.skip_v2:
        _reexec_in_worker_env()
    if not os.path.exists(args.clip):
        fail(f"The clip {args.clip} does not exist.")
    preflight(args.model, need_videollama2=not args.skip_v2)
    import torch

    frames, ts = clip_frames(args.clip)
    n_gpu = torch.cuda.device_count()
    emit(figure="machine", gpus=n_gpu, names=[torch.cuda.get_device_name(i) for i in range(n_gpu)],
         torch=torch.__version__, clip=os.path.basename(args.clip))
    if not args.skip_v2:
        bench_setup("one_gpu", "videollama2", args.model, "cuda:0", {}, frames, ts, args.reps, args.max_new_tokens,
                    reference=True)
        if n_gpu > 1:
            bench_setup("auto", "videollama2", args.model, "cuda", {"device_map": "auto"}, frames, ts, args.reps,
                        args.max_new_tokens, reference=False)
        else:
            emit(figure="s_per_clip", setup="auto", model=args.model, skipped="only one GPU is visible")
    if args.v1_config:
        if not os.path.exists(args.v1_config):
            fail(f"The Video-LLaMA eval config {args.v1_config} does not exist.")
        bench_setup("one_gpu", "videollama_v1", args.v1_config, None, {"model_type": "llama_v2", "gpu_id": "0"},
                    frames, ts, args.reps, args.max_new_tokens, reference=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
