"""Adapter for Video-LLaMA v1 (https://github.com/DAMO-NLP-SG/Video-LLaMA) with LLaMA-2 / Vicuna checkpoints.

Runs only in the model's own environment (its pinned transformers 4.28, torch with CUDA, the
``video_llama`` package from the official repository, its eval config YAML pointing at local
checkpoints). It cannot be installed or run in GhostProbe's environment; our tests use ``echo.py``.

``--model`` is the eval config, e.g. ``eval_configs/video_llama_eval_only_vl.yaml``, whose
``llama_model`` / ``ckpt`` / ``ckpt_2`` entries point at the downloaded weights. Options:
``model_type`` (``llama_v2`` → the LLaMA-2 chat template ``conv_llava_llama_2``, or ``vicuna`` →
``default_conversation``), ``gpu_id`` (default 0).

The official ``Chat.upload_video_without_audio`` only takes a file path (it decodes 8 frames at
224×224 with decord). We hand it our frames instead, doing what it does after decoding: a uint8
tensor [C, T, H, W] → ``chat.vis_processor.transform`` → ``model.encode_videoQformer_visual`` →
append to ``img_list`` and add the user message ``"<Video><ImageHere></Video> The video contains N
frames sampled at ... seconds."``. Generation mirrors ``Chat.answer`` but is greedy when
temperature is 0 (``Chat.answer`` always samples).

Language: Video-LLaMA's LLaMA-2 checkpoints answer Chinese poorly; its maintainers point to the
BiLLa / Ziya based variants for Chinese. Prefer English prompts with this adapter.
"""

from __future__ import annotations

import io
from typing import Any

N_FRAMES = 8  # what Video-LLaMA's Q-Former was trained with
SIZE = 224


class Adapter:
    name = "videollama_v1"
    stand_in = False

    def __init__(self, model: str | None = None, device: str | None = None, options: dict[str, Any] | None = None):
        import argparse

        import torch  # noqa: F401
        from video_llama.common.config import Config
        from video_llama.common.registry import registry
        from video_llama.conversation.conversation_video import Chat, conv_llava_llama_2, default_conversation
        import video_llama.models  # noqa: F401  (registers model classes)
        import video_llama.processors  # noqa: F401  (registers processors)

        self.options = options or {}
        if not model:
            raise ValueError("--model must be a Video-LLaMA eval config YAML, e.g. eval_configs/video_llama_eval_only_vl.yaml")
        self.cfg_path = model
        gpu_id = int(self.options.get("gpu_id", 0))
        cfg = Config(argparse.Namespace(cfg_path=model, options=None, gpu_id=gpu_id, model_type=self.options.get("model_type", "llama_v2")))
        model_config = cfg.model_cfg
        model_config.device_8bit = gpu_id
        model_cls = registry.get_model_class(model_config.arch)
        self.device = f"cuda:{gpu_id}"
        self.model = model_cls.from_config(model_config).to(self.device).eval()
        vis_cfg = cfg.datasets_cfg.webvid.vis_processor.train
        vis_processor = registry.get_processor_class(vis_cfg.name).from_config(vis_cfg)
        self.chat_obj = Chat(self.model, vis_processor, device=self.device)
        model_type = self.options.get("model_type", "llama_v2")
        self.template = conv_llava_llama_2 if model_type == "llama_v2" else default_conversation

    def describe(self) -> dict[str, Any]:
        import torch

        name = torch.cuda.get_device_name(int(self.device.split(":")[1])) if torch.cuda.is_available() else "?"
        return {"adapter": self.name, "model": self.cfg_path, "device": f"{self.device} ({name})"}

    def _video_tensor(self, frames: list[bytes]):
        import numpy as np
        import torch
        from PIL import Image

        if len(frames) > N_FRAMES:
            step = len(frames) / N_FRAMES
            picked = [int(i * step + step / 2) for i in range(N_FRAMES)]
        else:
            picked = list(range(len(frames)))
        arr = np.stack([np.asarray(Image.open(io.BytesIO(frames[i])).convert("RGB").resize((SIZE, SIZE))) for i in picked])
        video = torch.from_numpy(arr).permute(3, 0, 1, 2).float()  # [C, T, H, W] as decord gives it
        return video, picked

    def chat(self, frames: list[bytes], timestamps: list[float], messages: list[dict[str, str]],
             max_new_tokens: int = 512, temperature: float = 0.0) -> dict[str, Any]:
        import torch
        from transformers import StoppingCriteriaList
        from video_llama.conversation.conversation_video import StoppingCriteriaSub

        chat = self.chat_obj
        conv = self.template.copy()
        system = "\n".join(m["content"] for m in messages if m.get("role") == "system")
        if system:
            conv.system = system
        video, picked = self._video_tensor(frames)
        secs = ", ".join(f"{timestamps[i]:.1f}" for i in picked) if timestamps else ""
        msg = f"The video contains {len(picked)} frames sampled at {secs} seconds. " if secs else ""
        video = chat.vis_processor.transform(video).unsqueeze(0).to(self.device)
        img_list: list[Any] = []
        with torch.inference_mode():
            emb, _ = self.model.encode_videoQformer_visual(video)
        img_list.append(emb)
        conv.append_message(conv.roles[0], "<Video><ImageHere></Video> " + msg)
        for m in messages:
            if m.get("role") == "user":
                chat.ask(m["content"], conv)
            elif m.get("role") == "assistant":
                conv.append_message(conv.roles[1], m["content"])
        conv.append_message(conv.roles[1], None)
        embs = chat.get_context_emb(conv, img_list)
        if conv.sep == "###":
            stops = [torch.tensor([835]).to(self.device), torch.tensor([2277, 29937]).to(self.device)]
        else:
            stops = [torch.tensor([2]).to(self.device)]
        do_sample = temperature > 0
        gen: dict[str, Any] = dict(inputs_embeds=embs, max_new_tokens=int(max_new_tokens), num_beams=1,
                                   do_sample=do_sample, stopping_criteria=StoppingCriteriaList([StoppingCriteriaSub(stops=stops)]))
        if do_sample:
            gen.update(temperature=float(temperature), top_p=0.9)
        with torch.inference_mode():
            out = self.model.llama_model.generate(**gen)[0]
        if len(out) and out[0] == 0:
            out = out[1:]
        if len(out) and out[0] == 1:
            out = out[1:]
        text = self.model.llama_tokenizer.decode(out, add_special_tokens=False)
        if conv.sep == "###":
            text = text.split("###")[0].split("Assistant:")[-1].strip()
        else:
            text = text.split(conv.sep2)[0].split(conv.roles[1] + ":")[-1].strip()
        return {"text": text, "prompt_tokens": int(embs.shape[1]), "completion_tokens": int(len(out))}
