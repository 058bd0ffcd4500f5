"""The transformers engine through its real path (sampler → processor → generate → parse) on tiny
random models built from configs (tests/tiny_models.py). Nothing is downloaded."""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"

import tiny_models  # noqa: E402
from engines.base import GenerationOptions  # noqa: E402
from engines.errors import EngineError  # noqa: E402
from engines.llm import transformers_engine as te  # noqa: E402
from engines.types import Clip, VideoMeta  # noqa: E402

DADA = Path(__file__).resolve().parents[2] / "shared/data/dada-dev"
DADA_CLIP = DADA / "images_5_046.avi"

MESSAGES = [{"role": "system", "content": "你是行车记录仪视频分析助手。"},
            {"role": "user", "content": "视频中是否有鬼探头？请用 JSON 回答。"}]


@pytest.fixture(scope="session")
def tiny_root(tmp_path_factory):
    return tiny_models.session_root(tmp_path_factory)


@pytest.fixture(scope="session")
def videollama3(tiny_root):
    return tiny_models.build("videollama3", tiny_root)


@pytest.fixture(scope="session")
def qwen(tiny_root):
    return tiny_models.build("qwen2_5_vl", tiny_root)


def make_clip(n: int = 6, h: int = 96, w: int = 128, fps: float = 10.0) -> Clip:
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 255, (n, h, w, 3), dtype=np.uint8)
    total = n * 10
    indices = [i * 10 + 5 for i in range(n)]
    meta = VideoMeta(path="gen.mp4", frames=total, fps=fps, duration_s=total / fps, width=w, height=h,
                     codec="h264", sha256="0" * 64, size_bytes=1)
    return Clip(frames=frames, timestamps_s=[i / fps for i in indices], indices=indices, fps=fps,
                duration_s=total / fps, source="gen.mp4", sha256="0" * 64, meta=meta,
                sampling={"num_frames": n, "fps": None, "max_side": None})


def _check_run(engine, clip, max_new=12):
    opts = GenerationOptions(max_new_tokens=max_new)
    pieces = list(engine.stream_chat(clip, MESSAGES, opts))
    assert len(pieces) >= 3, pieces  # really streamed, not one blob
    call = engine.last_call
    assert call is not None and call.engine == "transformers"
    assert call.completion_tokens == max_new
    assert call.prompt_tokens and call.prompt_tokens > 10  # video placeholders + text
    assert call.preprocess_s >= 0 and call.generate_s > 0 and call.device.startswith("cpu")
    assert call.revision and call.revision.startswith("local-")
    assert call.revision == engine.describe()["revision"]  # what loaded is what the identity said
    result = engine.ask(clip, MESSAGES, opts)
    v = result.verdict
    assert v.status == "unparsed" and v.ghost_probing is None  # noise is never a "no"
    assert v.raw.strip() and v.raw.split() == "".join(pieces).split()  # greedy: same text both times
    return result


def test_videollama3_generated_clip(videollama3):
    engine = te.TransformersEngine(model=str(videollama3))
    ok, reason = engine.availability()
    assert ok and te.CPU_WARNING in reason
    _check_run(engine, make_clip())


def test_qwen2_5_vl_generated_clip(qwen):
    _check_run(te.TransformersEngine(model=str(qwen)), make_clip(n=4))


def test_real_dada_clip_both_models(videollama3, qwen):
    if not DADA_CLIP.exists():
        pytest.skip("DADA dev clips are absent")
    from engines.video import load_clip

    clip = load_clip(DADA_CLIP, num_frames=4, max_side=112)
    assert clip.frames.shape[0] == 4 and max(clip.frames.shape[1:3]) <= 112
    for folder in (videollama3, qwen):
        r = _check_run(te.TransformersEngine(model=str(folder)), clip, max_new=8)
        assert r.call.prompt_tokens > 8


def test_model_cache_shared_and_sampling_seeded(qwen):
    a, b = te.TransformersEngine(model=str(qwen)), te.TransformersEngine(model=str(qwen))
    assert a.load() is b.load()
    clip = make_clip(n=2)
    opts = GenerationOptions(max_new_tokens=6, temperature=0.9, seed=7)
    first = "".join(a.stream_chat(clip, MESSAGES, opts))
    second = "".join(b.stream_chat(clip, MESSAGES, opts))
    assert first == second and first.strip()


def test_early_stop_cancels_generation(qwen):
    engine = te.TransformersEngine(model=str(qwen))
    gen = engine.stream_chat(make_clip(n=2), MESSAGES, GenerationOptions(max_new_tokens=200))
    assert next(gen)
    gen.close()  # the consumer walks away: generation stops and the lock is free again
    assert not engine.load().lock.locked()


