"""The SageMaker serving container on loopback (real HTTP), its client engine through botocore against
that container, and the deploy script and client against moto (the SageMaker control plane; moto's
invoke_endpoint returns queued canned bodies and never reaches a container).

The container is exercised with the weights-free motion scorer here (fast); the AI-VAD scorer with
a fitted artifact is exercised in tests/test_vad_aivad.py."""

from __future__ import annotations

import base64
import json
import threading

import httpx
import numpy as np
import pytest

from engines.vad.serve import server as S


class GatedMotion(S.MotionScorer):
    """The motion scorer whose load waits until the test opens the gate (to see /ping before loading)."""

    def __init__(self):
        self.gate = threading.Event()

    def load(self):
        self.gate.wait(30)
        super().load()


@pytest.fixture(scope="module")
def frames():
    from engines.synth import render_clip
    from engines.video import load_clip

    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as d:
        info = render_clip(Path(d) / "c.mp4", "emerge_pedestrian", seed=0, duration_s=3.0, onset_s=1.0,
                           size=(320, 180))
        clip = load_clip(info["path"], num_frames=None, fps=5, max_side=320)
    return clip


@pytest.fixture(scope="module")
def container():
    scorer = GatedMotion()
    srv, st = S.make_server(scorer, "127.0.0.1", 0)
    th = threading.Thread(target=srv.serve_forever, daemon=True)
    th.start()
    url = f"http://127.0.0.1:{srv.server_address[1]}"
    yield url, scorer, st
    srv.shutdown()
    srv.server_close()


def _b64(frame: np.ndarray) -> str:
    from engines.vad.sagemaker import encode_jpeg

    return base64.b64encode(encode_jpeg(frame)).decode()


def test_ping_is_200_only_once_the_model_is_loaded(container):
    url, scorer, st = container
    r = httpx.get(url + "/ping")
    assert r.status_code == 503 and r.json()["status"] == "loading"
    r = httpx.post(url + "/invocations", content=b"{}", headers={"Content-Type": "application/json"})
    assert r.status_code == 503
    scorer.gate.set()
    assert st.loaded.wait(30)
    assert httpx.get(url + "/ping").status_code == 200


def test_json_clip_request_gets_the_seed_response_format(container, frames):
    url, scorer, st = container
    scorer.gate.set()
    st.loaded.wait(30)
    imgs = [_b64(f) for f in frames.frames[:6]]
    r = httpx.post(url + "/invocations", json={"images": imgs, "clip": True, "maps": True}, timeout=60)
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["pairs"] == [[i, i + 1] for i in range(5)]
    assert len(out["pred_scores"]) == len(out["pred_boxes"]) == len(out["box_scores"]) == len(out["maps"]) == 5
    for boxes, scores in zip(out["pred_boxes"], out["box_scores"]):
        assert len(boxes) == len(scores) and all(len(b) == 4 for b in boxes)
    # the runtime API's path reaches the same handler (a boto3 client with endpoint_url)
    r2 = httpx.post(url + "/endpoints/any/invocations", json={"images": imgs, "clip": True}, timeout=60)
    assert r2.status_code == 200 and r2.json()["pred_scores"] == out["pred_scores"]


@pytest.mark.parametrize("ctype,body,status,words", [
    ("application/json", b"{not json", 400, "not valid JSON"),
    ("application/json", json.dumps({"images": []}).encode(), 400, "non-empty"),
    ("application/json", json.dumps({"images": ["http://example.com/a.jpg", "x"], "clip": True}).encode(), 400,
     "Unsupported image URI"),
    ("application/json", json.dumps({"images": ["aGVsbG8=", "aGVsbG8="], "clip": True}).encode(), 400,
     "not an image"),
    ("application/json", json.dumps({"images": ["@@@", "@@@"], "clip": True}).encode(), 400, "base64"),
    ("application/json", json.dumps({"images": ["aGVsbG8="], "clip": True}).encode(), 400, "at least two"),
    ("image/x-image", b"\x89PNG...", 400, "at least two frames"),  # the motion scorer needs two frames
    ("text/plain", b"hello", 415, "Unsupported content type"),
])
def test_bad_payloads_get_4xx_with_one_sentence(container, ctype, body, status, words):
    url, scorer, st = container
    scorer.gate.set()
    st.loaded.wait(30)
    r = httpx.post(url + "/invocations", content=body, headers={"Content-Type": ctype})
    assert r.status_code == status
    msg = r.json()["error"]
    assert words in msg and "\n" not in msg and "Traceback" not in msg


