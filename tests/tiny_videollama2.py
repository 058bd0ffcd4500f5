"""A tiny random VideoLLaMA2 (Qwen2 language model + SigLIP tower + STC connector), built from configs.

Run it with the **worker environment's** Python (the official ``videollama2`` package, transformers
4.40), not GhostProbe's:

    .venv-worker/bin/python tests/tiny_videollama2.py OUT_ROOT      # prints the model folder

It writes, under OUT_ROOT, what ``videollama2.model_init`` / ``load_pretrained_model`` loads like a
released checkpoint such as ``DAMO-NLP-SG/VideoLLaMA2.1-7B-16F``:

- ``siglip-tiny-patch14-56/``: a SigLIP vision tower's ``config.json`` and ``preprocessor_config.json``
  (the upstream encoder picks the SigLIP class because the path contains ``siglip``; the real
  checkpoints name ``google/siglip-so400m-patch14-384`` here);
- ``VideoLLaMA2.1-tiny-random-16F/``: ``config.json`` with ``model_type = "videollama2_qwen2"``,
  ``mm_vision_tower`` = the folder above, ``mm_projector_type = "stc_connector"``, ``num_frames = 16``,
  the random weights of the whole model (language model, vision tower, STC projector) saved by the
  official ``Videollama2Qwen2ForCausalLM.save_pretrained``, and a word-level tokenizer built with
  the ``tokenizers`` library with a Qwen2 (ChatML) chat template.

Which class the official loader builds comes from ``config.model_type`` (``videollama2_qwen2`` →
``Videollama2Qwen2ForCausalLM``); the folder name matters only in that it must not contain ``lora``
(which selects the LoRA-merge branch), and we keep the release naming.

What it says is noise by design: the vocabulary is the neutral nonsense words of tests/tiny_models.py
(no yes/no, digits, JSON or Chinese) and ``generation_config.suppress_tokens`` bans every special
token, so generation always runs to ``max_new_tokens`` words that the verdict parser reads as
``unparsed``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "engines" / "llm" / "worker"))
from tiny_models import WORDS  # noqa: E402  (plain data; tiny_models imports nothing heavy at module level)

SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "[UNK]"]
CHATML = (
    "{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
IMAGE = 56  # 4x4 patches of 14 px per frame; the real tower is 384 px (27x27)
NUM_FRAMES = 16
MODEL_NAME = "VideoLLaMA2.1-tiny-random-16F"
TOWER_NAME = "siglip-tiny-patch14-56"


def build_tokenizer(folder: Path):
    from tokenizers import Tokenizer, decoders, pre_tokenizers
    from tokenizers.models import WordLevel
    from transformers import PreTrainedTokenizerFast

    vocab = {t: i for i, t in enumerate(SPECIAL)}
    for w in WORDS:
        vocab.setdefault(w, len(vocab))
    tok = Tokenizer(WordLevel(vocab=vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.decoder = decoders.WordPiece(prefix="##", cleanup=False)  # joins words with spaces
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", eos_token="<|im_end|>",
                                        pad_token="<|endoftext|>", model_max_length=4096)
    tokenizer.add_special_tokens({"additional_special_tokens": ["<|im_start|>", "<|im_end|>"]})
    tokenizer.chat_template = CHATML
    tokenizer.save_pretrained(folder)
    return tokenizer


def build_tower(folder: Path) -> Path:
    from transformers import SiglipImageProcessor, SiglipVisionConfig

    folder.mkdir(parents=True, exist_ok=True)
    SiglipVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                       image_size=IMAGE, patch_size=14).save_pretrained(folder)
    SiglipImageProcessor(size={"height": IMAGE, "width": IMAGE}, image_mean=[0.5] * 3,
                         image_std=[0.5] * 3).save_pretrained(folder)
    return folder


def build(root: str | Path) -> Path:
    import torch
    from adapters.videollama2 import patch_official_package  # the worker's runtime fix, see its docstring
    from videollama2.model import Videollama2Qwen2Config, Videollama2Qwen2ForCausalLM

    patch_official_package()  # else the official encoder asks transformers 4.40 for FA2 on SigLIP and fails
    root = Path(root)
    folder = root / MODEL_NAME
    if (folder / "GHOSTPROBE_TINY_MODEL.txt").exists():
        return folder
    tower = build_tower(root / TOWER_NAME)
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer(folder)
    eos, pad = tokenizer.convert_tokens_to_ids("<|im_end|>"), tokenizer.convert_tokens_to_ids("<|endoftext|>")
    config = Videollama2Qwen2Config(
        vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=4096, tie_word_embeddings=False,
        bos_token_id=None, eos_token_id=eos, pad_token_id=pad,
        # the multimodal keys the official model reads (same names and values as VideoLLaMA2.1-7B-16F)
        mm_vision_tower=str(tower), mm_projector_type="stc_connector", mm_hidden_size=32,
        mm_vision_select_layer=-2, mm_vision_select_feature="patch", image_aspect_ratio="pad",
        num_frames=NUM_FRAMES, use_mm_proj=True, tune_mm_mlp_adapter=False,
    )
    torch.manual_seed(0)
    model = Videollama2Qwen2ForCausalLM(config).eval()  # builds SigLIP + STC from the config, random
    with torch.no_grad():  # wider output weights so greedy decoding wanders over many words
        model.lm_head.weight.normal_(0.0, 0.5)
    gen = model.generation_config
    gen.eos_token_id, gen.pad_token_id, gen.bos_token_id, gen.do_sample = eos, pad, None, False
    gen.suppress_tokens = sorted(tokenizer.convert_tokens_to_ids(t) for t in SPECIAL)
    model.save_pretrained(folder)
    (folder / "GHOSTPROBE_TINY_MODEL.txt").write_text(
        "Random weights at toy sizes, built by tests/tiny_videollama2.py. Output is noise by design.\n")
    return folder


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit("usage: python tests/tiny_videollama2.py OUT_ROOT")
    out = build(sys.argv[1])
    cfg = json.loads((out / "config.json").read_text())
    print(json.dumps({"folder": str(out), "model_type": cfg["model_type"], "projector": cfg["mm_projector_type"],
                      "tower": cfg["mm_vision_tower"], "num_frames": cfg["num_frames"]}))
