"""The 异常热力图 (Heatmap) tab in headless Chromium against the real app on a fresh database.

The weights-free motion-map engine runs for real on a generated clip; the heatmap video must play in
the browser (readyState >= 2), the timeline must render and clicking it must seek the player; the
second run reuses the stored result; the store holds the per-frame and per-box rows afterwards."""

from __future__ import annotations

import pytest

from tests.appserver import RunningApp

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CLIP = "synth_emerge_pedestrian_s0.mp4"


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    from engines.synth import render_clip

    work = tmp_path_factory.mktemp("heatmapapp")
    render_clip(work / "library" / "demo" / CLIP, "emerge_pedestrian", seed=0, duration_s=4.0, onset_s=2.0)
    env = {"GHOSTPROBE_ENGINE": "", "GHOSTPROBE_OPENAI_BASE_URL": "", "OPENAI_API_KEY": ""}
    with RunningApp(work, env=env) as running:
        yield running


def _pick(page, elem: str, option: str) -> None:
    page.locator(f"#{elem} input").click()
    page.get_by_role("option", name=option, exact=True).click()


def _open(page, app) -> None:
    page.goto(app.url + "/?__theme=light")
    page.get_by_role("tab", name="异常热力图").click()
    page.wait_for_function("() => { const e = document.querySelector('#vad-engine-info');"
                           " return !!e && (e.innerText.includes('motion') || e.innerText.includes('运动异常图')); }",
                           timeout=120_000)


def test_motion_heatmap_plays_timeline_seeks_and_is_reused(page, app):
    _open(page, app)
    # no video yet: Run is off and one sentence says why
    assert page.locator("#vad-run").is_disabled()
    assert "先在上方选择一个视频" in page.locator("#vad-need-video").inner_text()
    _pick(page, "vad-video", CLIP)
    page.wait_for_function("() => !document.querySelector('#vad-run').disabled")
    page.wait_for_function("() => { const e = document.querySelector('#vad-need-video');"
                           " return !e || e.offsetParent === null; }")
    page.wait_for_function("() => document.querySelector('#vad-estimate').innerText.includes('预计耗时')",
                           timeout=60_000)
    page.locator("#vad-run").click()
    page.wait_for_function("() => { const v = document.querySelector('#vad-player video');"
                           " return v && v.src && v.readyState >= 2; }", timeout=180_000)
    status = page.locator("#vad-status").inner_text()
    assert "完成" in status and "⚠️" not in status, status
    verdict = page.locator("#vad-verdict").inner_text()
    assert "置信度" in verdict and "vad-peak-in-ego-path-v1" in verdict
    # the timeline: a Plotly graph with the score trace
    page.wait_for_function("() => document.querySelectorAll('#vad-timeline .js-plotly-plot .scatterlayer .trace')"
                           ".length >= 1", timeout=60_000)
    n_points = page.evaluate("() => document.querySelector('#vad-timeline .js-plotly-plot').data[0].x.length")
    assert n_points >= 20  # 4 s at 10 fps
    # the gallery of the most anomalous frames
    assert page.locator("#vad-gallery img").count() >= 1
    # clicking the timeline seeks the player to the clicked time
    page.wait_for_function("() => document.querySelector('#vad-timeline .js-plotly-plot').__vadSeek === true",
                           timeout=30_000)
    drag = page.locator("#vad-timeline .nsewdrag").first
    box = drag.bounding_box()
    page.mouse.move(box["x"] + box["width"] * 0.7, box["y"] + box["height"] * 0.5)
    page.mouse.click(box["x"] + box["width"] * 0.7, box["y"] + box["height"] * 0.5)
    page.wait_for_function("() => window.__vadSeek !== undefined", timeout=10_000)
    seek = page.evaluate("window.__vadSeek")
    assert 1.5 < seek < 4.0
    page.wait_for_function("(t) => Math.abs(document.querySelector('#vad-player video').currentTime - t) < 0.2",
                           arg=seek, timeout=10_000)
    # the same video, engine and settings again: reused, not recomputed
    page.locator("#vad-run").click()
    page.wait_for_function("() => document.querySelector('#vad-status').innerText.includes('复用')", timeout=60_000)


def test_store_holds_frames_and_boxes_after_the_app_stops(app):
    # runs after the browser test in this module: stop the app (DuckDB allows one process), then read
    from reports.store import Store

    app.__exit__()
    s = Store(app.data / "ghostprobe.duckdb")
    try:
        runs = s.query("SELECT response_id, engine, video_id FROM vad_runs")
        assert len(runs) == 1 and runs[0]["engine"] == "motion" and runs[0]["video_id"] == CLIP
        rid = runs[0]["response_id"]
        assert s.scalar("SELECT count(*) FROM vad_frames WHERE response_id = ?", [rid]) >= 20
        assert s.scalar("SELECT count(*) FROM vad_boxes WHERE response_id = ?", [rid]) >= 1
        assert s.scalar("SELECT count(*) FROM responses WHERE id = ? AND engine = 'motion'", [rid]) == 1
    finally:
        s.close()
