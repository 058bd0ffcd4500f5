"""Engine "transformers": a local video LLM loaded with ``AutoModelForImageTextToText`` + ``AutoProcessor``.

Any video-capable model transformers 5 loads natively works: VideoLLaMA3
(``VideoLlama3ForConditionalGeneration``), Qwen2.5-VL / Qwen3-VL, LLaVA-OneVision, LLaVA-NeXT-Video.

- The model is configuration: ``model=`` or ``GHOSTPROBE_HF_MODEL`` (a hub id or a local folder). Nothing
  is downloaded unless ``GHOSTPROBE_ALLOW_DOWNLOAD=1``: loading passes ``local_files_only=True``.
- Frames come from our sampler (``Clip.frames``, uint8 [T,H,W,3]) and go to the processor as a decoded
  video together with ``VideoMetadata`` (fps, original frame indices) so timestamp-aware models
  (VideoLLaMA3, Qwen) see the real times. Paths are never passed (transformers' path decoding needs
  torchcodec).
- Precision follows the hardware (:func:`choose_precision`): bf16 where supported, fp16 + SDPA on
  compute capability < 8.0 (V100: no bf16, no flash-attention), float32 on CPU with a speed warning;
  ``device_map="auto"`` (accelerate) when several GPUs are visible, e.g. 4×V100 16 GB.
- Loaded models are cached per (model, dtype, device plan) in-process behind a lock.
- Streaming: ``generate`` runs in a thread feeding a ``TextIteratorStreamer``; greedy when
  ``temperature == 0``. On Hugging Face ZeroGPU (``import spaces`` works) the generate call is wrapped
  in ``spaces.GPU(duration=...)``.
- Multi-turn: the video goes into the first user turn only, so follow-up questions keep it in context.

Identity (``describe()``, read without loading weights): ``model`` (the id or folder), ``revision`` —
the commit hash of a Hugging Face cache snapshot (``snapshots/<hash>`` or what ``refs/<revision>``
points at), else ``local-`` + 16 hex of :func:`folder_fingerprint` (config, tokenizer and template files
byte for byte; weight files by name, size and the SHA-256 of their first and last MiB — never GBs) —
``dtype`` and ``attention`` as :func:`detect_precision` will choose them, ``video_mode`` ``"video"``
(our frames as one decoded video with their timestamps) and ``settings.device``. The revision a call
reports (``last_call.revision``) is the loaded config's ``_commit_hash`` or the same fingerprint. If an
architecture refuses SDPA the load falls back to eager; later ``describe()`` answers say so.
Cost location: ``local-cuda`` when the engine runs on CUDA, else ``local-cpu``.

Environment: ``GHOSTPROBE_HF_MODEL``, ``GHOSTPROBE_ALLOW_DOWNLOAD``, ``GHOSTPROBE_HF_DTYPE``
(auto|bfloat16|float16|float32), ``GHOSTPROBE_HF_ATTN`` (sdpa|eager|flash_attention_2),
``GHOSTPROBE_HF_DEVICE`` (auto|cpu|cuda), ``GHOSTPROBE_HF_REVISION``, ``GHOSTPROBE_ZEROGPU_DURATION``.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import queue
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engines.base import CallRecord, CostLocation, Engine, GenerationOptions, Message
from engines.errors import EngineError
from engines.llm import install_log_filter, scrub
from engines.types import Clip

log = logging.getLogger(__name__)

CPU_WARNING = "runs on CPU in float32: expect minutes per video"
NO_MODEL = "No model configured: set GHOSTPROBE_HF_MODEL to a model id or local folder."
VIDEO_MODE = "video"  # sampled frames go to the processor as one decoded video with VideoMetadata

# Files of a model folder that make up its revision fingerprint (see folder_fingerprint).
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".gguf", ".ckpt", ".h5", ".msgpack")
HASHED_SUFFIXES = (".json", ".jinja", ".txt", ".model", ".tiktoken", ".py")
SAMPLE_BYTES = 1 << 20  # of each weight file, the first and last MiB are hashed
_COMMIT = re.compile(r"^[0-9a-f]{40}$")
# Architectures whose load refused SDPA and fell back to eager (model reference → attention used).
_ATTN_FALLBACK: dict[str, str] = {}


from engines.settings import env as _env  # noqa: E402  (the one settings object)


def _truthy(v: Any) -> bool:
    return str(v).strip().lower() in ("1", "true", "yes", "on")


# -- hardware → precision -------------------------------------------------------------------------

@dataclass(frozen=True)
class Precision:
    """How to load a model on this machine (pure data: testable without a GPU)."""

    dtype: str  # "bfloat16" | "float16" | "float32"
    attn_implementation: str  # "sdpa" | "eager" | "flash_attention_2"
    device_map: Any  # None (CPU), {"": 0} (one GPU) or "auto" (several GPUs, accelerate)
    device: str  # "cpu" | "cuda"
    warning: str | None = None


def choose_precision(*, cuda: bool, gpu_count: int = 0, capability: tuple[int, int] | None = None,
                     bf16_supported: bool = False, dtype: str | None = None, attn: str | None = None,
                     device: str | None = None) -> Precision:
    """Pick dtype, attention kernel and device map from what the hardware can do.

    - CPU: float32 (half precision on CPU is slower and less accurate), with a speed warning.
    - CUDA with compute capability < 8.0 (V100 = 7.0, T4 = 7.5): float16 and SDPA; bf16 and
      flash-attention 2 need Ampere or newer.
    - CUDA ≥ 8.0: bf16 where ``torch.cuda.is_bf16_supported()``, else float16.
    - Several GPUs: ``device_map="auto"`` so accelerate spreads the layers (a 7B model in fp16 is
      ~15 GB: it does not fit one 16 GB V100 with activations, it does fit 4 of them).
    Explicit ``dtype``/``attn``/``device`` ("auto" = choose) override the choice.
    """
    dtype = None if dtype in (None, "", "auto") else dtype
    attn = None if attn in (None, "", "auto") else attn
    want = (device or "auto").lower()
    if want == "cpu" or not cuda:
        if want.startswith("cuda") and not cuda:
            raise EngineError("GHOSTPROBE_HF_DEVICE asks for CUDA but torch sees no GPU here.")
        d = dtype or "float32"
        warn = CPU_WARNING if d == "float32" else f"runs on CPU in {d}: expect minutes per video"
        return Precision(d, attn or "sdpa", None, "cpu", warn)
    old = capability is not None and tuple(capability) < (8, 0)
    if dtype is None:
        dtype = "float16" if old or not bf16_supported else "bfloat16"
    if old and dtype == "bfloat16":
        raise EngineError("This GPU (compute capability < 8.0, e.g. V100) has no bfloat16: use float16.")
    if attn is None:
        attn = "sdpa"
    if old and attn == "flash_attention_2":
        raise EngineError("flash-attention 2 needs compute capability 8.0 or newer; use sdpa or eager on this GPU.")
    device_map: Any = "auto" if gpu_count > 1 else {"": 0}
    return Precision(dtype, attn, device_map, "cuda", None)


def detect_precision(config: dict[str, Any] | None = None) -> Precision:
    import torch

    config = config or {}
    cuda = torch.cuda.is_available()
    count = torch.cuda.device_count() if cuda else 0
    try:
        cap = torch.cuda.get_device_capability(0) if cuda else None
        bf16 = bool(cuda and torch.cuda.is_bf16_supported())
    except Exception:  # ZeroGPU: CUDA is emulated outside @spaces.GPU calls; its GPUs are Ampere or newer
        if not on_zero_gpu():
            raise
        cap, bf16, count = (8, 0), True, 1
    return choose_precision(
        cuda=cuda, gpu_count=count, capability=cap, bf16_supported=bf16,
        dtype=config.get("dtype") or _env("GHOSTPROBE_HF_DTYPE"),
        attn=config.get("attn_implementation") or _env("GHOSTPROBE_HF_ATTN"),
        device=config.get("device") or _env("GHOSTPROBE_HF_DEVICE"),
    )


# -- model cache -----------------------------------------------------------------------------------

@dataclass
class Loaded:
    model: Any
    processor: Any
    precision: Precision
    device_desc: str
    revision: str | None
    load_s: float
    attention: str = ""  # the attention kernel actually loaded (eager when the architecture refused SDPA)
    lock: threading.Lock = field(default_factory=threading.Lock)  # one generate at a time per model


_CACHE: dict[tuple[str, str, str, str], Loaded] = {}
_CACHE_LOCK = threading.Lock()


def clear_cache() -> None:
    with _CACHE_LOCK:
        _CACHE.clear()


def _sampled_sha256(path: Path, size: int) -> str:
    """SHA-256 of the first and last :data:`SAMPLE_BYTES` of a file (all of it when it is small)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        if size <= 2 * SAMPLE_BYTES:
            h.update(f.read())
        else:
            h.update(f.read(SAMPLE_BYTES))
            f.seek(size - SAMPLE_BYTES)
            h.update(f.read(SAMPLE_BYTES))
    return h.hexdigest()


