"""Adapter for VideoLLaMA2 / VideoLLaMA2.1 (https://github.com/DAMO-NLP-SG/VideoLLaMA2), official package.

Runs in the worker's own environment (``make worker-env``: the ``videollama2`` package installed
unmodified, transformers 4.40.0; see ../README.md). GhostProbe's tests run it for real on CPU against
a tiny random VideoLLaMA2 (tests/test_videollama2_official.py); the 7B checkpoints need a GPU.

What it calls, all from the official package:

- ``videollama2.model_init(path, **kwargs)`` → ``(model, processor, tokenizer)``; the loader
  (``load_pretrained_model``) picks the class from ``config.model_type`` and always loads float16.
- ``processor["video"]`` = ``partial(process_video, processor=<SigLIP/CLIP image processor>,
  aspect_ratio=None, num_frames=model.config.num_frames)``; it takes a list of PIL images (our
  sampler's frames, decoded from the JPEGs we receive), pads a short list with black frames to
  ``num_frames`` and returns a float tensor [T, 3, H, W].
- the chat template (``tokenizer.apply_chat_template``), ``tokenizer_multimodal_token``,
  ``KeywordsStoppingCriteria`` and ``model.generate(input_ids, images=[(video, "video")], ...)``.

**Why not ``mm_infer``.** ``videollama2.mm_infer`` hard-codes ``tensor.half().cuda()`` and
``input_ids.cuda()``, so it cannot run on CPU and always targets ``cuda:0``. ``chat`` below
reproduces its steps one for one (same prompt building, same system prompt for the Mistral-based
models, same stopping criterion and generation arguments) but moves the video to the vision tower's
device and dtype and the token ids to the embedding layer's device, so the same code runs on CPU,
one GPU, or several with ``device_map="auto"``. It also streams the answer (transformers'
``TextIteratorStreamer``) and counts tokens. Nothing in the vendored package is edited.

**Runtime patch (``patch_official_package``).** The official vision encoders set
``config._attn_implementation = "flash_attention_2"`` before building SigLIP/CLIP. With the pinned
transformers 4.40 that raises "SiglipVisionModel does not support Flash Attention 2.0 yet" (FA2 for
SigLIP arrived in 4.43; upstream issues #146 and #162), and with a newer transformers it needs the
flash-attn package, which V100s (compute capability 7.0) cannot run. The adapter therefore wraps the
two vision-model classes the encoder module uses so the tower is built with the attention the
worker asks for (``--option vision_attn=``: default ``auto`` = what transformers picks, SDPA or
eager; ``flash_attention_2`` only if you have it). It also marks the vision tower and the projector
as not to be split across GPUs under ``device_map="auto"``, so each stays on one device.

Options (``--option key=value``): ``attn_implementation`` for the language model (default ``sdpa``),
``vision_attn`` (above), ``device_map`` (default ``auto`` on CUDA, ignored on CPU), ``dtype``
(``float16`` on CUDA as the official loader does — V100 has no bfloat16; ``float32`` on CPU, where
half precision is slow or unsupported), ``load_4bit`` / ``load_8bit`` (needs bitsandbytes),
``num_frames`` (default: the model's, 16 for the ``-16F`` checkpoints). ``--device cpu`` or
``--device cuda:N`` pins the whole model to one device.
"""

from __future__ import annotations

import io
import threading
import time
from typing import Any, Callable

# mm_infer's system prompt for the LLaMA-2 style templates of the Mistral/Mixtral-based checkpoints
# (videollama2/__init__.py at commit c0bb03a); the Qwen2-based VideoLLaMA2.1 gets none from it.
MISTRAL_SYSTEM = (
    "<<SYS>>\nYou are a helpful, respectful and honest assistant. Always answer as helpfully as possible, while being "
    "safe.  Your answers should not include any harmful, unethical, racist, sexist, toxic, dangerous, or illegal "
    "content. Please ensure that your responses are socially unbiased and positive in nature.\nIf a question does not "
    "make any sense, or is not factually coherent, explain why instead of answering something not correct. If you "
    "don't know the answer to a question, please don't share false information.\n<</SYS>>")