def test_video_goes_into_first_user_turn_only():
    msgs = [{"role": "system", "content": "s"}, {"role": "user", "content": "q1"},
            {"role": "assistant", "content": "a1"}, {"role": "user", "content": "q2"}]
    conv = te._to_conversation(msgs, with_video=True)
    kinds = [[p["type"] for p in m["content"]] for m in conv]
    assert kinds == [["text"], ["video", "text"], ["text"], ["text"]]
    assert [m["role"] for m in conv] == ["system", "user", "assistant", "user"]
    assert te._to_conversation(msgs, with_video=False)[1]["content"] == [{"type": "text", "text": "q1"}]


def test_video_metadata_carries_real_times():
    clip = make_clip(n=3)
    md = te._video_metadata(clip)
    assert md.fps == 10.0 and md.frames_indices == [5, 15, 25]
    assert md.timestamps == pytest.approx(clip.timestamps_s)


def test_availability_sentences(tmp_path, monkeypatch):
    monkeypatch.delenv("GHOSTPROBE_HF_MODEL", raising=False)
    monkeypatch.delenv("GHOSTPROBE_ALLOW_DOWNLOAD", raising=False)
    assert te.TransformersEngine().availability() == (False, te.NO_MODEL)
    ok, reason = te.TransformersEngine(model=str(tmp_path / "nope")).availability()
    assert not ok and "does not exist" in reason
    ok, reason = te.TransformersEngine(model=str(tmp_path)).availability()
    assert not ok and "config.json" in reason
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    ok, reason = te.TransformersEngine(model="nobody/not-a-model").availability()
    assert not ok and "not in the local Hugging Face cache" in reason and "GHOSTPROBE_ALLOW_DOWNLOAD" in reason
    with pytest.raises(EngineError, match="not in the local"):
        te.TransformersEngine(model="nobody/not-a-model").load()


def test_precision_policy():
    cpu = te.choose_precision(cuda=False)
    assert (cpu.dtype, cpu.device_map, cpu.device) == ("float32", None, "cpu") and cpu.warning == te.CPU_WARNING
    v100x4 = te.choose_precision(cuda=True, gpu_count=4, capability=(7, 0), bf16_supported=False)
    assert (v100x4.dtype, v100x4.attn_implementation, v100x4.device_map) == ("float16", "sdpa", "auto")
    a100 = te.choose_precision(cuda=True, gpu_count=1, capability=(8, 0), bf16_supported=True)
    assert (a100.dtype, a100.device_map, a100.warning) == ("bfloat16", {"": 0}, None)
    assert te.choose_precision(cuda=True, gpu_count=1, capability=(7, 5), attn="eager").attn_implementation == "eager"
    with pytest.raises(EngineError, match="bfloat16"):
        te.choose_precision(cuda=True, gpu_count=1, capability=(7, 0), dtype="bfloat16")
    with pytest.raises(EngineError, match="flash-attention"):
        te.choose_precision(cuda=True, gpu_count=1, capability=(7, 0), attn="flash_attention_2")
    with pytest.raises(EngineError, match="no GPU"):
        te.choose_precision(cuda=False, device="cuda")