def folder_fingerprint(folder: Path) -> str:
    """SHA-256 over a model folder's top-level files in name order, reading no more than 2 MiB of any
    weight file. Per file: ``name NUL size NUL`` then, for config / tokenizer / template / code files
    (:data:`HASHED_SUFFIXES`: config.json, the weight index, chat templates…), the bytes themselves; for
    weight files (:data:`WEIGHT_SUFFIXES`), the hex SHA-256 of their first and last MiB (so a fine-tune
    saved over the same folder, same sizes, is another revision). Other files (README…) are ignored;
    modification times are not read (a copied folder keeps its revision)."""
    h = hashlib.sha256()
    for f in sorted(Path(folder).iterdir(), key=lambda p: p.name):
        if not f.is_file():
            continue
        name = f.name.lower()
        if name.endswith(WEIGHT_SUFFIXES):
            size = f.stat().st_size
            h.update(f"{f.name}\0{size}\0".encode())
            h.update(_sampled_sha256(f, size).encode())
        elif name.endswith(HASHED_SUFFIXES):
            data = f.read_bytes()
            h.update(f"{f.name}\0{len(data)}\0".encode())
            h.update(data)
    return h.hexdigest()


def local_revision(folder: Path) -> str | None:
    """The commit hash of a Hugging Face cache snapshot folder, else ``local-`` + 16 hex of
    :func:`folder_fingerprint`; None when the folder has no config.json. Loads no weights."""
    folder = Path(folder).expanduser().resolve()
    if folder.parent.name == "snapshots" and _COMMIT.match(folder.name):
        return folder.name
    if not (folder / "config.json").is_file():
        return None
    return "local-" + folder_fingerprint(folder)[:16]


