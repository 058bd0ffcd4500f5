"""Adapter for VideoLLaMA2 / VideoLLaMA2.1 (https://github.com/DAMO-NLP-SG/VideoLLaMA2).

Runs only in the model's own environment (its pinned transformers ~4.40, torch with CUDA, the
``videollama2`` package installed from the official repository). It cannot be installed or run in
GhostProbe's environment; our tests use ``echo.py`` instead. See ../README.md for the setup.

How frames become the video tensor VideoLLaMA2 expects:

- ``model_init(model_path, **kwargs)`` returns ``(model, processor, tokenizer)``; ``processor["video"]``
  is ``partial(process_video, processor=<SigLIP/CLIP image processor>, aspect_ratio=None,
  num_frames=model.config.num_frames)``.
- ``process_video`` accepts a list of PIL images as well as a path: it pads a short list with black
  frames up to ``num_frames``, cuts a long one at MAX_FRAMES, and runs the vision tower's image
  processor → a float tensor [T, 3, H, W] (e.g. [16, 3, 336, 336] for VideoLLaMA2.1-7B-16F).
- We therefore decode the JPEGs with PIL, pick ``num_frames`` of them uniformly when more were sent,
  and pass the PIL list. ``mm_infer`` moves the tensor to CUDA in fp16 and builds the prompt with the
  model's chat template; it takes a message list for multi-turn chats and puts the <video> token
  into the first message.

Options (``--option key=value`` on the server): ``attn_implementation`` (default ``sdpa``; use
``eager`` if SDPA is missing for the architecture), ``device_map`` (default ``auto``: spreads the 7B
over several GPUs, e.g. 4×V100 16 GB), ``load_4bit`` / ``load_8bit`` (bitsandbytes), ``num_frames``.
V100 (compute capability 7.0) has no bfloat16 and no flash-attention: the official loader already
uses float16 and ``use_flash_attn=False``, and we keep it that way.
"""

from __future__ import annotations

import io
from typing import Any


def _truthy(v: Any) -> bool:
    return str(v).strip().lower() in ("1", "true", "yes", "on")


class Adapter:
    name = "videollama2"
    stand_in = False

    def __init__(self, model: str | None = None, device: str | None = None, options: dict[str, Any] | None = None):
        import torch  # noqa: F401  (fails early with a clear ImportError if the env is wrong)
        from videollama2 import model_init  # the official package

        try:  # skips random init of weights that are loaded anyway (present in most releases)
            from videollama2.utils import disable_torch_init

            disable_torch_init()
        except ImportError:
            pass
        self.options = options or {}
        self.model_path = model or "DAMO-NLP-SG/VideoLLaMA2.1-7B-16F"
        kwargs: dict[str, Any] = {
            "device_map": self.options.get("device_map", "auto"),
            "attn_implementation": self.options.get("attn_implementation", "sdpa"),
        }
        if _truthy(self.options.get("load_4bit", "0")):
            kwargs["load_4bit"] = True
        elif _truthy(self.options.get("load_8bit", "0")):
            kwargs["load_8bit"] = True
        self.model, self.processor, self.tokenizer = model_init(self.model_path, **kwargs)
        self.num_frames = int(self.options.get("num_frames") or getattr(self.model.config, "num_frames", 16) or 16)
        self.device = self._device()

    def _device(self) -> str:
        import torch

        if not torch.cuda.is_available():
            return "cpu (VideoLLaMA2's mm_infer needs CUDA)"
        devmap = getattr(self.model, "hf_device_map", None) or {}
        gpus = sorted({v for v in devmap.values() if isinstance(v, int)}) or [0]
        name = torch.cuda.get_device_name(gpus[0])
        return f"{len(gpus)}× {name} (float16)" if len(gpus) > 1 else f"cuda:{gpus[0]} ({name}, float16)"

    def describe(self) -> dict[str, Any]:
        return {"adapter": self.name, "model": self.model_path, "device": self.device, "num_frames": self.num_frames}

    def _pick(self, frames: list[bytes]) -> list[bytes]:
        n = self.num_frames
        if len(frames) <= n:
            return frames
        step = len(frames) / n
        return [frames[int(i * step + step / 2)] for i in range(n)]

    def chat(self, frames: list[bytes], timestamps: list[float], messages: list[dict[str, str]],
             max_new_tokens: int = 512, temperature: float = 0.0) -> dict[str, Any]:
        from PIL import Image
        from videollama2 import mm_infer

        images = [Image.open(io.BytesIO(b)).convert("RGB") for b in self._pick(frames)]
        video = self.processor["video"](images)  # float tensor [T, 3, H, W]

        # mm_infer wants user/assistant turns starting with the user; fold any system text into it.
        system = "\n".join(m["content"] for m in messages if m.get("role") == "system")
        turns = [{"role": m["role"], "content": m["content"]} for m in messages if m.get("role") in ("user", "assistant")]
        if system and turns:
            turns[0]["content"] = system + "\n\n" + turns[0]["content"]
        do_sample = temperature > 0
        kwargs: dict[str, Any] = {"do_sample": do_sample, "max_new_tokens": int(max_new_tokens)}
        if do_sample:
            kwargs["temperature"] = float(temperature)
        text = mm_infer(video, turns, model=self.model, tokenizer=self.tokenizer, modal="video", **kwargs)
        completion = len(self.tokenizer(text, add_special_tokens=False).input_ids) if text else 0
        return {"text": text, "prompt_tokens": None, "completion_tokens": completion}
