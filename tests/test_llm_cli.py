"""`ghostprobe engines list`, `detect` and `chat` through webapp.cli.main with a DuckDB in tmp_path."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"

import tiny_models  # noqa: E402
from reports.chats import history, turns  # noqa: E402
from reports.store import Store  # noqa: E402
from webapp.cli import main  # noqa: E402

DADA_CLIP = Path(__file__).resolve().parents[2] / "shared/data/dada-dev/images_5_046.avi"
SERVER = Path(__file__).resolve().parents[1] / "engines/llm/worker/server.py"
ENV_KEYS = ("GHOSTPROBE_HF_MODEL", "GHOSTPROBE_OPENAI_BASE_URL", "GHOSTPROBE_OPENAI_API_KEY", "OPENAI_API_KEY",
            "GHOSTPROBE_OPENAI_MODEL", "GHOSTPROBE_VIDEOLLAMA2_URL", "GHOSTPROBE_ALLOW_DOWNLOAD")


@pytest.fixture(autouse=True)
def _env(monkeypatch, tmp_path):
    for k in ENV_KEYS:
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("GHOSTPROBE_DATA_DIR", str(tmp_path / "data"))


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    if DADA_CLIP.exists():
        return DADA_CLIP
    from media import write_h264_mp4

    return write_h264_mp4(tmp_path_factory.mktemp("v") / "gen_clip.mp4", n_frames=40, fps=10.0)


@pytest.fixture(scope="module")
def qwen(tmp_path_factory):
    return tiny_models.build("qwen2_5_vl", tiny_models.session_root(tmp_path_factory))


@pytest.fixture(scope="module")
def worker():
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.Popen([sys.executable, "-S", "-u", str(SERVER), "--adapter", "echo", "--port", "0", "--quiet"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env, cwd="/")
    url = re.search(r"(http://[\d.]+:\d+)", proc.stdout.readline()).group(1)
    yield url
    proc.terminate()
    proc.wait(timeout=10)


def test_engines_list_json(capsys, tmp_path):
    assert main(["--db", str(tmp_path / "g.duckdb"), "engines", "list", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    for name in ("transformers", "openai", "videollama2"):
        assert set(rows[name]) >= {"name", "available", "reason"}
        assert rows[name]["available"] is False and rows[name]["reason"].endswith(".")
    assert "GHOSTPROBE_HF_MODEL" in rows["transformers"]["reason"]


def test_unavailable_engine_exits_2_with_its_reason(capsys, tmp_path, video):
    code = main(["--db", str(tmp_path / "g.duckdb"), "detect", str(video), "--engine", "transformers"])
    err = capsys.readouterr().err
    assert code == 2 and "No model configured: set GHOSTPROBE_HF_MODEL" in err and "Traceback" not in err
    code = main(["--db", str(tmp_path / "g.duckdb"), "detect", str(video), "--engine", "nope"])
    assert code == 2 and "Unknown engine 'nope'" in capsys.readouterr().err


def test_detect_with_tiny_model_json_and_log(capsys, tmp_path, video, qwen, monkeypatch):
    monkeypatch.setenv("GHOSTPROBE_HF_MODEL", str(qwen))
    db = tmp_path / "g.duckdb"
    code = main(["--db", str(db), "detect", str(video), "--engine", "transformers", "--frames", "4",
                 "--max-side", "112", "--max-new-tokens", "8", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0
    assert out["status"] == "unparsed" and out["ghost_probing"] is None and out["raw"].strip()
    assert set(out) >= {"ghost_probing", "confidence", "danger_level", "object_type", "onset_s", "reason", "raw", "call"}
    call = out["call"]
    assert call["completion_tokens"] == 8 and call["prompt_tokens"] > 8
    assert call["decode_s"] > 0 and call["generate_s"] > 0 and call["preprocess_s"] >= 0
    assert out["sampling"]["num_frames"] == 4 and out["sampling"]["max_side"] == 112
    store = Store(db)
    try:
        rows = turns(store, out["chat_id"])
        assert len(rows) == 1 and rows[0]["kind"] == "detect" and rows[0]["engine"] == "transformers"
        assert rows[0]["verdict"]["status"] == "unparsed" and rows[0]["answer"] == out["raw"]
        assert rows[0]["video_id"] == Path(video).name and rows[0]["prompt_hash"] == out["prompt_hash"]
        assert rows[0]["completion_tokens"] == 8 and rows[0]["revision"].startswith("local-")
        assert rows[0]["sampling"]["num_frames"] == 4 and rows[0]["options"]["max_new_tokens"] == 8
    finally:
        store.close()
    # the short Chinese summary says "unparsed", never "no"
    code = main(["--db", str(db), "detect", str(video), "--engine", "transformers", "--frames", "2",
                 "--max-side", "112", "--max-new-tokens", "4"])
    text = capsys.readouterr().out
    assert code == 0 and "无法解析" in text and "鬼探头：否" not in text and "用时" in text


def test_chat_streams_logs_and_continues(capsys, tmp_path, video, worker, monkeypatch):
    monkeypatch.setenv("GHOSTPROBE_VIDEOLLAMA2_URL", worker)
    db = tmp_path / "g.duckdb"
    code = main(["--db", str(db), "chat", str(video), "--engine", "videollama2", "--frames", "6", "--max-side", "160",
                 "前方有行人吗？"])
    cap = capsys.readouterr()
    assert code == 0 and "received 6 frames" in cap.out and cap.out.rstrip().endswith("前方有行人吗？")
    chat_id = re.search(r"--chat-id (\w+)", cap.err).group(1)
    code = main(["--db", str(db), "chat", str(video), "--engine", "videollama2", "--frames", "6",
                 "--chat-id", chat_id, "在第几秒？"])
    cap = capsys.readouterr()
    assert code == 0 and "4 messages" in cap.out  # system + earlier Q/A + new question
    store = Store(db)
    try:
        rows = turns(store, chat_id)
        assert [r["turn"] for r in rows] == [1, 2] and [r["question"] for r in rows] == ["前方有行人吗？", "在第几秒？"]
        assert all(r["kind"] == "chat" and r["error"] is None and r["decode_s"] > 0 for r in rows)
        h = history(store, video_id=Path(video).name)
        assert h[0]["chat_id"] == chat_id and h[0]["n_turns"] == 2
    finally:
        store.close()


def test_chat_failure_is_logged_and_exits_2(capsys, tmp_path, video, monkeypatch):
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    monkeypatch.setenv("GHOSTPROBE_VIDEOLLAMA2_URL", f"http://127.0.0.1:{port}")
    db = tmp_path / "g.duckdb"
    code = main(["--db", str(db), "chat", str(video), "--engine", "videollama2", "--frames", "2", "问题"])
    assert code == 2 and "Cannot connect to the VideoLLaMA2 worker" in capsys.readouterr().err
    store = Store(db)
    try:
        (chat,) = history(store)
        assert chat["turns"][0]["error"].startswith("Cannot connect") and chat["turns"][0]["answer"] is None
    finally:
        store.close()