def hub_revision(model: str, revision: str | None = None) -> str | None:
    """The commit hash of a hub model in the local cache (the snapshot ``refs/<revision>`` points at, or
    ``revision`` itself when it is a commit hash); None when it is not cached. No network."""
    if revision and _COMMIT.match(revision):
        return revision
    try:
        from huggingface_hub import try_to_load_from_cache

        hit = try_to_load_from_cache(model, "config.json", revision=revision)
    except Exception:  # noqa: BLE001  an invalid id or an unreadable cache: unknown
        return None
    if isinstance(hit, str):
        snap = Path(hit).parent
        if snap.parent.name == "snapshots" and _COMMIT.match(snap.name):
            return snap.name
    return None


def _device_desc(model: Any, precision: Precision) -> str:
    if precision.device == "cpu":
        return f"cpu ({precision.dtype})"
    import torch

    devmap = getattr(model, "hf_device_map", None)
    gpus = sorted({v for v in (devmap or {}).values() if isinstance(v, int)})
    if len(gpus) > 1:
        return f"{len(gpus)}× {torch.cuda.get_device_name(gpus[0])} (device_map=auto, {precision.dtype})"
    return f"cuda:0 ({torch.cuda.get_device_name(0)}, {precision.dtype})"


def on_zero_gpu() -> bool:
    """True on Hugging Face ZeroGPU hardware (the ``spaces`` package is importable there)."""
    return importlib.util.find_spec("spaces") is not None and bool(_env("SPACE_ID"))