def test_zero_gpu_wrap_only_when_spaces_exists(monkeypatch, tmp_path):
    fn = lambda: 1  # noqa: E731
    assert te._zero_gpu_wrap(fn, 60) is fn  # no `spaces` package here
    (tmp_path / "spaces.py").write_text(
        "CALLS = []\ndef GPU(duration=None):\n    CALLS.append(duration)\n    return lambda f: (lambda: ('gpu', f()))\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        wrapped = te._zero_gpu_wrap(fn, 90)
        import spaces

        assert wrapped() == ("gpu", 1) and spaces.CALLS == [90]
    finally:  # the stand-in must not outlive this test: find_spec would see it in sys.modules
        sys.modules.pop("spaces", None)


# -- identity without loading weights ----------------------------------------------------------------

def recompute_revision(folder: Path) -> str:
    """The documented fingerprint, written out again: config/tokenizer/template files byte for byte,
    weight files by name, size and the SHA-256 of their first and last MiB."""
    mib = 1 << 20
    h = hashlib.sha256()
    for f in sorted(folder.iterdir(), key=lambda p: p.name):
        if not f.is_file():
            continue
        data = f.read_bytes()
        if f.suffix in (".safetensors", ".bin"):
            part = data if len(data) <= 2 * mib else data[:mib] + data[-mib:]
            h.update(f"{f.name}\0{len(data)}\0".encode() + hashlib.sha256(part).hexdigest().encode())
        elif f.suffix in (".json", ".jinja", ".txt"):
            h.update(f"{f.name}\0{len(data)}\0".encode() + data)
    return "local-" + h.hexdigest()[:16]


@pytest.fixture
def no_weight_loading(monkeypatch):
    from transformers import AutoModelForImageTextToText

    def refuse(*a, **k):
        raise AssertionError("weights were loaded")

    monkeypatch.setattr(AutoModelForImageTextToText, "from_pretrained", refuse)


def test_revision_of_a_saved_folder_without_loading(qwen, tmp_path, no_weight_loading):
    folder = tmp_path / "copy"
    shutil.copytree(qwen, folder)
    assert any(f.suffix == ".safetensors" for f in folder.iterdir())
    engine = te.TransformersEngine(model=str(folder))
    d = engine.describe()
    assert d["revision"] == recompute_revision(folder) == engine.revision()
    assert te.TransformersEngine(model=str(qwen)).revision() == d["revision"]  # a copy keeps its revision
    assert (d["dtype"], d["attention"], d["video_mode"], d["settings"]) == ("float32", "sdpa", "video", {"device": "cpu"})
    assert engine._loaded is None and not any(k[0] == str(folder) for k in te._CACHE)
    digest = engine.identity(described=d).digest()

    os.utime(folder / "config.json", (1, 1))  # touching a file is no new revision
    assert engine.revision() == d["revision"]
    cfg = (folder / "config.json").read_text()
    (folder / "config.json").write_text(cfg.replace("{", '{"ghostprobe_test_edit": 1, ', 1))
    changed = engine.describe()
    assert changed["revision"] != d["revision"] and changed["revision"] == recompute_revision(folder)
    assert engine.identity(described=changed).digest() != digest
    (folder / "config.json").write_text(cfg)
    assert engine.revision() == d["revision"]
    template = next(f for f in folder.iterdir() if f.name.startswith("chat_template"))
    template.write_text(template.read_text() + " ")  # another chat template answers differently
    assert engine.revision() not in (d["revision"], None) and engine.revision() == recompute_revision(folder)


def test_weight_files_are_sampled_not_read_whole(tmp_path):
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "config.json").write_text('{"model_type": "qwen2_5_vl"}')
    weights = bytearray(os.urandom(5 << 20))
    (folder / "model.safetensors").write_bytes(weights)
    first = te.local_revision(folder)
    assert first == recompute_revision(folder)
    weights[10] ^= 1  # a fine-tune saved over the folder: same size, other bytes
    (folder / "model.safetensors").write_bytes(weights)
    second = te.local_revision(folder)
    assert second != first and second == recompute_revision(folder)
    weights[len(weights) // 2] ^= 1  # the middle of a weight file is never read
    (folder / "model.safetensors").write_bytes(weights)
    assert te.local_revision(folder) == second
    (folder / "README.md").write_text("notes")  # not part of the model
    assert te.local_revision(folder) == second
    assert te.local_revision(tmp_path) is None  # no config.json: no revision


def test_revision_of_a_hub_cache_snapshot(qwen, tmp_path, monkeypatch, no_weight_loading):
    from huggingface_hub import constants

    commits = ["0123456789abcdef0123456789abcdef01234567", "89abcdef0123456789abcdef0123456789abcdef"]
    repo = tmp_path / "hub" / "models--someone--tiny-qwen"
    for c in commits:
        (repo / "snapshots" / c).mkdir(parents=True)
        shutil.copy(qwen / "config.json", repo / "snapshots" / c / "config.json")
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commits[0])
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    engine = te.TransformersEngine(model="someone/tiny-qwen")
    assert engine.availability()[0]
    assert engine.describe()["revision"] == commits[0]
    (repo / "refs" / "main").write_text(commits[1])  # the cache was updated to a newer commit
    assert engine.revision() == commits[1]
    assert te.TransformersEngine(model=str(repo / "snapshots" / commits[0])).revision() == commits[0]
    assert te.TransformersEngine(model="someone/tiny-qwen", revision=commits[0]).revision() == commits[0]
    assert te.TransformersEngine(model="someone/not-cached").revision() is None


def test_describe_and_cost_location_follow_the_hardware(qwen, monkeypatch):
    engine = te.TransformersEngine(model=str(qwen))
    assert engine.cost_location().location == "local-cpu" and not engine.cost_location().defaulted
    cpu_digest = engine.identity(described=engine.describe()).digest()
    # the same engine on an Ampere GPU (no GPU here: the hardware probe answers as one would)
    a100 = te.choose_precision(cuda=True, gpu_count=1, capability=(8, 0), bf16_supported=True)
    monkeypatch.setattr(te, "detect_precision", lambda config=None: a100)
    d = engine.describe()
    assert (d["dtype"], d["attention"], d["settings"]) == ("bfloat16", "sdpa", {"device": "cuda"})
    assert engine.cost_location().location == "local-cuda"
    assert engine.identity(described=d).digest() != cpu_digest


def test_describe_of_an_engine_that_cannot_run(tmp_path, monkeypatch):
    monkeypatch.delenv("GHOSTPROBE_HF_MODEL", raising=False)
    with pytest.raises(EngineError, match="No model configured"):
        te.TransformersEngine().describe()
    with pytest.raises(EngineError, match="does not exist"):
        te.TransformersEngine(model=str(tmp_path / "nope")).describe()
    assert te.TransformersEngine(model=str(tmp_path / "nope")).revision() is None