def test_over_6mb_is_413_and_over_the_time_limit_is_408(container, frames):
    url, scorer, st = container
    scorer.gate.set()
    st.loaded.wait(30)
    big = b"x" * (6 * 1024 * 1024 + 10)
    r = httpx.post(url + "/invocations", content=big, headers={"Content-Type": "application/json"}, timeout=60)
    assert r.status_code == 413 and "6 MB" in r.json()["error"]
    old = st.time_limit_s
    st.time_limit_s = 0.0
    try:
        imgs = [_b64(f) for f in frames.frames[:3]]
        r = httpx.post(url + "/invocations", json={"images": imgs, "clip": True}, timeout=60)
    finally:
        st.time_limit_s = old
    assert r.status_code == 408 and "asynchronous inference" in r.json()["error"]


# -- the client engine ----------------------------------------------------------------------------

@pytest.fixture
def fake_aws(monkeypatch, tmp_path):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.delenv("AWS_PROFILE", raising=False)


def test_client_engine_through_botocore_against_the_loopback_container(container, frames, fake_aws):
    from engines.vad.sagemaker import SageMakerVadEngine

    url, scorer, st = container
    scorer.gate.set()
    st.loaded.wait(30)
    # a small body limit forces several requests: consecutive chunks share one frame
    eng = SageMakerVadEngine(endpoint="ghostprobe-vad", endpoint_url=url, region="us-east-1", threshold=0.5,
                             max_body=4 * len(_b64(frames.frames[0])) + 200)
    d = eng.detect(frames)
    assert d.verdict.status == "ok", d.verdict.reason
    a = d.artifacts
    assert a.extra["requests"] >= 3
    times = [t for t, _ in a.tracks["anomaly"]]
    assert times == pytest.approx([round(t, 4) for t in frames.timestamps_s[1:]])  # every pair exactly once
    assert all(1 <= b.frame < frames.num_frames for b in a.boxes)
    assert eng.cost_location().location == "aws:ml.g4dn.xlarge"
    # a container error comes back as one sentence
    eng_bad = SageMakerVadEngine(endpoint="ghostprobe-vad", endpoint_url=url, region="us-east-1")
    from engines.types import Clip

    one = Clip(frames=frames.frames[:1], timestamps_s=[0.0], indices=[0], fps=5, duration_s=0.2, source="x",
               sha256="0" * 64, meta=frames.meta)
    e = eng_bad.detect(one)
    assert e.verdict.status == "error" and "two frames" in e.verdict.reason


def test_client_engine_missing_credentials_is_one_sentence(monkeypatch, tmp_path, frames):
    from engines.vad.sagemaker import SageMakerVadEngine

    for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    eng = SageMakerVadEngine(endpoint="ep", region="us-east-1", endpoint_url="http://127.0.0.1:9", max_retries=0)
    d = eng.detect(frames)
    assert d.verdict.status == "error" and "AWS credentials are missing" in d.verdict.reason


def test_client_engine_endpoint_missing_and_throttling_sentences(frames, fake_aws):
    """Error shapes moto cannot produce (ValidationError, ThrottlingException), via botocore's Stubber."""
    import boto3
    from botocore.stub import Stubber

    from engines.vad.sagemaker import SageMakerVadEngine

    rt = boto3.client("sagemaker-runtime", region_name="us-east-1")
    with Stubber(rt) as stub:
        stub.add_client_error("invoke_endpoint", "ValidationError", "Endpoint nope of account 1 not found.", 400)
        d = SageMakerVadEngine(endpoint="nope", region="us-east-1", client=rt).detect(frames)
    assert d.verdict.status == "error" and "does not exist" in d.verdict.reason
    with Stubber(rt) as stub:
        for _ in range(3):
            stub.add_client_error("invoke_endpoint", "ThrottlingException", "Rate exceeded", 400)
        d = SageMakerVadEngine(endpoint="ep", region="us-east-1", client=rt, max_retries=2, backoff_s=0.0).detect(frames)
    assert d.verdict.status == "error" and "throttling" in d.verdict.reason


# -- moto: the control plane -------------------------------------------------------------------------

