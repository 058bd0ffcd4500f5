"""Shared fixtures. Real parts only: DuckDB files in tmp dirs, generated media, the real DADA clips."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DADA_DIR = ROOT.parent / "shared" / "data" / "dada-dev"

# Never reach a model hub from tests.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")


@pytest.fixture
def dada_dir() -> Path:
    if not (DADA_DIR / "labels.csv").exists():
        pytest.skip("../shared/data/dada-dev is absent (real DADA clips are not part of the repository)")
    return DADA_DIR


@pytest.fixture
def store(tmp_path):
    from reports.store import Store

    s = Store(tmp_path / "test.duckdb")
    yield s
    s.close()


@pytest.fixture
def env_dirs(tmp_path, monkeypatch):
    """A private data dir, library root and uploads folder for config-driven code."""
    data = tmp_path / "data"
    lib = tmp_path / "library"
    lib.mkdir()
    monkeypatch.setenv("GHOSTPROBE_DATA_DIR", str(data))
    monkeypatch.setenv("GHOSTPROBE_LIBRARY", str(lib))
    monkeypatch.delenv("GHOSTPROBE_DB", raising=False)
    monkeypatch.delenv("GHOSTPROBE_UPLOADS", raising=False)
    monkeypatch.delenv("GHOSTPROBE_CACHE", raising=False)
    monkeypatch.delenv("GHOSTPROBE_AUTH", raising=False)
    return {"data": data, "library": lib, "db": data / "ghostprobe.duckdb"}


CHROMIUM = os.environ.get("GHOSTPROBE_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-dev-shm-usage", "--no-first-run", "--disable-sync", "--autoplay-policy=no-user-gesture-required"]


@pytest.fixture(scope="session")
def browser():
    """Debian's Chromium driven by Playwright (Playwright cannot download its own browser here)."""
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            pytest.fail(f"Chromium is missing at {CHROMIUM}; `make test` installs it with apt-get.")
        pytest.skip(f"Chromium not installed at {CHROMIUM} (make test installs it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser):
    ctx = browser.new_context(locale="zh-CN", viewport={"width": 1400, "height": 1000})
    pg = ctx.new_page()
    pg.set_default_timeout(60_000)
    yield pg
    ctx.close()


@pytest.fixture
def page_en(browser):
    """The same page for an English browser (Accept-Language en-US)."""
    ctx = browser.new_context(locale="en-US", viewport={"width": 1400, "height": 1000})
    pg = ctx.new_page()
    pg.set_default_timeout(60_000)
    yield pg
    ctx.close()
