"""Start-up behaviour: bind address, login, configuration errors."""

from __future__ import annotations

import httpx
import pytest

from tests.appserver import RunningApp
from webapp.config import ConfigError, load_config
from webapp.server import bind_address


def test_binds_loopback_by_default_and_all_interfaces_on_spaces(env_dirs, monkeypatch):
    monkeypatch.delenv("SPACE_ID", raising=False)
    monkeypatch.delenv("GHOSTPROBE_HOST", raising=False)
    monkeypatch.delenv("GHOSTPROBE_PORT", raising=False)
    assert bind_address(load_config()) == ("127.0.0.1", 7860)
    monkeypatch.setenv("SPACE_ID", "someone/ghostprobe")
    assert bind_address(load_config()) == ("0.0.0.0", 7860)
    assert bind_address(load_config(), "127.0.0.2", 9000) == ("127.0.0.2", 9000)


@pytest.mark.parametrize("value", ["nopassword", ":pw", "user:"])
def test_bad_auth_setting_is_one_sentence(env_dirs, monkeypatch, value):
    monkeypatch.setenv("GHOSTPROBE_AUTH", value)
    with pytest.raises(ConfigError, match="user:password"):
        load_config()


@pytest.mark.slow
def test_auth_turns_on_login(tmp_path):
    with RunningApp(tmp_path, env={"GHOSTPROBE_AUTH": "alice:s3cret-pass"}) as app:
        anon = httpx.get(app.url + "/config", timeout=30)
        assert anon.status_code == 401
        with httpx.Client(base_url=app.url, timeout=30) as c:
            bad = c.post("/login", data={"username": "alice", "password": "wrong"})
            assert bad.status_code == 400
            ok = c.post("/login", data={"username": "alice", "password": "s3cret-pass"})
            assert ok.status_code == 200
            assert c.get("/config").status_code == 200
    assert "s3cret-pass" not in app.log_path.read_text()  # the password never reaches the log
