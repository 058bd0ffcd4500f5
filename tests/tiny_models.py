"""Tiny random video LLMs built from configs, for tests and the CPU benchmark. Nothing is downloaded.

Each builder writes a folder that ``AutoModelForImageTextToText.from_pretrained`` and
``AutoProcessor.from_pretrained`` load exactly like a real checkpoint: a random model with the real
architecture at toy sizes, a word-level tokenizer built with the ``tokenizers`` library that holds
the special tokens the processor and chat template need, the real processor classes with small image
sizes, and a Qwen-style chat template that understands ``{"type": "video"}`` parts.

What the models say is noise. The tokenizer's vocabulary is made of neutral nonsense words (no
yes/no, digits, JSON braces or Chinese), and ``generation_config.suppress_tokens`` bans the special
tokens, so a run always produces ``max_new_tokens`` words that no verdict parser can read as an
answer: tests can assert ``status == "unparsed"`` and that streaming yields many pieces.
"""

from __future__ import annotations

import json
from pathlib import Path

SPECIAL_TOKENS = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|image_pad|>",
    "<|video_pad|>",
    "[UNK]",
]

# Neutral filler words: nothing a verdict parser could take for a yes, a no, a number or JSON.
_SYLLABLES = ["ka", "lo", "mi", "ru", "ze", "po", "ta", "vi", "su", "ne", "da", "fo"]
WORDS = [a + b + c for a in _SYLLABLES for b in _SYLLABLES[:6] for c in ("n", "l", "r")][:192]

QWEN_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'video' %}<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif content['type'] == 'text' %}{{ content['text'] }}{% endif %}"
    "{% endfor %}<|im_end|>\n{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

# VideoLLaMA3's processor expands <|video_pad|> itself into "Time 0.0s:<pad>...,Time 0.5s:..."
VIDEOLLAMA3_CHAT_TEMPLATE = QWEN_CHAT_TEMPLATE.replace(
    "<|vision_start|><|video_pad|><|vision_end|>", "<|video_pad|>\n"
).replace("<|vision_start|><|image_pad|><|vision_end|>", "<|image_pad|>\n")

TEXT_DIMS = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=2, max_position_embeddings=4096)


def build_tokenizer(folder: Path):
    """A word-level tokenizer (``tokenizers`` library) wrapped as a transformers fast tokenizer."""
    from tokenizers import Tokenizer, decoders, pre_tokenizers
    from tokenizers.models import WordLevel
    from transformers import PreTrainedTokenizerFast

    vocab = {tok: i for i, tok in enumerate(SPECIAL_TOKENS)}
    for w in WORDS:
        vocab.setdefault(w, len(vocab))
    tok = Tokenizer(WordLevel(vocab=vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Whitespace()])
    tok.decoder = decoders.WordPiece(prefix="##", cleanup=False)  # joins words with spaces
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="[UNK]",
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        extra_special_tokens={"image_token": "<|image_pad|>", "video_token": "<|video_pad|>"},
        model_max_length=4096,
    )
    tokenizer.add_special_tokens({"additional_special_tokens": SPECIAL_TOKENS[:-1]})
    tokenizer.save_pretrained(folder)
    return tokenizer


def _ids(tokenizer) -> dict[str, int]:
    return {t: tokenizer.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS}


def _finish(model, tokenizer, processor, folder: Path, chat_template: str) -> Path:
    import torch

    ids = _ids(tokenizer)
    gen = model.generation_config
    gen.eos_token_id = ids["<|im_end|>"]
    gen.pad_token_id = ids["<|endoftext|>"]
    gen.bos_token_id = None
    gen.do_sample = False
    # Noise must never stop early nor print special tokens: always max_new_tokens plain words.
    gen.suppress_tokens = sorted(v for v in ids.values())
    model.config.eos_token_id = ids["<|im_end|>"]
    model.config.pad_token_id = ids["<|endoftext|>"]
    torch.manual_seed(0)
    with torch.no_grad():  # wider random weights so greedy decoding wanders over many words
        model.get_output_embeddings().weight.normal_(0.0, 0.5)
    model.save_pretrained(folder)
    processor.chat_template = chat_template
    processor.save_pretrained(folder)
    (folder / "GHOSTPROBE_TINY_MODEL.txt").write_text(
        "Random weights at toy sizes, built by tests/tiny_models.py. Output is noise by design.\n")
    return folder


