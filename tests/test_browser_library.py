"""The Library tab in headless Chromium against the real app, plus one gradio_client call."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import pytest

from tests.appserver import RunningApp
from tests.conftest import DADA_DIR

pytestmark = [pytest.mark.browser, pytest.mark.slow]

HAS_DADA = (DADA_DIR / "labels.csv").exists()


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    work = tmp_path_factory.mktemp("app")
    roots = [DADA_DIR] if HAS_DADA else []
    with RunningApp(work, library_roots=roots) as running:
        yield running


def _open(page, app):
    page.goto(app.url + "/?__theme=light")
    page.wait_for_selector("#lib-gallery")
    page.wait_for_function("() => document.querySelector('#lib-gallery') && "
                           "document.querySelector('#lib-gallery').innerText.includes('synth_')", timeout=120_000)


def _captions(page) -> list[str]:
    return page.locator("#lib-gallery").inner_text().split("\n")


def _click_caption(page, text: str) -> None:
    page.locator("#lib-gallery button, #lib-gallery .thumbnail-item").filter(has_text=text).first.click()


def _assert_plays(page) -> None:
    page.wait_for_function("() => { const v = document.querySelector('#lib-player video'); return v && v.src; }",
                           timeout=120_000)
    page.evaluate("() => { const v = document.querySelector('#lib-player video'); v.muted = true; v.play(); }")
    page.wait_for_function("() => { const v = document.querySelector('#lib-player video');"
                           " return v.readyState >= 2 && v.currentTime > 0.2 && !v.error; }", timeout=60_000)


def test_library_lists_demo_clips(page, app):
    _open(page, app)
    demo_names = [r["video_id"] for r in csv.DictReader(open(app.library / "demo" / "labels.csv"))]
    text = page.locator("#lib-gallery").inner_text()
    for name in demo_names:
        assert name in text
    # The demo label set is selected, so badges are shown.
    assert "鬼探头" in text


def test_demo_clip_plays(page, app):
    _open(page, app)
    demo_name = next(r["video_id"] for r in csv.DictReader(open(app.library / "demo" / "labels.csv")))
    _click_caption(page, demo_name)
    _assert_plays(page)
    assert demo_name in page.locator("#lib-meta").inner_text()


@pytest.mark.skipif(not HAS_DADA, reason="../shared/data/dada-dev is absent")
def test_dada_avi_plays_after_transcode(page, app):
    _open(page, app)
    page.locator("#lib-search input, #lib-search textarea").first.fill("images_5_046")
    page.locator("#lib-search input, #lib-search textarea").first.press("Enter")
    page.wait_for_function("() => !document.querySelector('#lib-gallery').innerText.includes('synth_')")
    _click_caption(page, "images_5_046")
    _assert_plays(page)
    meta = page.locator("#lib-meta").inner_text()
    assert "1584×660" in meta and "mpeg4" in meta.lower()


def test_upload_appears_and_bad_upload_is_one_sentence(page, app, tmp_path):
    from tests.media import write_mp4v

    clip = write_mp4v(tmp_path / "my_upload_clip.mp4")
    _open(page, app)
    page.locator("#lib-upload input[type=file]").set_input_files(str(clip))
    page.wait_for_function("() => document.querySelector('#lib-status').innerText.includes('my_upload_clip.mp4')",
                           timeout=120_000)
    page.wait_for_function("() => document.querySelector('#lib-gallery').innerText.includes('my_upload_clip.mp4')")
    _assert_plays(page)  # the uploaded OpenCV mp4v clip is transcoded and plays
    stored = list((app.data / "uploads").iterdir())
    assert len([p for p in stored if p.suffix == ".mp4"]) == 1

    bad = tmp_path / "notes.mp4"
    bad.write_text("this is a text file, not a video\n" * 50)
    page.locator("#lib-upload input[type=file]").set_input_files(str(bad))
    page.wait_for_function("() => document.querySelector('#lib-status').innerText.includes('notes.mp4')")
    status = page.locator("#lib-status").inner_text().strip()
    assert "⚠️" in status and len(status.splitlines()) == 1 and "Traceback" not in status
    assert len([p for p in (app.data / "uploads").iterdir() if p.suffix == ".mp4"]) == 1  # nothing stored


def test_gradio_client_lists_library(app):
    from gradio_client import Client

    client = Client(app.url, verbose=False)
    rows = client.predict(label_set="demo", label_filter="ghost_probing", api_name="/library_videos")
    labels = list(csv.DictReader(open(app.library / "demo" / "labels.csv")))
    positives = {r["video_id"] for r in labels if r["ghost_probing"] == "1"}
    assert {r["video_id"] for r in rows} == positives
    assert all(r["label"]["ghost_probing"] is True for r in rows)
    everything = client.predict(label_set="", label_filter="all", api_name="/library_videos")
    assert len(everything) >= len(labels) + (12 if HAS_DADA else 0)