def test_deploy_and_delete_against_moto_and_the_client_reads_a_canned_body(frames, fake_aws):
    import boto3
    import requests
    from moto import mock_aws

    from engines.errors import EngineError
    from engines.vad.sagemaker import SageMakerVadEngine
    from engines.vad.serve.deploy import delete, deploy

    with mock_aws():
        res = deploy("ghostprobe-vad", "123456789012.dkr.ecr.us-east-1.amazonaws.com/ghostprobe-vad:1",
                     "s3://bucket/ai-vad/model.tar.gz", "arn:aws:iam::123456789012:role/sm", region="us-east-1")
        assert res.status == "InService"
        sm = boto3.client("sagemaker", region_name="us-east-1")
        cfg = sm.describe_endpoint_config(EndpointConfigName=res.config)
        assert cfg["ProductionVariants"][0]["InstanceType"] == "ml.g4dn.xlarge"
        assert sm.describe_model(ModelName=res.model)["PrimaryContainer"]["ModelDataUrl"].endswith("model.tar.gz")
        with pytest.raises(EngineError, match="s3://"):
            deploy("x", "img", "/local/model.tar.gz", "arn:aws:iam::123456789012:role/sm", region="us-east-1")
        # the client against moto's runtime: one canned body in the container's format
        n = frames.num_frames - 1
        body = {"pred_boxes": [[[10, 20, 50, 170]]] + [[] for _ in range(n - 1)],
                "box_scores": [[2.5]] + [[] for _ in range(n - 1)], "pred_scores": [2.5] + [0.0] * (n - 1),
                "labels": [["person"]] + [[] for _ in range(n - 1)], "pairs": [[i, i + 1] for i in range(n)]}
        requests.post("http://motoapi.amazonaws.com/moto-api/static/sagemaker/endpoint-results",
                      json={"results": [{"Body": json.dumps(body), "ContentType": "application/json"}],
                            "region": "us-east-1"})
        d = SageMakerVadEngine(endpoint="ghostprobe-vad", region="us-east-1", threshold=1.0).detect(frames)
        assert d.verdict.status == "ok", d.verdict.reason
        assert len(d.artifacts.tracks["anomaly"]) == n and d.artifacts.boxes[0].label == "person"
        gone = delete("ghostprobe-vad", region="us-east-1")
        assert gone == ["endpoint ghostprobe-vad", "endpoint config ghostprobe-vad-config",
                        "model ghostprobe-vad-model"]
        with pytest.raises(EngineError, match="no SageMaker endpoint"):
            delete("ghostprobe-vad", region="us-east-1")


# -- asynchronous inference (long videos) ---------------------------------------------------------

IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/ghostprobe-vad:1"
ROLE = "arn:aws:iam::123456789012:role/sm"