MISTRAL_TYPES = ("videollama2", "videollama2_mistral", "videollama2_mixtral")
_patched: dict[str, Any] = {}


def _truthy(v: Any) -> bool:
    return str(v).strip().lower() in ("1", "true", "yes", "on")


def patch_official_package(vision_attn: str = "auto") -> None:
    """Make the official encoder build its vision tower with a usable attention (see module doc).

    Idempotent. ``vision_attn``: ``auto`` (transformers decides: SDPA where the class supports it,
    else eager), or ``eager`` / ``sdpa`` / ``flash_attention_2`` explicitly.
    """
    from videollama2.model import encoder
    from videollama2.model import projector

    _patched["vision_attn"] = vision_attn
    if _patched.get("done"):
        return
    for name in ("SiglipVisionModel", "CLIPVisionModel"):
        base = getattr(encoder, name)

        def _init(self, config, *args, __base=base, **kwargs):
            want = _patched.get("vision_attn", "auto")
            config._attn_implementation = None if want == "auto" else want  # None → autoset picks sdpa/eager
            __base.__init__(self, config, *args, **kwargs)

        setattr(encoder, name, type(name, (base,), {"__init__": _init, "__module__": base.__module__}))
    # keep the tower and the connector whole on one device when accelerate spreads the model over GPUs
    from videollama2.model import Videollama2LlamaForCausalLM, Videollama2MistralForCausalLM, \
        Videollama2MixtralForCausalLM, Videollama2Qwen2ForCausalLM

    whole = ["SiglipVisionTower", "CLIPVisionTower", *[c for c in dir(projector) if c.endswith("Connector")]]
    for cls in (Videollama2LlamaForCausalLM, Videollama2MistralForCausalLM, Videollama2MixtralForCausalLM,
                Videollama2Qwen2ForCausalLM):
        cls._no_split_modules = list(dict.fromkeys([*(cls._no_split_modules or []), *whole]))
    _patched["done"] = True


def _package_version() -> str:
    try:
        from importlib.metadata import version

        return version("videollama2")
    except Exception:  # noqa: BLE001
        return "?"


def _snapshot_revision(model_path: str) -> str | None:
    """The hub commit of a downloaded checkpoint (its snapshot folder's name), None for a local folder."""
    import os

    real = os.path.realpath(model_path) if os.path.isdir(model_path) else None
    if real and os.path.basename(os.path.dirname(real)) == "snapshots":
        return os.path.basename(real)
    if real is None:
        try:
            from huggingface_hub import snapshot_download

            snap = snapshot_download(model_path, local_files_only=True)
            return os.path.basename(os.path.realpath(snap))
        except Exception:  # noqa: BLE001  not in the cache (yet): unknown
            return None
    return None


