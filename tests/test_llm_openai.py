"""The openai engine against a real chat-completions HTTP server on loopback (stdlib, SSE streaming)."""

from __future__ import annotations

import base64
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from engines.base import GenerationOptions
from engines.errors import EngineError
from engines.llm.openai_engine import OpenAIEngine
from engines.types import Clip, VideoMeta

SECRET = "sk-test-SECRET-1234567890"
ANSWER = ['{"是否鬼探头": "是", ', '"置信度": 0.8, ', '"危险等级": "高", ', '"目标类型": "行人", ',
          '"出现时间": "1.5秒", ', '"理由": "行人从车后冲出"}']


class FakeServer:
    """A chat-completions server whose behaviour each test scripts: a queue of responses."""

    def __init__(self, models: list[str] | None = None, reports: str | None = None):
        self.requests: list[dict] = []
        self.headers: list[dict] = []
        self.paths: list[str] = []  # every request line's path, query included
        self.models = list(models or ["served-model"])  # what GET /models lists
        self.reports = reports  # the model name the chunks report (None: the one asked for)
        self.script: list[tuple] = []  # ("ok",) | ("status", code, body) | ("sleep", seconds)
        outer = self

        class H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def _json(self, code, obj, extra=None):
                data = json.dumps(obj).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in (extra or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                outer.paths.append(self.path)
                if self.path.split("?")[0].endswith("/models"):
                    self._json(200, {"object": "list", "data": [{"id": m, "object": "model", "created": 0,
                                                                 "owned_by": "me"} for m in outer.models]})
                else:
                    self._json(404, {"error": {"message": "nope"}})

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.paths.append(self.path)
                outer.requests.append(body)
                outer.headers.append({k.lower(): v for k, v in self.headers.items()})
                step = outer.script.pop(0) if outer.script else ("ok",)
                if step[0] == "status":
                    self._json(step[1], step[2], {"Retry-After": "0"} if step[1] == 429 else None)
                    return
                if step[0] == "sleep":
                    time.sleep(step[1])
                if not self.path.split("?")[0].endswith("/chat/completions"):
                    self._json(404, {"error": {"message": "no route"}})
                    return
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Connection", "close")
                self.end_headers()
                base = {"id": "c1", "object": "chat.completion.chunk", "created": 0,
                        "model": outer.reports or body["model"],
                        "system_fingerprint": "fp_test"}
                for i, piece in enumerate(ANSWER):
                    delta = {"content": piece} if i else {"role": "assistant", "content": piece}
                    chunk = dict(base, choices=[{"index": 0, "delta": delta, "finish_reason": None}])
                    self.wfile.write(f"data: {json.dumps(chunk, ensure_ascii=False)}\n\n".encode())
                    self.wfile.flush()
                end = dict(base, choices=[{"index": 0, "delta": {}, "finish_reason": "stop"}])
                self.wfile.write(f"data: {json.dumps(end)}\n\n".encode())
                if (body.get("stream_options") or {}).get("include_usage"):
                    usage = dict(base, choices=[], usage={"prompt_tokens": 321, "completion_tokens": 45,
                                                          "total_tokens": 366})
                    self.wfile.write(f"data: {json.dumps(usage)}\n\n".encode())
                self.wfile.write(b"data: [DONE]\n\n")
                self.wfile.flush()
                self.close_connection = True

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    s = FakeServer()
    yield s
    s.close()


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    for k in ("GHOSTPROBE_OPENAI_BASE_URL", "GHOSTPROBE_OPENAI_API_KEY", "OPENAI_API_KEY", "GHOSTPROBE_OPENAI_MODEL",
              "GHOSTPROBE_OPENAI_VIDEO_MODE", "GHOSTPROBE_OPENAI_MAX_RETRIES"):
        monkeypatch.delenv(k, raising=False)


def clip(n=3, h=48, w=64) -> Clip:
    frames = np.zeros((n, h, w, 3), np.uint8)
    frames[..., 0] = 200
    meta = VideoMeta(path="v.mp4", frames=30, fps=10.0, duration_s=3.0, width=w, height=h, codec="h264",
                     sha256="a" * 64, size_bytes=1)
    return Clip(frames=frames, timestamps_s=[0.5, 1.5, 2.5][:n], indices=[5, 15, 25][:n], fps=10.0, duration_s=3.0,
                source="v.mp4", sha256="a" * 64, meta=meta)


MSGS = [{"role": "system", "content": "你是助手"}, {"role": "user", "content": "是否有鬼探头？"},
        {"role": "assistant", "content": "请稍等"}, {"role": "user", "content": "请给出 JSON"}]


def test_images_mode_streams_and_counts_tokens(server):
    e = OpenAIEngine(model="qwen-vl", base_url=server.url, api_key=SECRET)
    ok, reason = e.availability()
    assert ok and "not yet contacted" in reason
    pieces = list(e.stream_chat(clip(), MSGS, GenerationOptions(max_new_tokens=64)))
    assert pieces == ANSWER
    req = server.requests[-1]
    assert req["stream"] is True and req["stream_options"] == {"include_usage": True}
    assert req["temperature"] == 0 and req["max_tokens"] == 64 and req["model"] == "qwen-vl"
    assert server.headers[-1]["authorization"] == f"Bearer {SECRET}"
    first_user = req["messages"][1]
    images = [p for p in first_user["content"] if p["type"] == "image_url"]
    assert len(images) == 3 and images[0]["image_url"]["url"].startswith("data:image/jpeg;base64,")
    jpeg = base64.b64decode(images[0]["image_url"]["url"].split(",", 1)[1])
    assert jpeg[:2] == b"\xff\xd8"
    texts = [p["text"] for p in first_user["content"] if p["type"] == "text"]
    assert "t=0.50s" in texts and "t=2.50s" in texts and texts[-1] == "是否有鬼探头？"
    # only the first user turn carries the video; later turns are plain text
    assert req["messages"][3] == {"role": "user", "content": "请给出 JSON"}
    assert req["messages"][0] == {"role": "system", "content": "你是助手"}
    call = e.last_call
    assert (call.prompt_tokens, call.completion_tokens, call.model) == (321, 45, "qwen-vl")
    assert call.extra["system_fingerprint"] == "fp_test" and call.revision is None
    assert call.extra["attempts"] == 1 and call.generate_s > 0


def test_ask_parses_streamed_json(server):
    e = OpenAIEngine(model="m", base_url=server.url)
    r = e.ask(clip(), MSGS[:2], GenerationOptions())
    assert r.verdict.status == "ok" and r.verdict.ghost_probing is True and r.verdict.object_type == "pedestrian"
    assert server.headers[-1]["authorization"] == "Bearer EMPTY"  # a local server needs no key


def test_video_url_mode_sends_one_mp4(server):
    e = OpenAIEngine(model="m", base_url=server.url, video_mode="video_url")
    assert "".join(e.stream_chat(clip(n=3, h=49, w=65), MSGS[:2], GenerationOptions())) == "".join(ANSWER)
    parts = server.requests[-1]["messages"][1]["content"]
    assert [p["type"] for p in parts] == ["video_url", "text"]
    uri = parts[0]["video_url"]["url"]
    assert uri.startswith("data:video/mp4;base64,")
    mp4 = base64.b64decode(uri.split(",", 1)[1])
    import io

    import av

    with av.open(io.BytesIO(mp4)) as c:
        frames = list(c.decode(video=0))
    assert len(frames) == 3 and (frames[0].width, frames[0].height) == (64, 48)  # cropped to even sides
    assert "0.50, 1.50, 2.50" in parts[1]["text"]


def test_429_then_success_is_retried(server):
    server.script = [("status", 429, {"error": {"message": "slow down"}}), ("ok",)]
    e = OpenAIEngine(model="m", base_url=server.url, backoff_s=0.01)
    assert "".join(e.stream_chat(clip(), MSGS[:2], GenerationOptions())) == "".join(ANSWER)
    assert len(server.requests) == 2 and e.last_call.extra["attempts"] == 2


def test_5xx_retries_then_gives_up_with_a_sentence(server):
    server.script = [("status", 503, {"error": {"message": "busy"}})] * 3
    e = OpenAIEngine(model="m", base_url=server.url, backoff_s=0.01, max_retries=2)
    with pytest.raises(EngineError, match=r"HTTP 503 after 3 attempts"):
        list(e.stream_chat(clip(), MSGS[:2], GenerationOptions()))
    assert len(server.requests) == 3


def test_slow_server_times_out_clearly(server):
    server.script = [("sleep", 3.0)]
    e = OpenAIEngine(model="m", base_url=server.url)
    t0 = time.perf_counter()
    with pytest.raises(EngineError) as ei:
        list(e.stream_chat(clip(), MSGS[:2], GenerationOptions(timeout_s=0.5)))
    assert time.perf_counter() - t0 < 2.5
    assert "did not answer within 0.5 s" in str(ei.value) and len(server.requests) == 1  # not retried


def test_401_403_404_sentences_never_leak_the_key(server):
    for code, words in ((401, "rejected the API key"), (403, "refused access"), (404, "was not found")):
        server.script = [("status", code, {"error": {"message": f"bad key {SECRET}"}})]
        e = OpenAIEngine(model="gpt-x", base_url=server.url, api_key=SECRET)
        with pytest.raises(EngineError) as ei:
            list(e.stream_chat(clip(), MSGS[:2], GenerationOptions()))
        msg = str(ei.value)
        assert words in msg and SECRET not in msg and "sk-" not in msg
        assert msg.count(".") >= 1 and "\n" not in msg


def test_400_detail_is_scrubbed(server):
    server.script = [("status", 400, {"error": {"message": f"video_url is not supported for key {SECRET}"}})]
    e = OpenAIEngine(model="m", base_url=server.url, api_key=SECRET)
    with pytest.raises(EngineError) as ei:
        list(e.stream_chat(clip(), MSGS[:2], GenerationOptions()))
    assert "HTTP 400" in str(ei.value) and "video_url is not supported" in str(ei.value) and SECRET not in str(ei.value)


def test_connection_refused(server):
    url = server.url
    server.close()
    e = OpenAIEngine(model="m", base_url=url)
    with pytest.raises(EngineError, match="Cannot connect to the OpenAI-compatible server"):
        list(e.stream_chat(clip(), MSGS[:2], GenerationOptions(timeout_s=5)))


def test_model_from_server_when_unset(server):
    e = OpenAIEngine(base_url=server.url)
    "".join(e.stream_chat(clip(), MSGS[:2], GenerationOptions()))
    assert server.requests[-1]["model"] == "served-model" and e.last_call.model == "served-model"


def test_availability_is_instant_and_explains(monkeypatch):
    ok, reason = OpenAIEngine().availability()
    assert not ok and "GHOSTPROBE_OPENAI_BASE_URL" in reason
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    ok, reason = OpenAIEngine().availability()
    assert not ok and "GHOSTPROBE_OPENAI_MODEL" in reason
    monkeypatch.setenv("GHOSTPROBE_OPENAI_MODEL", "gpt-4o")
    ok, reason = OpenAIEngine().availability()
    assert ok and "api.openai.com" in reason and SECRET not in reason
    # an unroutable address: availability still answers at once (no network)
    t0 = time.perf_counter()
    ok, _ = OpenAIEngine(base_url="http://10.255.255.1:9/v1").availability()
    assert ok and time.perf_counter() - t0 < 0.5
    ok, reason = OpenAIEngine(base_url="http://x/v1", video_mode="gif").availability()
    assert not ok and "images or video_url" in reason


def test_max_completion_tokens_fallback(server):
    msg = "Unsupported parameter: 'max_tokens' is not supported with this model. Use 'max_completion_tokens' instead."
    server.script = [("status", 400, {"error": {"message": msg, "param": "max_tokens"}}), ("ok",)]
    e = OpenAIEngine(model="m", base_url=server.url)
    assert "".join(e.stream_chat(clip(), MSGS[:2], GenerationOptions(max_new_tokens=99))) == "".join(ANSWER)
    first, second = server.requests
    assert first["max_tokens"] == 99 and "max_tokens" not in second and second["max_completion_tokens"] == 99


# -- identity: resolved before the first call, checked after it ------------------------------------

def _digest(engine, opts=None):
    return engine.identity(opts or GenerationOptions(), {"num_frames": 3}, "p" * 64).digest()


def test_two_servers_with_different_models_have_different_identities(monkeypatch):
    a, b = FakeServer(models=["model-a"]), FakeServer(models=["model-b", "model-z"])
    try:
        # the same configuration (model left to the server) pointed at one server, then the other
        monkeypatch.setenv("GHOSTPROBE_OPENAI_BASE_URL", a.url)
        ea, ea2 = OpenAIEngine(), OpenAIEngine()
        monkeypatch.setenv("GHOSTPROBE_OPENAI_BASE_URL", b.url)
        eb = OpenAIEngine()
        da, db = ea.describe(), eb.describe()
        assert (da["model"], db["model"]) == ("model-a", "model-b")  # the first model each server lists
        assert da["endpoint"] == a.url and db["endpoint"] == b.url and da["video_mode"] == "images"
        assert _digest(ea) != _digest(eb)
        assert _digest(ea) == _digest(ea2)  # the same server: the same identity (a cache hit)
        assert ea.identity(described=da).model == "model-a"
        # what answered is what the identity says
        "".join(eb.stream_chat(clip(), MSGS[:2], GenerationOptions()))
        assert b.requests[-1]["model"] == "model-b" and eb.last_call.model == "model-b"
    finally:
        a.close()
        b.close()


def test_same_endpoint_serving_another_model_is_another_identity(server):
    server.models = ["first-model"]
    before = OpenAIEngine(base_url=server.url)
    d1 = _digest(before)
    server.models = ["second-model"]  # the server restarted with another model on the same port
    after = OpenAIEngine(base_url=server.url)
    assert after.describe()["model"] == "second-model" and _digest(after) != d1
    assert before.describe()["model"] == "first-model"  # asked once per engine instance


def test_models_listed_once_per_instance_and_used_for_calls(server):
    e = OpenAIEngine(base_url=server.url)
    assert e.model_id() is None
    assert e.describe()["model"] == "served-model"
    for _ in range(2):
        "".join(e.stream_chat(clip(), MSGS[:2], GenerationOptions()))
    assert [p for p in server.paths if p.endswith("/models")] == ["/v1/models"]
    assert [r["model"] for r in server.requests] == ["served-model"] * 2
    assert e.model_id() == "served-model" and e.last_call.extra["model_requested"] == "served-model"


def test_configured_model_needs_no_listing(server):
    d = OpenAIEngine(model="qwen-vl", base_url=server.url, video_mode="video_url").describe()
    assert d["model"] == "qwen-vl" and d["video_mode"] == "video_url" and d["settings"]["video_codec"]
    assert server.paths == []  # nothing asked


def test_reported_model_is_captured(server):
    server.reports = "gpt-4o-2024-08-06"  # a server that answers under a more exact name than the one asked
    e = OpenAIEngine(model="gpt-4o", base_url=server.url)
    text, call = e.chat(clip(), MSGS[:2], GenerationOptions())
    assert text == "".join(ANSWER)
    assert call.model == "gpt-4o-2024-08-06" and call.extra["model_requested"] == "gpt-4o"
    assert e.identity().model == "gpt-4o"  # the identity says what was asked; the core compares the two


def test_describe_when_server_unreachable_is_one_sentence(server):
    url = server.url.replace("http://", "http://alice:pw-PLANTED-9876@") + "?token=TOKEN-PLANTED-5555"
    server.close()
    e = OpenAIEngine(base_url=url, api_key=SECRET, timeout_s=5)
    with pytest.raises(EngineError) as ei:
        e.describe()
    msg = str(ei.value)
    assert "Cannot connect" in msg and "which model it serves" in msg and "\n" not in msg
    for planted in ("alice", "pw-PLANTED", "TOKEN-PLANTED", SECRET):
        assert planted not in msg


def test_server_that_lists_no_model(server):
    server.models = []
    with pytest.raises(EngineError, match="lists no model; set GHOSTPROBE_OPENAI_MODEL"):
        OpenAIEngine(base_url=server.url).describe()


# -- cost location -----------------------------------------------------------------------------------

def test_cost_locations_match_the_price_catalogue(store, server):
    from reports.costs import find_price

    row, why = find_price(store, OpenAIEngine(model="gpt-4o", api_key=SECRET).cost_location().location)
    assert why is None and (row["provider"], row["sku"], row["usd_per_1m_input_tokens"]) == ("openai", "gpt-4o", 2.5)
    azure = OpenAIEngine(model="gpt-4o", base_url="https://me.openai.azure.com/openai/v1", api_key=SECRET)
    row, why = find_price(store, azure.cost_location().location)
    assert why is None and row["provider"] == "azure-openai"
    # a vLLM server on your own box has no token price: the report says unknown, never a wrong price
    own = OpenAIEngine(base_url=server.url)
    assert own.cost_location().location == "self-hosted:127.0.0.1"
    row, why = find_price(store, own.cost_location().location)
    assert row is None and "no price is set for location 'self-hosted:127.0.0.1'" in why
    assert OpenAIEngine(base_url="http://gpu-box:8000/v1").cost_location().location == "self-hosted:gpu-box"
    assert OpenAIEngine(base_url="http://10.1.2.3:8000/v1").cost_location().location == "self-hosted:10.1.2.3"
    hosted = OpenAIEngine(model="qwen-vl-max", base_url="https://dashscope.aliyuncs.com/compatible-mode/v1",
                          api_key=SECRET)
    assert hosted.cost_location().location == "dashscope.aliyuncs.com:qwen-vl-max"
    assert find_price(store, hosted.cost_location().location)[0] is None


# -- no credentials in anything the engine says ------------------------------------------------------

def test_planted_secrets_never_appear(server, caplog):
    import logging

    user, password, token, key = "alice", "pw-PLANTED-9876", "TOKEN-PLANTED-5555", "sk-PLANTED-KEY-424242"
    planted = (user, password, token, key)
    url = server.url.replace("http://", f"http://{user}:{password}@") + f"?token={token}"
    caplog.set_level(logging.DEBUG)
    e = OpenAIEngine(base_url=url, api_key=key, backoff_s=0.01)  # the key given as an argument, not in env
    said: list[str] = []
    ok, reason = e.availability()
    said.append(reason)
    d = e.describe()
    said += [json.dumps(d), e.identity(GenerationOptions(), {}, None, described=d).canonical(),
             e.cost_location().location, e.endpoint]
    assert d["endpoint"] == server.url and d["model"] == "served-model"
    # the query token really reaches the server (as a query parameter), on every request
    assert all(f"token={token}" in p for p in server.paths)

    server.script = [("status", 429, {"error": {"message": f"slow down {key} {token} {password}"}}), ("ok",)]
    text, call = e.chat(clip(), MSGS[:2], GenerationOptions())
    assert text == "".join(ANSWER) and call.extra["attempts"] == 2
    said.append(json.dumps(call.to_dict(), default=str))
    assert "retry 1 of 3" in caplog.text  # our own log line about the retry

    server.script = [("status", 400, {"error": {"message": f"bad request for {key} at {url} {token} {password}"}})]
    for code in (400, 401, 404, 503):
        server.script = [("status", code, {"error": {"message": f"no: {key} at {url} {token} {password}"}})] * 4
        with pytest.raises(EngineError) as ei:
            list(e.stream_chat(clip(), MSGS[:2], GenerationOptions()))
        said.append(str(ei.value))
    assert "HTTP 400" in said[-4] and "no:" in said[-4]  # the server's detail is kept, scrubbed
    said.append(caplog.text)
    assert "HTTP Request" in caplog.text  # httpx did log the request URLs, through the filter
    for text in said:
        for p in planted:
            assert p not in text, (p, text[:300])
