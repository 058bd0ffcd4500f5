"""No credential reaches any sink (issue 9 item 12).

Three secrets are planted in the configuration of the ``openai`` engine: a password in the base URL's
user-info (``http://user:PASSWORD@host/v1``), a query token in that URL (``?token=TOKEN``) and the API
key (``GHOSTPROBE_OPENAI_API_KEY``). A loopback chat-completions server answers, then fails with the
secrets in its error text, and a second base URL points at a closed port. Then every sink is read
back and searched for the three values:

- the CLI's stdout and stderr (``engines list`` [``--json``], ``detect``, ``chat``, ``eval``, failing
  calls, ``report``, ``export`` csv and parquet), in-process and as a real subprocess;
- every table and view of the DuckDB file, dumped as text;
- the HTML report and Markdown summary, the CSV files and the Parquet files (read back with DuckDB);
- the running app: ``GET /``, ``/config``, ``/gradio_api/info``, ``gradio_client`` calls
  (``/detect_video``, ``/chat_history``, ``/report_json``, ``/library_videos``) and the server log.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import duckdb
import httpx
import pytest

from tests.appserver import ROOT, RunningApp
from tests.media import write_h264_mp4
from tests.test_llm_openai import FakeServer

PASSWORD = "pw-PLANTED-9876"
TOKEN = "TOKEN-PLANTED-5555"
KEY = "sk-PLANTED-KEY-424242"
PLANTED = (PASSWORD, TOKEN, KEY)


def _with_secrets(url: str) -> str:
    return url.replace("http://", f"http://alice:{PASSWORD}@") + f"?token={TOKEN}"


def _closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


def _leaks(text: str) -> list[str]:
    return [p for p in PLANTED if p in text]


def dump_database(path: Path) -> dict[str, str]:
    """Every table and view of the DuckDB file as text (one entry per relation)."""
    con = duckdb.connect(str(path), read_only=True)
    try:
        names = [r[0] for r in con.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main'").fetchall()]
        out = {}
        for name in names:
            rows = con.execute(f'SELECT * FROM "{name}"').fetchall()
            out[name] = "\n".join(repr(r) for r in rows)
        return out
    finally:
        con.close()


@pytest.fixture
def setup(tmp_path, monkeypatch):
    server = FakeServer()
    lib = tmp_path / "library"
    lib.mkdir()
    clip = write_h264_mp4(lib / "secret_probe_clip.mp4")
    labels = tmp_path / "labels.csv"
    labels.write_text("video_id,ground_truth_label\nsecret_probe_clip.mp4,1s: ghost probing\n")
    env = {"GHOSTPROBE_DATA_DIR": str(tmp_path / "data"), "GHOSTPROBE_LIBRARY": str(lib),
           "GHOSTPROBE_OPENAI_BASE_URL": _with_secrets(server.url), "GHOSTPROBE_OPENAI_API_KEY": KEY,
           "GHOSTPROBE_OPENAI_MAX_RETRIES": "0"}
    for k in ("GHOSTPROBE_DB", "GHOSTPROBE_UPLOADS", "GHOSTPROBE_CACHE", "GHOSTPROBE_AUTH", "OPENAI_API_KEY",
              "GHOSTPROBE_OPENAI_MODEL", "GHOSTPROBE_OPENAI_VIDEO_MODE"):
        monkeypatch.delenv(k, raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    yield {"server": server, "clip": clip, "labels": labels, "env": env, "db": tmp_path / "data" / "ghostprobe.duckdb",
           "tmp": tmp_path}
    server.close()


def _cli(capsys, *argv) -> tuple[int, str, str]:
    from webapp.cli import main

    rc = main(list(argv))
    out = capsys.readouterr()
    return rc, out.out, out.err


@pytest.mark.slow
def test_planted_secrets_reach_no_sink(setup, capsys, monkeypatch):
    s = setup
    server, clip, tmp = s["server"], s["clip"], s["tmp"]
    said: dict[str, str] = {}

    def record(name, rc_out_err):
        rc, out, err = rc_out_err
        said[name] = f"rc={rc}\n{out}\n{err}"
        return rc, out, err

    rc, out, _ = record("engines list", _cli(capsys, "engines", "list"))
    assert rc == 0 and "openai" in out
    rc, out, _ = record("engines list --json", _cli(capsys, "engines", "list", "--json"))
    assert rc == 0 and any(r["name"] == "openai" for r in json.loads(out))
    rc, _, _ = record("labels import", _cli(capsys, "labels", "import", str(s["labels"]), "--set", "planted"))
    assert rc == 0
    rc, out, err = record("detect ok", _cli(capsys, "detect", str(clip), "--engine", "openai", "--json"))
    assert rc == 0, err
    rc, out, err = record("chat ok", _cli(capsys, "chat", str(clip), "--engine", "openai", "有鬼探头吗？"))
    assert rc == 0, err
    # the server fails with the secrets in its answer: the error text is stored and printed
    detail = {"error": {"message": f"denied for {KEY} at {_with_secrets(server.url)} token {TOKEN} pw {PASSWORD}"}}
    server.script = [("status", 400, detail)] * 4
    rc, _, err = record("detect 400", _cli(capsys, "detect", str(clip), "--engine", "openai", "--temperature", "0.7"))
    assert rc == 2 and "400" in err
    server.script = [("status", 401, detail)] * 4
    rc, _, err = record("chat 401", _cli(capsys, "chat", str(clip), "--engine", "openai", "再看看？"))
    assert rc == 2
    rc, _, err = record("eval", _cli(capsys, "eval", "--engine", "openai", "--labels", "planted", "--name", "planted-run"))
    said["eval"] += "\n"
    # an endpoint that is down: the connection error names the URL
    monkeypatch.setenv("GHOSTPROBE_OPENAI_BASE_URL", _with_secrets(_closed_port_url()))
    rc, _, err = record("detect down", _cli(capsys, "detect", str(clip), "--engine", "openai"))
    assert rc == 2
    rc, _, err = record("eval down", _cli(capsys, "eval", "--engine", "openai", "--labels", "planted",
                                          "--name", "down-run", "--no-cache"))
    monkeypatch.setenv("GHOSTPROBE_OPENAI_BASE_URL", _with_secrets(server.url))

    report = tmp / "out" / "report.html"
    rc, _, err = record("report", _cli(capsys, "report", "--out", str(report)))
    assert rc == 0, err
    rc, _, err = record("export csv", _cli(capsys, "export", "--format", "csv", "--out", str(tmp / "csv")))
    assert rc == 0, err
    rc, _, err = record("export parquet", _cli(capsys, "export", "--format", "parquet", "--out", str(tmp / "pq")))
    assert rc == 0, err

    # the real CLI as a subprocess: what a terminal shows (warnings from libraries included)
    env = {**os.environ, **s["env"], "GHOSTPROBE_OPENAI_BASE_URL": _with_secrets(_closed_port_url())}
    for argv in (("engines", "list", "--json"), ("detect", str(clip), "--engine", "openai")):
        r = subprocess.run([sys.executable, "-m", "webapp.cli", *argv], cwd=ROOT, env=env, capture_output=True,
                           text=True, timeout=300)
        said["subprocess " + " ".join(argv[:2])] = r.stdout + r.stderr
        assert "Traceback" not in r.stderr

    assert any(f"token={TOKEN}" in p for p in server.paths)  # the planted URL really was used
    assert "denied for" in said["detect 400"]  # the server's error text is shown (scrubbed), not dropped
    for name, text in said.items():
        assert not _leaks(text), f"{name} shows {_leaks(text)}: {text[:600]}"

    # the database: every table and view as text
    tables = dump_database(s["db"])
    assert tables, "no tables dumped"
    assert any("openai" in t for t in tables.values())  # the calls really were stored
    assert any("denied for" in t for t in tables.values())  # so were the failures, with the server's text
    assert any("127.0.0.1" in t for t in tables.values())  # and the endpoint (its host, no credentials)
    for name, text in tables.items():
        assert not _leaks(text), f"table {name} holds {_leaks(text)}"

    # the exports
    files = [report, report.with_suffix(".md"), *sorted((tmp / "csv").iterdir())]
    assert any(p.suffix == ".csv" for p in files)
    for p in files:
        text = p.read_text(errors="replace")
        assert not _leaks(text), f"{p.name} holds {_leaks(text)}"
    con = duckdb.connect()
    for p in sorted((tmp / "pq").iterdir()):
        assert not _leaks(p.read_bytes().decode("latin-1")), p.name
        rows = con.execute(f"SELECT * FROM read_parquet('{p.as_posix()}')").fetchall()
        assert not _leaks(repr(rows)), f"{p.name} holds {_leaks(repr(rows))}"
    con.close()


@pytest.mark.slow
def test_planted_secrets_reach_no_page_api_answer_or_server_log(tmp_path):
    server = FakeServer()
    try:
        app = RunningApp(tmp_path, env={"GHOSTPROBE_OPENAI_BASE_URL": _with_secrets(server.url),
                                        "GHOSTPROBE_OPENAI_API_KEY": KEY, "GHOSTPROBE_OPENAI_MAX_RETRIES": "0",
                                        "GHOSTPROBE_ENGINE": "openai"})
        write_h264_mp4(app.library / "secret_probe_clip.mp4")
        said: dict[str, str] = {}
        with app:
            with httpx.Client(base_url=app.url, timeout=60) as c:
                for route in ("/", "/config", "/gradio_api/info", "/gradio_api/info?all_endpoints=true"):
                    r = c.get(route)
                    assert r.status_code == 200, route
                    said[route] = r.text
            from gradio_client import Client

            client = Client(app.url, verbose=False)
            said["library_videos"] = json.dumps(client.predict(label_set="", label_filter="all",
                                                               api_name="/library_videos"))
            ok = client.predict(video_id="secret_probe_clip.mp4", engine="openai", prompt="", model="",
                                api_name="/detect_video")
            said["detect ok"] = json.dumps(ok, ensure_ascii=False)
            assert ok.get("status") == "ok", ok
            server.script = [("status", 400, {"error": {"message": f"denied {KEY} {TOKEN} {PASSWORD}"}})] * 4
            bad = client.predict(video_id="secret_probe_clip.mp4", engine="openai", prompt="", model="other-model",
                                 api_name="/detect_video")  # another model: not answered from the cache
            said["detect 400"] = json.dumps(bad, ensure_ascii=False)
            assert bad.get("status") == "error", bad
            said["chat_history"] = json.dumps(client.predict(video_id="", limit=20, api_name="/chat_history"),
                                              ensure_ascii=False, default=str)
            assert "openai" in said["chat_history"]
            said["report_json"] = json.dumps(client.predict(run_ids=[], api_name="/report_json"), default=str)
        said["server log"] = app.log_path.read_text(errors="replace")
        for name, text in said.items():
            assert not _leaks(text), f"{name} shows {_leaks(text)}"
        assert "Traceback" not in said["server log"], app.log_tail()
    finally:
        server.close()