def _zero_gpu_wrap(fn, duration: int):
    """On Hugging Face ZeroGPU, run ``fn`` under ``spaces.GPU(duration=...)``; elsewhere return it as is."""
    if importlib.util.find_spec("spaces") is None:
        return fn
    try:
        import spaces  # type: ignore[import-not-found]
    except Exception:  # a broken or unrelated "spaces" module: run normally
        return fn
    gpu = getattr(spaces, "GPU", None)
    return gpu(duration=duration)(fn) if gpu else fn


def _to_conversation(messages: list[Message], with_video: bool) -> list[dict[str, Any]]:
    """Our {"role", "content": str} messages → processor chat format; the video joins the first user turn."""
    conv: list[dict[str, Any]] = []
    placed = not with_video
    for m in messages:
        content = m.get("content", "")
        parts: list[dict[str, Any]] = content if isinstance(content, list) else [{"type": "text", "text": str(content)}]
        if not placed and m.get("role") == "user":
            parts = [{"type": "video"}, *parts]
            placed = True
        conv.append({"role": m.get("role", "user"), "content": parts})
    if not placed:  # no user turn at all: the video stands alone as the question
        conv.append({"role": "user", "content": [{"type": "video"}]})
    return conv


def _video_metadata(clip: Clip):
    from transformers.video_utils import VideoMetadata

    fps = float(clip.fps) if clip.fps else None
    total = int(getattr(clip.meta, "frames", 0) or 0) or clip.num_frames
    indices = [int(i) for i in clip.indices] if clip.indices is not None and len(clip.indices) == clip.num_frames else None
    if fps and indices is None:
        indices = [round(t * fps) for t in clip.timestamps_s]
    if indices is None:
        indices = list(range(clip.num_frames))
    total = max(total, max(indices) + 1 if indices else 1)
    h, w = int(clip.frames.shape[1]), int(clip.frames.shape[2])
    return VideoMetadata(total_num_frames=total, fps=fps, width=w, height=h,
                         duration=float(clip.duration_s) if clip.duration_s else None,
                         video_backend="ghostprobe", frames_indices=indices)