def build_qwen2_5_vl(folder: str | Path) -> Path:
    """A tiny Qwen2.5-VL (Qwen2_5_VLForConditionalGeneration) with the Qwen2.5-VL processor."""
    import torch
    from transformers import (Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration, Qwen2_5_VLProcessor,
                              Qwen2VLImageProcessor, Qwen2VLVideoProcessor)

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer(folder)
    ids = _ids(tokenizer)
    head_dim = TEXT_DIMS["hidden_size"] // TEXT_DIMS["num_attention_heads"]
    config = Qwen2_5_VLConfig(
        text_config=dict(**TEXT_DIMS, vocab_size=len(tokenizer),
                         rope_parameters={"rope_type": "default", "rope_theta": 1e6,
                                          "mrope_section": [head_dim // 8, 3 * head_dim // 16, 3 * head_dim // 16]},
                         bos_token_id=None, eos_token_id=ids["<|im_end|>"], pad_token_id=ids["<|endoftext|>"]),
        vision_config=dict(depth=2, hidden_size=32, intermediate_size=64, num_heads=2, patch_size=14,
                           spatial_merge_size=2, temporal_patch_size=2, window_size=56, out_hidden_size=64,
                           fullatt_block_indexes=[1], tokens_per_second=2),
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
    )
    torch.manual_seed(0)
    model = Qwen2_5_VLForConditionalGeneration(config).eval()
    small = {"shortest_edge": 28 * 28 * 2, "longest_edge": 28 * 28 * 8}
    processor = Qwen2_5_VLProcessor(
        image_processor=Qwen2VLImageProcessor(size=small, patch_size=14, merge_size=2, temporal_patch_size=2),
        video_processor=Qwen2VLVideoProcessor(size=small, patch_size=14, merge_size=2, temporal_patch_size=2,
                                              cap_pixels_per_frame=True),
        tokenizer=tokenizer,
        chat_template=QWEN_CHAT_TEMPLATE,
    )
    return _finish(model, tokenizer, processor, folder, QWEN_CHAT_TEMPLATE)


def build_videollama3(folder: str | Path) -> Path:
    """A tiny VideoLLaMA3 (VideoLlama3ForConditionalGeneration, native in transformers 5)."""
    import torch
    from transformers import (VideoLlama3Config, VideoLlama3ForConditionalGeneration, VideoLlama3ImageProcessor,
                              VideoLlama3Processor, VideoLlama3VideoProcessor)

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer(folder)
    ids = _ids(tokenizer)
    config = VideoLlama3Config(
        text_config=dict(model_type="qwen2", **TEXT_DIMS, vocab_size=len(tokenizer), bos_token_id=None,
                         eos_token_id=ids["<|im_end|>"], pad_token_id=ids["<|endoftext|>"]),
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                           patch_size=14),
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
    )
    torch.manual_seed(0)
    model = VideoLlama3ForConditionalGeneration(config).eval()
    processor = VideoLlama3Processor(
        image_processor=VideoLlama3ImageProcessor(size={"shortest_edge": 28 * 28, "longest_edge": 28 * 28 * 4}),
        video_processor=VideoLlama3VideoProcessor(size={"shortest_edge": 28 * 28, "longest_edge": 28 * 28 * 64},
                                                  patch_size=14, merge_size=2, use_token_compression=True),
        tokenizer=tokenizer,
        chat_template=VIDEOLLAMA3_CHAT_TEMPLATE,
    )
    return _finish(model, tokenizer, processor, folder, VIDEOLLAMA3_CHAT_TEMPLATE)


BUILDERS = {"videollama3": build_videollama3, "qwen2_5_vl": build_qwen2_5_vl}


def build(kind: str, root: str | Path) -> Path:
    """Build (or reuse) the tiny model ``kind`` under ``root/kind``."""
    folder = Path(root) / kind
    if (folder / "GHOSTPROBE_TINY_MODEL.txt").exists() and (folder / "config.json").exists():
        return folder
    return BUILDERS[kind](folder)


def session_root(tmp_path_factory) -> Path:
    """One folder per pytest session shared by every test file (models are built once, then reused)."""
    root = Path(tmp_path_factory.getbasetemp()) / "tiny_models"
    root.mkdir(parents=True, exist_ok=True)
    return root


def describe(folder: str | Path) -> dict:
    cfg = json.loads((Path(folder) / "config.json").read_text())
    return {"model_type": cfg.get("model_type"), "folder": str(folder)}
