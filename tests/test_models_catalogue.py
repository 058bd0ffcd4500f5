"""The model catalogue (webapp/models.py) and ``ghostprobe models list|pull`` against a loopback stand-in for the
hub (tests/fake_hub.py, ``HF_ENDPOINT=http://127.0.0.1:PORT``) — never the internet.

The CLI runs as a real process: huggingface_hub reads its offline switch at import, and the test suite
sets ``HF_HUB_OFFLINE=1`` for itself.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fake_hub import FakeHub, tiny_repo
from webapp import models as M

ROOT = Path(__file__).resolve().parents[1]
SMALLEST = "smolvlm2-256m"
REPO = "HuggingFaceTB/SmolVLM2-256M-Video-Instruct"


def _cli(args: list[str], data: Path, hub: FakeHub | None, offline: str = "0") -> subprocess.CompletedProcess:
    env = {**os.environ, "GHOSTPROBE_DATA_DIR": str(data), "HF_HOME": str(data / "hf-home"),
           "HF_HUB_OFFLINE": offline, "TRANSFORMERS_OFFLINE": offline, "PYTHONUNBUFFERED": "1"}
    env.pop("GHOSTPROBE_MODELS", None)
    env["HF_ENDPOINT"] = hub.url if hub else "http://127.0.0.1:9"  # nothing listens on the discard port
    return subprocess.run([sys.executable, "-m", "webapp.cli", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)


def test_catalogue_lists_small_video_llms_that_read_chinese():
    names = [m.name for m in M.CATALOGUE]
    assert len(set(names)) == len(names)
    good_zh = [m for m in M.CATALOGUE if m.chinese == "good"]
    assert {m.repo_id for m in good_zh} >= {"Qwen/Qwen2.5-VL-3B-Instruct", "Qwen/Qwen3-VL-2B-Instruct"}
    assert all(m.params_b <= 4 for m in M.CATALOGUE)  # CPU or a small GPU
    assert min(M.CATALOGUE, key=lambda m: m.params_b).repo_id == REPO
    assert all(m.repo_id.count("/") == 1 and m.note_zh and m.note_en for m in M.CATALOGUE)
    assert M.get("qwen/qwen3-vl-2b-instruct").name == "qwen3-vl-2b"  # the hub id works too
    with pytest.raises(M.ModelsError, match="known models"):
        M.get("gpt-9")


def test_list_works_offline_and_labels_estimates(tmp_path):
    r = _cli(["models", "list", "--json"], tmp_path, None, offline="1")
    assert r.returncode == 0, r.stderr
    rows = json.loads(r.stdout)
    assert [x["name"] for x in rows] == [m.name for m in M.CATALOGUE]
    assert all(not x["pulled"] and x["path"] is None and x["hub_bytes"] is None for x in rows)
    text = _cli(["models", "list"], tmp_path, None, offline="1").stdout
    assert "estimate: parameters × 2 bytes" in text and str(tmp_path / "models") in text
    assert not (tmp_path / "models").exists()  # listing writes nothing


def test_pull_shows_the_size_first_downloads_and_becomes_a_transformers_model(tmp_path):
    files = tiny_repo(weights_bytes=300_000)
    total = sum(len(b) for b in files.values())
    with FakeHub({REPO: files}) as hub:
        dry = _cli(["models", "pull", SMALLEST, "--dry-run"], tmp_path, hub)
        assert dry.returncode == 0, dry.stderr
        assert f"{len(files)} files" in dry.stdout and f"({total} bytes, from the hub's file listing" in dry.stdout
        assert not any("/resolve/" in p for _, p in hub.requests)  # a dry run downloads nothing
        assert not (tmp_path / "models" / SMALLEST).exists()

        r = _cli(["models", "pull", SMALLEST], tmp_path, hub)
        assert r.returncode == 0, r.stderr
        out = r.stdout
        assert out.index(f"({total} bytes") < out.index("pulled smolvlm2-256m into")  # size before the download
        assert "100%" in r.stderr and "pull smolvlm2-256m" in r.stderr  # the progress bar
        folder = tmp_path / "models" / SMALLEST
        for name, data in files.items():
            assert (folder / name).read_bytes() == data
        assert not (folder / ".cache").exists() and not list((tmp_path / "models").glob(".*.partial"))
        marker = json.loads((folder / M.MARKER).read_text())
        assert marker["repo_id"] == REPO and marker["bytes"] == total and marker["revision"] == hub.sha[REPO]

        downloads = sum("/resolve/" in p for _, p in hub.requests)
        again = _cli(["models", "pull", SMALLEST, "--json"], tmp_path, hub)
        assert again.returncode == 0 and json.loads(again.stdout)["new"] is False
        assert sum("/resolve/" in p for _, p in hub.requests) == downloads  # not downloaded twice

    rows = {x["name"]: x for x in json.loads(_cli(["models", "list", "--json"], tmp_path, None, "1").stdout)}
    assert rows[SMALLEST]["pulled"] and rows[SMALLEST]["path"] == str(folder) and rows[SMALLEST]["hub_bytes"] == total
    assert not rows["qwen3-vl-2b"]["pulled"]

    from engines.llm.transformers_engine import TransformersEngine

    ok, where = TransformersEngine(model=str(folder))._where()
    assert ok and str(folder) in where  # selectable as the transformers engine's model


def test_pull_errors_are_one_sentence_and_leave_nothing(tmp_path):
    off = _cli(["models", "pull", SMALLEST], tmp_path, None, offline="1")
    assert off.returncode == 2 and "HF_HUB_OFFLINE" in off.stderr and "Traceback" not in off.stderr
    with FakeHub({"someone/else": tiny_repo(1000)}) as hub:  # the hub does not have this repository
        missing = _cli(["models", "pull", SMALLEST], tmp_path, hub)
    assert missing.returncode == 2 and REPO in missing.stderr and "Traceback" not in missing.stderr
    assert len(missing.stderr.strip().splitlines()) == 1
    unreachable = _cli(["models", "pull", SMALLEST], tmp_path, None)
    assert unreachable.returncode == 2 and "Traceback" not in unreachable.stderr
    unknown = _cli(["models", "pull", "gpt-9"], tmp_path, None)
    assert unknown.returncode == 2 and "known models" in unknown.stderr
    assert not (tmp_path / "models" / SMALLEST).exists()


def test_rows_and_size_text_follow_the_pull_marker(tmp_path, monkeypatch):
    from webapp.config import load_config

    monkeypatch.setenv("GHOSTPROBE_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("GHOSTPROBE_MODELS", raising=False)
    cfg = load_config()
    m = M.get(SMALLEST)
    assert "估计" in M.size_text(cfg, m, "zh") and "estimate" in M.size_text(cfg, m, "en")
    folder = M.local_path(cfg, m)
    folder.mkdir(parents=True)
    (folder / "config.json").write_text("{}")
    assert M.pulled(cfg) == []  # a folder without the finished-pull marker is not offered
    (folder / M.MARKER).write_text(json.dumps({"bytes": 2}))
    assert M.pulled(cfg) == [(m, folder)]
