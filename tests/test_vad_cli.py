"""``ghostprobe vad …`` through the real CLI (parser, handlers, a DuckDB file; moto's server on loopback
for deploy/delete). Bad input: exit 2 and one sentence, never a traceback."""

from __future__ import annotations

import json
import re

import pytest

from webapp.cli import main


@pytest.fixture(scope="module")
def clip_path(tmp_path_factory):
    from engines.synth import render_clip

    d = tmp_path_factory.mktemp("vadcli")
    return render_clip(d / "emerge.mp4", "emerge_pedestrian", seed=1, duration_s=3.0, onset_s=1.2)["path"]


def _run(capsys, *argv):
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_vad_run_motion_stores_renders_and_reuses(tmp_path, capsys, env_dirs, clip_path):
    db = str(tmp_path / "g.duckdb")
    code, out, err = _run(capsys, "--db", db, "vad", "run", clip_path, "--engine", "motion", "--out",
                          str(tmp_path / "out"), "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["cached"] is False and doc["frames"] >= 20 and doc["verdict"]["status"] == "ok"
    assert "estimate: ~" in err and "from the time per frame measured on this machine" in err
    assert not re.search(r"[\u4e00-\u9fff]", err.split("estimate:")[1].splitlines()[0])  # the CLI speaks English
    from engines.video import probe

    assert probe(doc["heatmap"]).codec == "h264"
    assert doc["gallery"] and all(p.endswith(".jpg") for p in doc["gallery"])
    code, out, _ = _run(capsys, "--db", db, "vad", "run", clip_path, "--engine", "motion", "--out",
                        str(tmp_path / "out"), "--json")
    again = json.loads(out)
    assert code == 0 and again["cached"] is True and again["response_id"] == doc["response_id"]
    from reports.store import Store

    s = Store(db)
    try:
        assert s.scalar("SELECT count(*) FROM vad_frames WHERE response_id = ?", [doc["response_id"]]) == doc["frames"]
        assert s.scalar("SELECT count(*) FROM responses WHERE engine = 'motion'") == 1
    finally:
        s.close()


@pytest.mark.parametrize("argv,words", [
    (["vad", "run", "/nonexistent/clip.mp4"], "does not exist"),
    (["vad", "run", "{clip}", "--engine", "aivad"], "fitted artifacts"),
    (["vad", "run", "{clip}", "--engine", "aivad", "--artifacts", "/nonexistent"], "missing"),
    (["vad", "run", "{clip}", "--engine", "sagemaker"], "No SageMaker endpoint"),
    (["vad", "run", "{clip}", "--engine", "motion", "--endpoint", "x"], "are for --engine sagemaker"),
    (["vad", "run", "{clip}", "--engine", "motion", "--artifacts", "/nonexistent"], "no motion-map calibration"),
    (["vad", "fit", "--normal", "{one}", "--out", "{tmp}/a"], "at least 2 normal videos"),
    (["vad", "fit", "--normal", "/nonexistent", "--out", "{tmp}/a"], "is not a folder"),
])
def test_vad_bad_input_exits_2_with_one_sentence(tmp_path, capsys, env_dirs, clip_path, argv, words):
    import shutil

    one = tmp_path / "one"
    one.mkdir()
    shutil.copy(clip_path, one / "a.mp4")
    argv = [a.format(clip=clip_path, one=one, tmp=tmp_path) for a in argv]
    code, _out, err = _run(capsys, "--db", str(tmp_path / "g.duckdb"), *argv)
    assert code == 2 and words in err and "Traceback" not in err and len(err.strip().splitlines()) == 1, err


def test_vad_weights_pull_list_downloads_nothing(tmp_path, capsys, monkeypatch, env_dirs):
    pytest.importorskip("anomalib")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("HOME", str(tmp_path))
    code, out, _ = _run(capsys, "vad", "weights", "pull", "--list")
    assert code == 0
    for name in ("raft_large", "maskrcnn_resnet50_fpn_v2", "keypointrcnn_resnet50_fpn", "clip_vit_b16"):
        assert name in out
    assert "4 file(s) to download" in out
    assert not (tmp_path / "torch").exists()


def test_vad_deploy_and_delete_against_moto_server(tmp_path, capsys, monkeypatch, env_dirs):
    from moto.server import ThreadedMotoServer

    from tests.appserver import free_port

    port = free_port()
    srv = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    srv.start()
    try:
        monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{port}")
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
        code, out, err = _run(capsys, "vad", "deploy", "gp-vad", "--image", "1.dkr.ecr.us-east-1.amazonaws.com/v:1",
                              "--model-data", "s3://b/model.tar.gz", "--role", "arn:aws:iam::123456789012:role/sm")
        assert code == 0 and "InService" in out, err
        code, out, err = _run(capsys, "vad", "delete", "gp-vad")
        assert code == 0 and "deleted endpoint gp-vad" in out
        code, out, err = _run(capsys, "vad", "delete", "gp-vad")
        assert code == 2 and "no SageMaker endpoint" in err
        code, out, err = _run(capsys, "vad", "deploy", "x", "--image", "i", "--model-data", "/local.tar.gz",
                              "--role", "arn:aws:iam::123456789012:role/sm")
        assert code == 2 and "s3://" in err
    finally:
        srv.stop()
