"""The videollama2 engine's identity, cost location and redaction against the real GPU worker
(engines/llm/worker/server.py with the STAND-IN echo adapter) as subprocesses on loopback.
The openai and transformers engines' identities are tested in test_llm_openai.py / test_llm_transformers.py."""

from __future__ import annotations

import json
import socket

import numpy as np
import pytest

from engines.base import GenerationOptions
from engines.errors import EngineError
from engines.llm.videollama2_engine import VideoLLaMA2Engine
from engines.types import Clip, VideoMeta
from test_llm_worker import start_worker

MSGS = [{"role": "user", "content": "有鬼探头吗？"}]


@pytest.fixture
def workers():
    procs = []

    def start(*extra):
        proc, url = start_worker(*extra)
        procs.append(proc)
        return proc, url

    yield start
    for p in procs:
        p.terminate()
        p.wait(timeout=10)


def clip(n=3) -> Clip:
    frames = np.full((n, 60, 80, 3), 90, np.uint8)
    ts = [0.5 + i for i in range(n)]
    meta = VideoMeta(path="v.avi", frames=40, fps=10.0, duration_s=4.0, width=80, height=60, codec="mpeg4",
                     sha256="c" * 64, size_bytes=1)
    return Clip(frames=frames, timestamps_s=ts, indices=[int(t * 10) for t in ts], fps=10.0, duration_s=4.0,
                source="v.avi", sha256="c" * 64, meta=meta)


def _digest(engine):
    return engine.identity(GenerationOptions(), {"num_frames": 3}, "p" * 64).digest()


def test_workers_serving_different_models_have_different_identities(workers):
    _, url_a = workers("--model", "model-a")
    _, url_b = workers("--model", "model-b")
    ea, ea2, eb = VideoLLaMA2Engine(url=url_a), VideoLLaMA2Engine(url=url_a), VideoLLaMA2Engine(url=url_b)
    d = ea.describe()
    assert d["model"] == "model-a" and d["endpoint"] == url_a and d["video_mode"] == "frames"
    assert d["settings"] == {"adapter": "echo", "stand_in": True, "jpeg_quality": 90}
    assert eb.describe()["model"] == "model-b"
    assert _digest(ea) != _digest(eb) and _digest(ea) == _digest(ea2)
    text = "".join(eb.stream_chat(clip(), MSGS, GenerationOptions()))
    assert text.startswith("STAND-IN ECHO") and eb.last_call.model == "model-b"  # what the answer named


def test_health_asked_once_per_instance_then_unreachable_is_one_sentence(workers):
    proc, url = workers()
    e = VideoLLaMA2Engine(url=url, timeout_s=3)
    first = e.describe()
    proc.terminate()
    proc.wait(timeout=10)
    assert e.describe() == first  # resolved once for this instance
    with pytest.raises(EngineError) as ei:
        VideoLLaMA2Engine(url=url, timeout_s=3).describe()
    assert str(ei.value) == f"Cannot connect to the VideoLLaMA2 worker at {url}: is server.py running?"


def test_unconfigured_worker_cannot_describe(monkeypatch):
    monkeypatch.delenv("GHOSTPROBE_VIDEOLLAMA2_URL", raising=False)
    with pytest.raises(EngineError, match="GHOSTPROBE_VIDEOLLAMA2_URL"):
        VideoLLaMA2Engine().describe()
    assert VideoLLaMA2Engine().cost_location().defaulted


def test_cost_location_is_the_worker_host(store, workers):
    from reports.costs import find_price

    _, url = workers()
    loc = VideoLLaMA2Engine(url=url).cost_location()
    assert loc.location == "self-hosted:127.0.0.1" and loc.instances == 1 and not loc.defaulted
    row, why = find_price(store, loc.location)
    assert row is None and "no price is set" in why  # shown as unknown, never as a wrong price
    assert VideoLLaMA2Engine(url="http://GPU-Box:8008").cost_location().location == "self-hosted:gpu-box"


def test_planted_credentials_never_appear(workers, caplog):
    import logging

    caplog.set_level(logging.DEBUG)
    _, url = workers("--max-body-mb", "1")
    user, password = "alice", "pw-PLANTED-7777"
    secret_url = url.replace("http://", f"http://{user}:{password}@")
    e = VideoLLaMA2Engine(url=secret_url)
    said = [e.availability()[1], e.probe()["reason"], json.dumps(e.describe()), e.cost_location().location]
    assert e.describe()["endpoint"] == url
    "".join(e.stream_chat(clip(), MSGS, GenerationOptions()))
    said.append(json.dumps(e.last_call.to_dict(), default=str))
    big = clip(n=2)
    big.frames = np.random.default_rng(0).integers(0, 255, (2, 900, 1200, 3), dtype=np.uint8)  # > 1 MB
    with pytest.raises(EngineError) as ei:
        list(e.stream_chat(big, MSGS, GenerationOptions()))
    said.append(str(ei.value))
    assert "HTTP 413" in said[-1]
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    down = VideoLLaMA2Engine(url=f"http://{user}:{password}@127.0.0.1:{port}", timeout_s=3)
    with pytest.raises(EngineError) as ei:
        down.describe()
    said.append(str(ei.value))
    with pytest.raises(EngineError) as ei:
        list(down.stream_chat(clip(), MSGS, GenerationOptions(timeout_s=3)))
    said.append(str(ei.value))
    said.append(caplog.text)
    for text in said:
        assert user not in text and password not in text, text[:300]
