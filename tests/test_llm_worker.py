"""The standalone GPU worker (engines/llm/worker/server.py) as a real subprocess with the STAND-IN echo
adapter, called through our videollama2 engine over HTTP. The real VideoLLaMA2 / Video-LLaMA packages
cannot be installed here (they pin old transformers and need CUDA)."""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import httpx
import numpy as np
import pytest

from engines.base import GenerationOptions
from engines.errors import EngineError
from engines.llm.videollama2_engine import NOT_CONFIGURED, VideoLLaMA2Engine
from engines.types import Clip, VideoMeta

SERVER = Path(__file__).resolve().parents[1] / "engines/llm/worker/server.py"


def start_worker(*extra: str):
    """Start server.py --port 0 in a clean interpreter (no GhostProbe on its path); return (proc, url)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.Popen([sys.executable, "-S", "-u", str(SERVER), "--adapter", "echo", "--port", "0", "--quiet", *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd="/")
    line = proc.stdout.readline()
    m = re.search(r"ready on (http://[\d.]+:\d+)", line)
    if not m:
        proc.kill()
        raise AssertionError(f"worker did not start: {line!r} {proc.stderr.read()}")
    return proc, m.group(1)


@pytest.fixture(scope="module")
def worker():
    proc, url = start_worker("--max-body-mb", "2")
    yield url
    proc.terminate()
    proc.wait(timeout=10)


def clip(n=5, h=90, w=160) -> Clip:
    frames = np.full((n, h, w, 3), 128, np.uint8)
    ts = [0.2 * i + 0.1 for i in range(n)]
    meta = VideoMeta(path="v.avi", frames=50, fps=10.0, duration_s=5.0, width=w, height=h, codec="mpeg4",
                     sha256="b" * 64, size_bytes=1)
    return Clip(frames=frames, timestamps_s=ts, indices=[int(t * 10) for t in ts], fps=10.0, duration_s=5.0,
                source="v.avi", sha256="b" * 64, meta=meta)


def test_worker_uses_stdlib_only():
    import ast

    allowed = set(sys.stdlib_module_names) | {"adapters"}
    for f in [SERVER, SERVER.parent / "adapters" / "echo.py", SERVER.parent / "adapters" / "__init__.py"]:
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module]
            else:
                continue
            for n in names:
                assert n.split(".")[0] in allowed, f"{f.name} imports {n}"


def test_echo_reflects_the_frames_we_sent(worker):
    e = VideoLLaMA2Engine(url=worker)
    assert e.availability() == (True, f"configured, not yet contacted: worker at {worker}.")
    probe = e.probe()
    assert probe["ok"] and probe["health"]["adapter"] == "echo" and "STAND-IN" in probe["reason"]
    msgs = [{"role": "system", "content": "你是助手"}, {"role": "user", "content": "有鬼探头吗？"},
            {"role": "assistant", "content": "没有"}, {"role": "user", "content": "再看看第3秒？"}]
    c = clip()
    pieces = list(e.stream_chat(c, msgs, GenerationOptions(max_new_tokens=77)))
    assert len(pieces) > 10  # streamed word by word over NDJSON, not one block
    text = "".join(pieces)
    assert text.startswith("STAND-IN ECHO (not a model)")
    assert "received 5 frames" in text and "sizes 160x90" in text and "timestamps 0.10s..0.90s" in text
    assert "4 messages" in text and "max_new_tokens 77" in text and text.endswith("last question: 再看看第3秒？")
    call = e.last_call
    assert call.engine == "videollama2" and call.model == "echo" and call.extra["stand_in"] is True
    assert call.generate_s is not None and call.latency_s >= call.generate_s and "none (stand-in)" in call.device
    v = e.ask(c, msgs, GenerationOptions()).verdict
    assert v.status == "unparsed" and v.ghost_probing is None  # the stand-in never yields a verdict


def test_stream_protocol_is_ndjson_deltas_then_the_final_object(worker):
    body = {"frames": frames_to_b64(clip(n=2)), "messages": [{"role": "user", "content": "q"}], "stream": True}
    with httpx.stream("POST", f"{worker}/v1/chat", json=body) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("application/x-ndjson")
        assert r.headers["transfer-encoding"] == "chunked"
        items = [json.loads(line) for line in r.iter_lines() if line.strip()]
    *deltas, final = items
    assert len(deltas) > 5 and all(set(d) == {"delta"} for d in deltas)
    assert final["done"] is True and final["text"] == "".join(d["delta"] for d in deltas)
    assert final["adapter"] == "echo" and final["stand_in"] is True and final["latency_s"] >= 0
    r = httpx.post(f"{worker}/v1/chat", json={**body, "stream": "yes"})
    assert r.status_code == 400 and r.json() == {"error": "'stream' must be true or false."}


def frames_to_b64(c: Clip) -> list[str]:
    from engines.llm.media import frames_to_jpeg_b64

    return frames_to_jpeg_b64(c.frames, 90)


def test_bad_requests_get_json_errors(worker):
    def post(body, raw=None):
        r = httpx.post(f"{worker}/v1/chat", content=raw if raw is not None else json.dumps(body).encode(),
                       headers={"Content-Type": "application/json"})
        return r.status_code, r.json()

    jpeg = base64.b64encode(b"\xff\xd8\xff\xd9").decode()
    ok_msgs = [{"role": "user", "content": "q"}]
    assert post(None, raw=b"{not json") == (400, {"error": "The body is not valid JSON."})
    code, err = post({"frames": [], "messages": ok_msgs})
    assert code == 400 and "frames" in err["error"]
    code, err = post({"frames": ["@@@"], "messages": ok_msgs})
    assert code == 400 and "frames[0] is not valid base64" in err["error"]
    code, err = post({"frames": [base64.b64encode(b"GIF89a").decode()], "messages": ok_msgs})
    assert code == 400 and "not a JPEG" in err["error"]
    code, err = post({"frames": [jpeg], "timestamps": [0, 1], "messages": ok_msgs})
    assert code == 400 and "timestamps" in err["error"]
    code, err = post({"frames": [jpeg], "messages": [{"role": "robot", "content": "x"}]})
    assert code == 400 and "messages[0]" in err["error"]
    code, err = post({"frames": [jpeg], "messages": ok_msgs, "max_new_tokens": 0})
    assert code == 400 and "max_new_tokens" in err["error"]
    code, err = post(None, raw=b"x" * (3 * 1024 * 1024))
    assert code == 413 and "limit" in err["error"]
    r = httpx.get(f"{worker}/nope")
    assert r.status_code == 404 and "error" in r.json()
    assert httpx.get(f"{worker}/health").json() == {"ok": True, "adapter": "echo", "model": "echo",
                                                   "device": "none (stand-in)", "stand_in": True}


def test_engine_turns_worker_errors_into_sentences(worker):
    e = VideoLLaMA2Engine(url=worker)
    big = clip(n=2, h=1200, w=1600)
    big.frames[:] = np.random.default_rng(0).integers(0, 255, big.frames.shape, dtype=np.uint8)  # > 2 MB of JPEG
    with pytest.raises(EngineError, match=r"answered HTTP 413: The request is \d+ bytes"):
        list(e.stream_chat(big, [{"role": "user", "content": "q"}], GenerationOptions()))


def test_unconfigured_and_unreachable(monkeypatch):
    monkeypatch.delenv("GHOSTPROBE_VIDEOLLAMA2_URL", raising=False)
    e = VideoLLaMA2Engine()
    assert e.availability() == (False, NOT_CONFIGURED)
    with pytest.raises(EngineError, match="GHOSTPROBE_VIDEOLLAMA2_URL"):
        list(e.stream_chat(clip(), [{"role": "user", "content": "q"}], GenerationOptions()))
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    monkeypatch.setenv("GHOSTPROBE_VIDEOLLAMA2_URL", f"http://127.0.0.1:{port}")
    e = VideoLLaMA2Engine()
    assert e.availability()[0] is True  # configured: no call made
    assert e.probe()["ok"] is False and "Cannot connect" in e.probe()["reason"]
    with pytest.raises(EngineError, match="Cannot connect to the VideoLLaMA2 worker"):
        list(e.stream_chat(clip(), [{"role": "user", "content": "q"}], GenerationOptions()))