class Adapter:
    name = "videollama2"
    stand_in = False
    streams = True

    def __init__(self, model: str | None = None, device: str | None = None, options: dict[str, Any] | None = None):
        import torch
        from videollama2 import model_init  # the official package

        self.options = options or {}
        patch_official_package(self.options.get("vision_attn", "auto"))
        self.model_path = model or "DAMO-NLP-SG/VideoLLaMA2.1-7B-16F"
        want = (device or "").strip().lower()
        if not want:
            want = "cuda" if torch.cuda.is_available() else "cpu"
        if want.startswith("cuda") and not torch.cuda.is_available():
            raise RuntimeError(f"--device {device} asked for CUDA but torch {torch.__version__} sees no GPU.")
        on_cuda = want.startswith("cuda")
        kwargs: dict[str, Any] = {"attn_implementation": self.options.get("attn_implementation", "sdpa")}
        if want == "cuda":  # the official default: accelerate places the layers over every visible GPU
            kwargs["device_map"] = self.options.get("device_map", "auto")
        else:  # one device: load_pretrained_model turns device into device_map={"": device}
            kwargs["device"] = want
        if _truthy(self.options.get("load_4bit", "0")):
            kwargs["load_4bit"] = True
        elif _truthy(self.options.get("load_8bit", "0")):
            kwargs["load_8bit"] = True
        t0 = time.perf_counter()
        self.model, self.processor, self.tokenizer = model_init(self.model_path, **kwargs)
        dtype_name = self.options.get("dtype") or ("float16" if on_cuda else "float32")
        dtype = getattr(torch, dtype_name)
        quantized = "load_4bit" in kwargs or "load_8bit" in kwargs
        if not quantized and self.model.dtype != dtype:
            self.model.to(dtype)
        self.model.eval()
        self.load_s = time.perf_counter() - t0
        self.dtype_name = "4-bit" if "load_4bit" in kwargs else "8-bit" if "load_8bit" in kwargs else dtype_name
        self.num_frames = int(self.options.get("num_frames") or getattr(self.model.config, "num_frames", 16) or 16)
        self.package = f"videollama2 {_package_version()}"
        self.revision = _snapshot_revision(self.model_path)
        self._visual_tokens: list[int] = []
        self.model.get_model().mm_projector.register_forward_hook(
            lambda _m, _i, out: self._visual_tokens.append(int(out.shape[1])))
        self.device = self._describe_device()

    def _describe_device(self) -> str:
        import torch

        devmap = getattr(self.model, "hf_device_map", None) or {}
        devices = sorted({str(v) for v in devmap.values()}) or [str(self.model.device)]
        gpus = sorted({int(d.split(":")[-1]) if ":" in d else int(d) for d in devices
                       if d.isdigit() or d.startswith("cuda")})
        if not gpus:
            return f"cpu ({self.dtype_name})"
        name = torch.cuda.get_device_name(gpus[0])
        if len(gpus) > 1:
            return f"{len(gpus)}× {name} (cuda:{','.join(map(str, gpus))}, {self.dtype_name}, device_map=auto)"
        return f"cuda:{gpus[0]} ({name}, {self.dtype_name})"

    def describe(self) -> dict[str, Any]:
        cfg = self.model.config
        tower = self.model.get_vision_tower()
        return {"adapter": self.name, "model": self.model_path, "device": self.device, "num_frames": self.num_frames,
                "model_type": cfg.model_type, "dtype": self.dtype_name, "revision": self.revision,
                "attention": getattr(cfg, "_attn_implementation", None),
                "vision_attention": getattr(tower.config, "_attn_implementation", None),
                "quantization": None if self.dtype_name.startswith("float") else self.dtype_name,
                "package": self.package, "load_s": round(self.load_s, 3)}

    def _pick(self, frames: list[bytes]) -> list[bytes]:
        n = self.num_frames
        if len(frames) <= n:
            return frames
        step = len(frames) / n
        return [frames[int(i * step + step / 2)] for i in range(n)]

    def build_prompt(self, messages: list[dict[str, str]], modal_token: str) -> list[dict[str, str]]:
        """mm_infer's message list: <video> before the first user turn, its system prompt per model type."""
        system = "\n".join(m["content"] for m in messages if m.get("role") == "system")
        turns = [{"role": m["role"], "content": m["content"]} for m in messages if m.get("role") in ("user", "assistant")]
        while turns and turns[0]["role"] != "user":
            turns.pop(0)
        turns[0]["content"] = modal_token + "\n" + turns[0]["content"]
        if self.model.config.model_type in MISTRAL_TYPES:
            head = [{"role": "system", "content": f"<<SYS>>\n{system}\n<</SYS>>" if system else MISTRAL_SYSTEM}]
        else:
            head = [{"role": "system", "content": system}] if system else []
        return head + turns

    def chat(self, frames: list[bytes], timestamps: list[float], messages: list[dict[str, str]],
             max_new_tokens: int = 512, temperature: float = 0.0,
             on_text: Callable[[str], None] | None = None) -> dict[str, Any]:
        import torch
        from PIL import Image
        from transformers import TextIteratorStreamer
        from videollama2.constants import DEFAULT_VIDEO_TOKEN
        from videollama2.mm_utils import KeywordsStoppingCriteria, tokenizer_multimodal_token

        t0 = time.perf_counter()
        tower = self.model.get_vision_tower()
        images = [Image.open(io.BytesIO(b)).convert("RGB") for b in self._pick(frames)]
        used = len(images)  # process_video pads this very list with black frames up to num_frames
        video = self.processor["video"](images)  # official process_video: float tensor [T, 3, H, W]
        video = video.to(device=tower.device, dtype=tower.dtype)  # mm_infer: .half().cuda()

        tok = self.tokenizer
        message = self.build_prompt(messages, DEFAULT_VIDEO_TOKEN)
        prompt = tok.apply_chat_template(message, tokenize=False, add_generation_prompt=True)
        embed_device = self.model.get_model().embed_tokens.weight.device
        input_ids = tokenizer_multimodal_token(prompt, tok, DEFAULT_VIDEO_TOKEN, return_tensors="pt")
        input_ids = input_ids.unsqueeze(0).long().to(embed_device)
        attention_mask = input_ids.ne(tok.pad_token_id).long().to(embed_device)
        stopping = KeywordsStoppingCriteria([tok.eos_token], tok, input_ids)
        do_sample = temperature > 0
        streamer = TextIteratorStreamer(tok, skip_prompt=True, skip_special_tokens=True, timeout=None)
        gen_kwargs: dict[str, Any] = dict(
            attention_mask=attention_mask, images=[(video, "video")], do_sample=do_sample,
            temperature=float(temperature) if do_sample else 0.0, top_p=0.9, max_new_tokens=int(max_new_tokens),
            use_cache=True, stopping_criteria=[stopping], pad_token_id=tok.eos_token_id, streamer=streamer)
        preprocess_s = time.perf_counter() - t0

        result: dict[str, Any] = {}

        def run() -> None:
            try:
                with torch.inference_mode():
                    result["ids"] = self.model.generate(input_ids, **gen_kwargs)
            except BaseException as e:  # noqa: BLE001  re-raised in the request thread below
                result["error"] = e
                streamer.end()

        self._visual_tokens.clear()
        t1 = time.perf_counter()
        worker = threading.Thread(target=run, name="videollama2-generate", daemon=True)
        worker.start()
        pieces: list[str] = []
        client_error: BaseException | None = None
        for piece in streamer:  # drained to the end even if the client went away, so generate finishes
            if piece:
                pieces.append(piece)
                if on_text is not None and client_error is None:
                    try:
                        on_text(piece)
                    except BaseException as e:  # noqa: BLE001
                        client_error = e
        worker.join()
        if "error" in result:
            raise result["error"]
        if client_error is not None:
            raise client_error
        generate_s = time.perf_counter() - t1
        out_ids = result["ids"]
        text = tok.batch_decode(out_ids, skip_special_tokens=True)[0].strip()  # mm_infer's final answer
        streamed = "".join(pieces).strip()
        if on_text is not None and streamed != text and text.startswith(streamed):
            on_text(text[len(streamed):])  # the streamer holds back nothing in practice; never lose a tail
        text_tokens = int((input_ids >= 0).sum())
        visual = self._visual_tokens[0] if self._visual_tokens else 0
        return {"text": text, "prompt_tokens": text_tokens + visual, "completion_tokens": int(out_ids.shape[1]),
                "visual_tokens": visual, "frames_used": used, "preprocess_s": round(preprocess_s, 4),
                "generate_s": round(generate_s, 4)}
