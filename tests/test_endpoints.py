"""Endpoint engines over real HTTP on loopback with a tiny random video LLM (tests/tiny_models.py):

- the scoring script (engines/cloud/azureml_score.py) served by Microsoft's real azureml-inference-server-http
  (azmlinfsrv, its own virtual environment: its OpenTelemetry pins clash with azure-ai-ml's), called by the
  ``azureml`` chat engine with a key;
- the SageMaker bring-your-own-container server (engines/cloud/byoc_server.py), called by the
  ``sagemaker-vlm`` chat engine through boto3's real sagemaker-runtime client pointed at loopback.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import tiny_models  # noqa: E402
from appserver import free_port  # noqa: E402

from engines.base import GenerationOptions  # noqa: E402
from engines.cloud import contract as CT  # noqa: E402
from engines.cloud.endpoint_engine import AzureMLEndpointEngine, SageMakerEndpointEngine  # noqa: E402
from engines.errors import EngineError  # noqa: E402
from engines.types import Clip, VideoMeta  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
VENV = Path(os.environ.get("GHOSTPROBE_AZMLINFSRV_VENV") or Path(tempfile.gettempdir()) / "ghostprobe-azmlinfsrv-venv")
KEY = "test-endpoint-key-7f3a9c"
OPTS = GenerationOptions(max_new_tokens=6, temperature=0.0, timeout_s=120)
LAUNCH = ("import sys, azureml_inference_server_http.amlserver as a; a.DEFAULT_HOST = '127.0.0.1'; "
          "sys.argv = ['azmlinfsrv'] + sys.argv[1:]; a.run()")  # the real azmlinfsrv, bound to loopback only


@pytest.fixture(scope="module")
def qwen(tmp_path_factory):
    return tiny_models.build("qwen2_5_vl", tiny_models.session_root(tmp_path_factory))


def _clip(n=4, h=64, w=96) -> Clip:
    yy, xx = np.mgrid[0:h, 0:w]
    frames = np.stack([np.stack([(xx * 2 + 20 * i) % 256, (yy * 3) % 256, np.full_like(xx, 40 * i % 256)], -1)
                       for i in range(n)]).astype(np.uint8)  # smooth gradients moving frame to frame
    ts = [i * 0.5 for i in range(n)]
    meta = VideoMeta(path="gen", frames=n, fps=2.0, duration_s=2.0, width=w, height=h, codec="raw", sha256="",
                     size_bytes=0)
    return Clip(frames=frames, timestamps_s=ts, indices=list(range(n)), fps=2.0, duration_s=2.0, source="gen",
                sha256="", meta=meta, sampling={"num_frames": n})


def _server_env(qwen) -> dict[str, str]:
    return {**os.environ, "GHOSTPROBE_SCORE_ENGINE": "transformers", "GHOSTPROBE_HF_MODEL": str(qwen),
            "GHOSTPROBE_HF_DEVICE": "cpu", "GHOSTPROBE_HF_DTYPE": "float32", "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}


def _wait(url: str, proc: subprocess.Popen, log: Path, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited {proc.returncode}:\n{log.read_text(errors='replace')[-3000:]}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"server did not answer in {timeout:.0f} s:\n{log.read_text(errors='replace')[-3000:]}")


@pytest.fixture(scope="module")
def azmlinfsrv_python():
    """azureml-inference-server-http in its own venv (created once, reused); the project's heavy packages
    (torch, transformers, numpy …) come from this venv through a .pth placed *after* its own site-packages."""
    py = VENV / "bin" / "python"
    site = VENV / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"
    if not (site / "azureml_inference_server_http").exists():
        try:
            if not py.exists():
                subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True, timeout=300, capture_output=True)
            subprocess.run([str(py), "-m", "pip", "install", "-q", "azureml-inference-server-http>=1.4"],
                           check=True, timeout=600, capture_output=True)
        except (subprocess.SubprocessError, OSError) as e:
            pytest.skip(f"azureml-inference-server-http could not be installed in its own venv here ({e})")
    # Only what the venv lacks, and nothing of the azure / opentelemetry namespaces (their versions are
    # exactly what clashes): a folder of links to this venv's other packages, placed after its own.
    links = VENV / "ghostprobe-main-packages"
    links.mkdir(exist_ok=True)
    own = {p.name.lower() for p in site.iterdir()}
    for entry in Path(sysconfig.get_paths()["purelib"]).iterdir():
        name = entry.name.lower()
        if name in own or name.startswith(("azure", "opentelemetry", "_distutils_hack", "distutils-precedence")) \
                or name.endswith(".pth") or (links / entry.name).exists():
            continue
        (links / entry.name).symlink_to(entry)
    (site / "zz_ghostprobe_main_venv.pth").write_text(str(links) + "\n")
    return py


@pytest.fixture(scope="module")
def scoring_server(azmlinfsrv_python, qwen, tmp_path_factory):
    port = free_port()
    log = tmp_path_factory.mktemp("azmlinfsrv") / "server.log"
    with open(log, "w") as out:
        proc = subprocess.Popen([str(azmlinfsrv_python), "-c", LAUNCH, "--entry_script",
                                 str(ROOT / "engines" / "cloud" / "azureml_score.py"), "--port", str(port)],
                                cwd=ROOT, env=_server_env(qwen), stdout=out, stderr=subprocess.STDOUT)
    try:
        _wait(f"http://127.0.0.1:{port}/", proc, log)
        yield f"http://127.0.0.1:{port}", log
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_scoring_script_under_azmlinfsrv_and_the_azureml_engine(scoring_server, qwen):
    url, log = scoring_server
    # the real server's own routes: liveness and swagger, then our scoring
    assert "Healthy" in httpx.get(url + "/", timeout=10).text
    eng = AzureMLEndpointEngine(url=url + "/score", key=KEY, deployment="blue", instance_type="Standard_NC6s_v3")
    assert eng.availability() == (True, f"configured, not yet contacted: {url}, deployment blue.")
    det = eng.ask(_clip(), [{"role": "user", "content": "这段视频中有鬼探头吗？"}], OPTS)
    # the tiny model says noise: an unparsed answer, never a "no"
    assert det.verdict.status == "unparsed" and det.verdict.ghost_probing is None
    assert det.verdict.raw and len(det.verdict.raw.split()) >= 3
    call = det.call
    assert call.model == str(qwen) and call.device == f"remote {url}"
    assert call.completion_tokens == 6 and call.prompt_tokens > 0
    assert call.generate_s > 0 and call.latency_s >= call.generate_s
    assert call.extra["server_verdict"]["status"] == "unparsed" and "cpu" in call.extra["server_device"]
    assert eng.cost_location().location == "azure:Standard_NC6s_v3"
    assert eng.identity(OPTS).endpoint == url + "/score"

    # the same request twice gives the same text (greedy decoding on the server)
    again = eng.ask(_clip(), [{"role": "user", "content": "这段视频中有鬼探头吗？"}], OPTS)
    assert again.verdict.raw == det.verdict.raw

    # a bad request is the server's one sentence, as HTTP 400, through the engine too
    r = httpx.post(url + "/score", content=json.dumps({"messages": []}), headers={"Content-Type": "application/json"},
                   timeout=30)
    assert r.status_code == 400 and r.json() == {
        "error": "messages must be a non-empty list of {role: system|user|assistant, content: text}."}
    bad = CT.encode_request(_clip(), [{"role": "user", "content": "q"}], OPTS)
    bad["video"]["frames"][1] = "not-base64!"
    r = httpx.post(url + "/score", json=bad, timeout=30)
    assert r.status_code == 400 and r.json()["error"] == "video.frames[1] is not a base64 JPEG or PNG image."
    assert KEY not in log.read_text(errors="replace")


def test_azureml_engine_errors_are_one_sentence_without_the_key():
    port = free_port()
    eng = AzureMLEndpointEngine(url=f"http://127.0.0.1:{port}/score", key=KEY)
    with pytest.raises(EngineError) as e:
        eng.ask(_clip(), [{"role": "user", "content": "q"}], OPTS)
    assert str(e.value) == (f"Cannot connect to the Azure ML endpoint at http://127.0.0.1:{port}: is it deployed and "
                            "is GHOSTPROBE_AZUREML_ENDPOINT_URL right?")
    ok, why = AzureMLEndpointEngine(url=None, key=None).availability()
    assert not ok and why.startswith("Not configured: set GHOSTPROBE_AZUREML_ENDPOINT_URL")


@pytest.fixture(scope="module")
def byoc_server(qwen, tmp_path_factory):
    port = free_port()
    log = tmp_path_factory.mktemp("byoc") / "server.log"
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "engines.cloud.byoc_server", "--host", "127.0.0.1",
                                 "--port", str(port), "--engine", "transformers", "--model", str(qwen)],
                                cwd=ROOT, env=_server_env(qwen), stdout=out, stderr=subprocess.STDOUT)
    try:
        _wait(f"http://127.0.0.1:{port}/ping", proc, log)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_sagemaker_container_contract_through_boto3_runtime(byoc_server, qwen, monkeypatch):
    assert httpx.get(byoc_server + "/ping", timeout=10).json()["status"] == "ok"
    # boto3's own chain and its service endpoint setting: the runtime client goes to the container on loopback
    for k, v in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_REGION": "us-east-1",
                 "AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME": byoc_server}.items():
        monkeypatch.setenv(k, v)
    eng = SageMakerEndpointEngine(endpoint="gp-vlm", instance_type="ml.g4dn.xlarge")
    det = eng.ask(_clip(), [{"role": "user", "content": "有鬼探头吗？"}], OPTS)
    assert det.verdict.status == "unparsed" and det.verdict.ghost_probing is None
    assert det.call.model == str(qwen) and det.call.completion_tokens == 6
    assert det.call.device == "remote sagemaker:gp-vlm" and eng.cost_location().location == "aws:ml.g4dn.xlarge"
    # the container's 400 sentence comes back through the runtime API as one sentence
    with pytest.raises(EngineError, match=r"^SageMaker endpoint gp-vlm failed: .*messages must be a non-empty list"):
        eng.ask(_clip(), [], OPTS)
    r = httpx.post(byoc_server + "/invocations", content=b"{nope", timeout=30)
    assert r.status_code == 400 and r.json()["error"].startswith("The request is not JSON")
    assert httpx.get(byoc_server + "/nope", timeout=10).status_code == 404


def test_contract_round_trip_of_frames_and_uri(tmp_path):
    from media import write_h264_mp4

    clip = _clip()
    req = CT.encode_request(clip, [{"role": "user", "content": "q"}], OPTS)
    assert "timeout_s" not in req["options"] and req["contract"] == CT.CONTRACT
    back, msgs, opts, detect = CT.parse_request(json.dumps(req))
    assert back.frames.shape == clip.frames.shape and back.timestamps_s == clip.timestamps_s
    assert np.abs(back.frames.astype(int) - clip.frames.astype(int)).mean() < 6  # JPEG, not bit-exact
    assert msgs == [{"role": "user", "content": "q"}] and opts.max_new_tokens == 6 and detect is True
    video = write_h264_mp4(tmp_path / "v.mp4", n_frames=30)
    c2, _, _, _ = CT.parse_request({"video": {"uri": str(video), "sampling": {"num_frames": 5}},
                                    "messages": [{"role": "user", "content": "q"}]})
    assert c2.num_frames == 5
    with pytest.raises(CT.ContractError, match="options takes only"):
        CT.parse_request({"messages": [{"role": "user", "content": "q"}], "options": {"beams": 4}})


def test_contract_errors_are_user_errors_with_chinese_sentences(tmp_path):
    """Every ContractError is one of the user errors (GhostProbeError): one sentence, exit 2 in the CLI, and a
    Chinese pattern in webapp.messages — alone and as the endpoint engines quote it."""
    import base64
    import re

    from engines.errors import GhostProbeError, format_error, is_user_error
    from webapp import messages as MSG

    (tmp_path / "bad.mp4").write_bytes(b"not a video")
    msgs = [{"role": "user", "content": "q"}]
    from PIL import Image

    def _img(w):
        b = __import__("io").BytesIO()
        Image.new("RGB", (w, 8)).save(b, format="PNG")
        return base64.b64encode(b.getvalue()).decode()

    bad = [b"{nope", "[1]", {"contract": "other/9", "messages": msgs}, {"messages": []},
           {"messages": msgs, "options": {"beams": 4}}, {"messages": msgs, "options": {"temperature": None, "x": 1}},
           {"messages": msgs, "video": 3}, {"messages": msgs, "video": {"frames": []}},
           {"messages": msgs, "video": {"frames": ["x" * 5] * (CT.MAX_FRAMES + 1)}},
           {"messages": msgs, "video": {"frames": ["!!"]}},
           {"messages": msgs, "video": {"frames": [_img(8), _img(16)]}},
           {"messages": msgs, "video": {"frames": [_img(8)], "timestamps_s": [0.0, 1.0]}},
           {"messages": msgs, "video": {"uri": str(tmp_path / "bad.mp4")}}]
    seen = set()
    for payload in bad:
        with pytest.raises(CT.ContractError) as ei:
            CT.parse_request(payload)
        e = ei.value
        assert isinstance(e, GhostProbeError) and is_user_error(e)
        text = format_error(e)
        assert "\n" not in text and text.endswith(".") and "Traceback" not in text
        zh = MSG.translate(text, "zh")
        assert zh != text and re.search(r"[\u4e00-\u9fff]", zh), text
        seen.add(text.split(" ")[0])
        # as the Azure ML engine and the SageMaker engine quote the server's 400 sentence
        for quoted in (f"The Azure ML endpoint at ep.westeurope.inference.ml.azure.com answered HTTP 400: "
                       f"{text.rstrip('.')}.", f"SageMaker endpoint gp-vlm failed: {text.rstrip('.')}."):
            zq = MSG.translate(quoted, "zh")
            assert re.search(r"[\u4e00-\u9fff]", zq) and "answered" not in zq and "failed" not in zq, zq
            assert MSG.translate(text, "zh").rstrip("。") in zq
    assert len(bad) >= 13 and len(seen) >= 6


def test_endpoint_deployed_over_http_is_the_azureml_chat_engine(scoring_server, qwen, store, tmp_path_factory,
                                                                monkeypatch):
    """`deploy_online` through azure-ai-ml's real MLClient against the loopback workspace
    (tests/azureml_fake.py), whose endpoint reports the azmlinfsrv server above as its scoring URI:
    `online_engine` reads that URI, the traffic's deployment and the key from Azure ML, and the `azureml`
    chat engine answers through the deployed scoring script."""
    pytest.importorskip("azure.ai.ml")
    from azure.ai.ml import MLClient
    from azure.ai.ml.entities import ManagedOnlineEndpoint
    from azureml_fake import FakeAzureML, FakeCredential

    from engines.cloud import azureml as A
    from reports import jobs as J

    url, log = scoring_server
    sub = "00000000-0000-0000-0000-000000000000"
    with FakeAzureML(tmp_path_factory.mktemp("azureml-online")) as fake:
        fake.scoring_uri = url + "/score"
        for k, v in {"AZUREML_DEV_URL_MFE": fake.url, "REQUESTS_CA_BUNDLE": str(fake.cert),
                     "HTTPS_PROXY": fake.proxy.url, "NO_PROXY": "127.0.0.1"}.items():
            monkeypatch.setenv(k, v)
        client = MLClient(FakeCredential(), sub, "rg-ghost", "ws-ghost", show_progress=False)
        backend = A.AzureMLBackend(A.AzureMLSettings(subscription_id=sub, resource_group="rg-ghost",
                                                     workspace="ws-ghost"), ml_client=client)
        out = A.deploy_online(backend, A.OnlineSettings(endpoint="gp-chat", instance_type="Standard_NC6s_v3",
                                                        engine="transformers"), store=store)
        assert out["scoring_uri"] == url + "/score" and out["state"] == "running" and out["traffic"] == {"blue": 100}
        assert J.get_job(store, "azureml-endpoint:gp-chat")["state"] == "running"

        eng = A.online_engine(backend, "gp-chat")
        assert any(r["method"] == "POST" and r["path"].endswith("/onlineEndpoints/gp-chat/listKeys")
                   for r in fake.requests)
        assert eng.availability() == (True, f"configured, not yet contacted: {url}, deployment blue.")
        assert eng.cost_location().location == "azure:Standard_NC6s_v3"
        det = eng.ask(_clip(), [{"role": "user", "content": "这段视频中有鬼探头吗？"}], OPTS)
        assert det.verdict.status == "unparsed" and det.verdict.ghost_probing is None and det.verdict.raw
        assert det.call.model == str(qwen) and det.call.completion_tokens == 6 and det.call.device == f"remote {url}"
        key = fake.endpoint_keys["primaryKey"]
        assert key not in json.dumps(eng.describe()) and key not in log.read_text(errors="replace")

        # an endpoint that routes no traffic yet is one sentence, not a call to nowhere
        client.online_endpoints.begin_create_or_update(ManagedOnlineEndpoint(name="gp-empty", auth_mode="key")).result()
        with pytest.raises(EngineError, match="^Online endpoint gp-empty routes no traffic to a deployment yet; "):
            A.online_engine(backend, "gp-empty")