def test_async_inference_against_moto_with_the_containers_real_body(container, frames, fake_aws):
    """moto 5.2.5 implements invoke_endpoint_async but never reaches a container: it puts a queued (or
    canned) body at a fresh OutputLocation in its own S3. The harness therefore asks the loopback
    container for the real response to the very body the client uploads, queues that through moto's
    async-endpoint-results API, and checks the uploaded request equals what the container scored."""
    import boto3
    import requests
    from moto import mock_aws

    from engines.errors import EngineError
    from engines.vad.sagemaker import SageMakerVadEngine
    from engines.vad.serve.deploy import ASYNC_ENV, deploy

    url, scorer, st = container
    scorer.gate.set()
    st.loaded.wait(30)
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="gp-async")
        res = deploy("gp-vad-async", IMAGE, "s3://gp-async/model.tar.gz", ROLE, region="us-east-1",
                     async_output="s3://gp-async/out", max_concurrent=2)
        sm = boto3.client("sagemaker", region_name="us-east-1")
        assert sm.describe_endpoint_config(EndpointConfigName=res.config)["AsyncInferenceConfig"] == {
            "OutputConfig": {"S3OutputPath": "s3://gp-async/out", "S3FailurePath": "s3://gp-async/out/failures"},
            "ClientConfig": {"MaxConcurrentInvocationsPerInstance": 2}}
        assert sm.describe_model(ModelName=res.model)["PrimaryContainer"]["Environment"] == ASYNC_ENV
        with pytest.raises(EngineError, match="need --async-output"):
            deploy("x", IMAGE, "s3://gp-async/model.tar.gz", ROLE, region="us-east-1", async_failure="s3://gp-async/f")
        with pytest.raises(EngineError, match="s3:// path"):
            deploy("x", IMAGE, "s3://gp-async/model.tar.gz", ROLE, region="us-east-1", async_output="/tmp/out")

        eng = SageMakerVadEngine(endpoint="gp-vad-async", region="us-east-1", async_input="s3://gp-async/requests",
                                 threshold=0.5, poll_s=0.01)
        body = eng.request_body(eng._refs(frames.frames, frames), 0, frames.num_frames)
        real = httpx.post(url + "/invocations", json=body, timeout=120)
        assert real.status_code == 200, real.text
        requests.post("http://motoapi.amazonaws.com/moto-api/static/sagemaker/async-endpoint-results",
                      json={"results": [{"data": real.text},
                                        {"is_failure": True, "data": json.dumps({"error": "Scoring failed: "
                                                                                          "RuntimeError."})}],
                            "region": "us-east-1"})
        d = eng.detect(frames)
        assert d.verdict.status == "ok", d.verdict.reason
        a = d.artifacts
        assert a.extra["mode"] == "async" and a.extra["requests"] == 1  # one request: under the 1 GB limit
        assert a.extra["input"].startswith("s3://gp-async/requests/") and a.extra["output"].startswith("s3://")
        bucket, _, key = a.extra["input"][5:].partition("/")
        assert json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read()) == body
        want = real.json()
        assert [s for _t, s in a.tracks["anomaly"]] == pytest.approx(want["pred_scores"])
        assert [t for t, _ in a.tracks["anomaly"]] == pytest.approx([round(t, 4) for t in frames.timestamps_s[1:]])
        assert len(a.boxes) == sum(len(b) for b in want["pred_boxes"]) and a.maps.shape[0] == len(want["maps"])
        # the second queued result is a failure file: one sentence with the container's reason
        d = eng.detect(frames)
        assert d.verdict.status == "error"
        assert d.verdict.reason == ("The asynchronous inference on endpoint gp-vad-async failed: Scoring failed: "
                                    "RuntimeError.")
        # a request bucket that does not exist
        d = SageMakerVadEngine(endpoint="gp-vad-async", region="us-east-1", async_input="s3://no-such-bucket/r",
                               poll_s=0.01).detect(frames)
        assert d.verdict.status == "error" and d.verdict.reason == ("The S3 bucket no-such-bucket for asynchronous "
                                                                    "requests does not exist.")


def test_async_inference_times_out_with_one_sentence(frames, fake_aws):
    """An OutputLocation that never fills (moto always fills its own, so the runtime answer is stubbed;
    S3 is moto's): polled with backoff until the timeout, then one sentence."""
    import time

    import boto3
    from botocore.stub import ANY, Stubber
    from moto import mock_aws

    from engines.vad.sagemaker import SageMakerVadEngine

    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="gp-async")
        rt = boto3.client("sagemaker-runtime", region_name="us-east-1")
        gets = []
        s3.meta.events.register("before-call.s3.GetObject", lambda **kw: gets.append(1))
        with Stubber(rt) as stub:
            stub.add_response("invoke_endpoint_async",
                              {"InferenceId": "i-1", "OutputLocation": "s3://gp-async/out/never.out",
                               "FailureLocation": "s3://gp-async/out/failures/never.out"},
                              {"EndpointName": "gp", "InputLocation": ANY, "ContentType": "application/json",
                               "Accept": "application/json"})
            eng = SageMakerVadEngine(endpoint="gp", region="us-east-1", client=rt, s3_client=s3,
                                     async_input="s3://gp-async/requests", async_timeout_s=1.0, poll_s=0.1,
                                     max_poll_s=0.3)
            t0 = time.perf_counter()
            d = eng.detect(frames)
            el = time.perf_counter() - t0
        assert d.verdict.status == "error"
        assert d.verdict.reason == ("The endpoint gp wrote no asynchronous result within 1 s (expected at "
                                    "s3://gp-async/out/never.out); it may still be running.")
        assert 1.0 <= el < 10
        # output and failure looked at on every poll; backoff 0.1, 0.15, 0.225, 0.3, ... s: 4 to 8 polls in 1 s
        assert 8 <= len(gets) <= 16 and len(gets) % 2 == 0