class TransformersEngine(Engine):
    name = "transformers"
    title = "Transformers (local video LLM: VideoLLaMA3, Qwen-VL, LLaVA-OneVision…)"
    remote = False
    default_sampling = {"num_frames": 16, "fps": None, "max_side": 448}

    def __init__(self, model: str | None = None, **config: Any):
        super().__init__(model=model or _env("GHOSTPROBE_HF_MODEL"), **config)
        self.allow_download = _truthy(config.get("allow_download", _env("GHOSTPROBE_ALLOW_DOWNLOAD", "0")))
        self.hub_revision = config.get("revision") or _env("GHOSTPROBE_HF_REVISION")
        self._loaded: Loaded | None = None
        install_log_filter(__name__)  # its log lines name model folders and hub errors: no tokens in them

    # -- availability (instant: no model load, no network) ---------------------------------------
    def _where(self) -> tuple[bool, str]:
        """Whether the configured model can be found without a download, and a sentence."""
        model = self.model
        if not model:
            return False, NO_MODEL
        path = Path(model).expanduser()
        if path.exists():
            if not (path / "config.json").exists():
                return False, f"The model folder {model} has no config.json: point GHOSTPROBE_HF_MODEL at a Hugging Face model folder."
            return True, f"local folder {model}"
        if model.startswith(("/", ".", "~")) or model.count("/") > 1:
            return False, f"The model folder {model} does not exist."
        if self.allow_download:
            return True, f"{model} (may download: GHOSTPROBE_ALLOW_DOWNLOAD=1)"
        try:
            from huggingface_hub import try_to_load_from_cache

            hit = try_to_load_from_cache(model, "config.json", revision=self.hub_revision)
        except Exception:
            hit = None
        if isinstance(hit, str):
            return True, f"{model} from the local Hugging Face cache"
        return False, (f"Model {model} is not in the local Hugging Face cache and downloads are off: "
                       f"run `huggingface-cli download {model}` or set GHOSTPROBE_ALLOW_DOWNLOAD=1.")

    def availability(self) -> tuple[bool, str]:
        if importlib.util.find_spec("torch") is None or importlib.util.find_spec("transformers") is None:
            return False, "The transformers engine needs torch and transformers: pip install 'ghostprobe-studio[llm]'."
        ok, where = self._where()
        if not ok:
            return False, where
        try:
            precision = detect_precision(self.config)
        except EngineError as e:
            return False, str(e)
        except Exception as e:  # torch that cannot initialise
            return False, f"torch cannot start here: {str(e).splitlines()[0] if str(e) else type(e).__name__}."
        reason = f"ready: {where} on {precision.device} ({precision.dtype})"
        if precision.warning:
            reason += f"; warning: {precision.warning}."
        return True, reason

    # -- loading -----------------------------------------------------------------------------------
    def load(self) -> Loaded:
        """Load (or reuse) the model and processor. Raises EngineError with one sentence."""
        if self._loaded is not None:
            return self._loaded
        ok, reason = self._where()
        if not ok:
            raise EngineError(reason)
        precision = detect_precision(self.config)
        # the resolved revision is part of the key: a folder whose files changed is loaded again
        key = (str(self.model), precision.dtype, precision.device, str(self.hub_revision), str(self.revision()))
        with _CACHE_LOCK:
            if key in _CACHE:
                self._loaded = _CACHE[key]
                return self._loaded
            if precision.warning:
                log.warning("transformers engine %s %s", self.model, precision.warning)
            self._loaded = _CACHE[key] = self._load_uncached(precision)
            return self._loaded

    def _load_uncached(self, precision: Precision) -> Loaded:
        import torch
        from transformers import AutoModelForImageTextToText, AutoProcessor

        model_ref = str(Path(self.model).expanduser()) if Path(self.model).expanduser().exists() else self.model
        common: dict[str, Any] = {"local_files_only": not self.allow_download}
        if self.hub_revision:
            common["revision"] = self.hub_revision
        start = time.perf_counter()
        from transformers.utils import logging as hf_logging

        bars = hf_logging.is_progress_bar_enabled()
        hf_logging.disable_progress_bar()  # no "Loading weights" bars in the CLI and server logs
        try:
            processor = AutoProcessor.from_pretrained(model_ref, **common)
            kwargs: dict[str, Any] = dict(common, dtype=getattr(torch, precision.dtype),
                                          attn_implementation=precision.attn_implementation)
            zero_gpu = precision.device == "cuda" and on_zero_gpu()
            if precision.device_map is not None and not zero_gpu:
                kwargs["device_map"] = precision.device_map
            try:
                model = AutoModelForImageTextToText.from_pretrained(model_ref, **kwargs)
            except ValueError as e:
                if "attn_implementation" not in str(e) and "sdpa" not in str(e).lower():
                    raise
                kwargs["attn_implementation"] = "eager"  # an architecture without SDPA support
                model = AutoModelForImageTextToText.from_pretrained(model_ref, **kwargs)
                _ATTN_FALLBACK[str(self.model)] = "eager"
                log.warning("%s refused %s attention; loaded with eager", self.model, precision.attn_implementation)
        except EngineError:
            raise
        except (OSError, ValueError, KeyError, ImportError, RuntimeError) as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise EngineError(scrub(f"Cannot load model {self.model} with transformers: {first.rstrip('.')}.")) from None
        finally:
            if bars:
                hf_logging.enable_progress_bar()
        if zero_gpu:  # ZeroGPU wants a plain .to("cuda") at load time, no accelerate dispatch
            model.to("cuda")
        model.eval()
        # what was loaded: the config's commit hash (hub snapshots), else the same fingerprint describe() read
        revision = getattr(model.config, "_commit_hash", None) or self.revision()
        loaded = Loaded(model=model, processor=processor, precision=precision,
                        device_desc=_device_desc(model, precision), revision=revision,
                        load_s=time.perf_counter() - start, attention=str(kwargs["attn_implementation"]))
        log.info("loaded %s on %s in %.1fs", self.model, loaded.device_desc, loaded.load_s)
        return loaded

    # -- identity and cost (no weights loaded) ----------------------------------------------------
    def revision(self) -> str | None:
        """The weights revision, read without loading: a local folder's snapshot hash or fingerprint,
        a hub id's cached snapshot commit; None when the model cannot be found here."""
        if not self.model:
            return None
        path = Path(self.model).expanduser()
        if path.exists():
            return local_revision(path)
        return hub_revision(self.model, self.hub_revision)

    def _attention(self, precision: Precision) -> str:
        if self._loaded is not None and self._loaded.attention:
            return self._loaded.attention
        return _ATTN_FALLBACK.get(str(self.model), precision.attn_implementation)

    def describe(self) -> dict[str, Any]:
        """model, revision, dtype, attention, video_mode and device, resolved without loading weights.
        Raises EngineError with the availability sentence when the engine cannot run here."""
        ok, reason = self.availability()
        if not ok:
            raise EngineError(reason)
        precision = detect_precision(self.config)
        settings: dict[str, Any] = {"device": precision.device}
        if precision.device_map == "auto":
            settings["device_map"] = "auto"
        return {"model": self.model, "revision": self.revision(), "endpoint": None, "video_mode": VIDEO_MODE,
                "dtype": precision.dtype, "attention": self._attention(precision), "settings": settings}

    def cost_location(self) -> CostLocation:
        """``local-cuda`` when this engine will run on CUDA, else ``local-cpu``."""
        try:
            device = detect_precision(self.config).device if importlib.util.find_spec("torch") else None
        except Exception:  # noqa: BLE001  torch that cannot start, or a device the hardware lacks
            device = None
        if device is None:
            return CostLocation("local-cpu", defaulted=True)
        return CostLocation("local-cuda" if device == "cuda" else "local-cpu")

    # -- inference ---------------------------------------------------------------------------------
    def prepare_inputs(self, loaded: Loaded, clip: Clip | None, messages: list[Message]):
        """Chat template + processor over our sampled frames → model inputs on the model's device."""
        processor = loaded.processor
        conv = _to_conversation(messages, with_video=clip is not None)
        try:
            text = processor.apply_chat_template(conv, add_generation_prompt=True, tokenize=False)
        except ValueError as e:
            raise EngineError(scrub(f"The model {self.model} has no usable chat template: {str(e).splitlines()[0]}")) from None
        kwargs: dict[str, Any] = {"text": [text], "return_tensors": "pt"}
        if clip is not None:
            if clip.frames.ndim != 4 or clip.frames.shape[-1] != 3 or clip.num_frames == 0:
                raise EngineError("The clip has no RGB frames to show the model.")
            kwargs["videos"] = [clip.frames]
            kwargs["video_metadata"] = [_video_metadata(clip)]
        try:
            inputs = processor(**kwargs)
        except (TypeError, ValueError) as e:
            if "video_metadata" not in str(e) or clip is None:
                raise EngineError(scrub(f"The processor of {self.model} rejected the video: {str(e).splitlines()[0]}")) from None
            kwargs.pop("video_metadata")  # a processor without timestamp support
            inputs = processor(**kwargs)
        inputs.pop("video_metadata", None)
        model = loaded.model
        # ids and masks go to the first device; only pixel tensors take the model's dtype (timing
        # tensors such as Qwen's second_per_grid_ts keep float32 precision)
        for key in list(inputs.keys()):
            v = inputs[key]
            if hasattr(v, "to"):
                inputs[key] = v.to(model.device, dtype=model.dtype) if key.startswith("pixel_values") else v.to(model.device)
        return inputs

    def stream_chat(self, clip: Clip | None, messages: list[Message], options: GenerationOptions) -> Iterator[str]:
        import torch
        from transformers import StoppingCriteria, StoppingCriteriaList, TextIteratorStreamer

        self.last_call = None
        t0 = time.perf_counter()
        loaded = self.load()
        t_loaded = time.perf_counter()
        inputs = self.prepare_inputs(loaded, clip, messages)
        preprocess_s = time.perf_counter() - t_loaded
        prompt_tokens = int(inputs["input_ids"].shape[-1])

        tokenizer = getattr(loaded.processor, "tokenizer", loaded.processor)
        streamer = TextIteratorStreamer(tokenizer, skip_prompt=True, skip_special_tokens=True, timeout=0.25)
        cancel = threading.Event()

        class _Cancel(StoppingCriteria):
            def __call__(self, input_ids, scores, **kwargs):  # noqa: ARG002
                return cancel.is_set()

        gen_kwargs: dict[str, Any] = dict(inputs, streamer=streamer, max_new_tokens=int(options.max_new_tokens),
                                          stopping_criteria=StoppingCriteriaList([_Cancel()]))
        if options.temperature and options.temperature > 0:
            gen_kwargs.update(do_sample=True, temperature=float(options.temperature), top_p=float(options.top_p))
        else:
            gen_kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        result: dict[str, Any] = {}

        def _generate():
            if options.seed is not None:
                torch.manual_seed(int(options.seed))
            with torch.inference_mode():
                return loaded.model.generate(**gen_kwargs)

        duration = int(self.config.get("zerogpu_duration") or _env("GHOSTPROBE_ZEROGPU_DURATION", "120"))
        generate = _zero_gpu_wrap(_generate, duration)

        def _run():
            try:
                result["out"] = generate()
            except BaseException as e:  # surfaced in the consuming thread
                result["error"] = e
                streamer.end()

        deadline = time.perf_counter() + float(options.timeout_s or 300.0)
        pieces = 0
        with loaded.lock:
            t_gen = time.perf_counter()
            thread = threading.Thread(target=_run, name="ghostprobe-generate", daemon=True)
            thread.start()
            try:
                while True:
                    try:
                        piece = next(streamer)
                    except StopIteration:
                        break
                    except queue.Empty:
                        if time.perf_counter() > deadline:
                            cancel.set()
                            thread.join(timeout=30)
                            raise EngineError(
                                f"The model took longer than {options.timeout_s:g} s to answer; raise the timeout "
                                "or use fewer frames.") from None
                        continue
                    if piece:
                        pieces += 1
                        yield piece
                thread.join()
            finally:
                cancel.set()  # a consumer that stops early stops generation too
                thread.join(timeout=60)
            generate_s = time.perf_counter() - t_gen

        if "error" in result:
            e = result["error"]
            if isinstance(e, EngineError):
                raise e
            msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            if "out of memory" in msg.lower():
                raise EngineError(f"The GPU ran out of memory running {self.model}: use fewer frames or a smaller max_side.")
            raise EngineError(scrub(f"Generation with {self.model} failed: {msg.rstrip('.')}."))
        out = result.get("out")
        seq = getattr(out, "sequences", out)
        completion = int(seq.shape[-1] - prompt_tokens) if seq is not None else None
        self.last_call = CallRecord(
            engine=self.name, model=self.model, revision=loaded.revision,
            latency_s=time.perf_counter() - t_loaded, preprocess_s=preprocess_s, generate_s=generate_s,
            prompt_tokens=prompt_tokens, completion_tokens=completion, device=loaded.device_desc,
            extra={"dtype": loaded.precision.dtype, "attn_implementation": loaded.attention or loaded.precision.attn_implementation,
                   "load_s": round(t_loaded - t0, 3), "pieces": pieces,
                   "frames": clip.num_frames if clip is not None else 0},
        )
