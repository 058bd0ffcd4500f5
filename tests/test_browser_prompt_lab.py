"""The 提示词实验室 (Prompt Lab) tab in headless Chromium against the real app and the real baseline engine.

One app per module (the demo clips are rendered into its library with label set "demo"); the tests
run in order and build on each other: save a new prompt version, run it, read the matrix, drill down.
"""

from __future__ import annotations

import csv
import re

import pytest

from tests.appserver import RunningApp

pytestmark = [pytest.mark.browser, pytest.mark.slow]

MARKER = "浏览器测试：特别注意从停靠车辆之间走出的儿童。"
RUN_ID = re.compile(r"r\d{8}-\d{6}-[0-9a-f]{4}")


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    work = tmp_path_factory.mktemp("lab")
    with RunningApp(work) as running:
        yield running


@pytest.fixture(scope="module")
def demo_labels(app) -> list[dict[str, str]]:
    return list(csv.DictReader(open(app.library / "demo" / "labels.csv", encoding="utf-8")))


def _open_lab(page, app):
    page.goto(app.url + "/?__theme=light")
    page.get_by_role("tab", name="提示词实验室").click()
    page.wait_for_selector("#lab-matrix")
    page.wait_for_function("() => document.querySelector('#lab-system textarea')?.value.length > 20")


def _md(page, elem_id: str) -> str:
    """The rendered text of a Markdown component (without the loading overlay)."""
    return page.locator(f"#{elem_id} [data-testid='markdown']").inner_text().strip()


def _wait_status(page, elem_id: str, timeout: int = 60_000, sign: str = "✅|⚠️") -> str:
    page.wait_for_function(
        f"() => /{sign}/.test(document.querySelector(\"#{elem_id} [data-testid='markdown']\")?.innerText || '')",
        timeout=timeout)
    return _md(page, elem_id)


def _prompt_ref(page) -> str:
    return page.locator("#lab-prompt input").input_value().split(" · ")[0].strip()


def test_edit_and_save_new_version(page, app):
    _open_lab(page, app)
    base = _prompt_ref(page)
    pid, ver = base.split("@")
    system = page.locator("#lab-system textarea")
    system.fill(system.input_value() + "\n" + MARKER)
    page.locator("#lab-notes textarea").fill("浏览器测试保存的版本")
    page.click("#lab-save")
    status = _wait_status(page, "lab-save-status")
    new_ref = f"{pid}@{int(ver) + 1}"
    assert status.startswith("✅") and new_ref in status, status
    page.wait_for_function(f"() => document.querySelector('#lab-prompt input').value.startsWith('{new_ref}')")
    # the diff against the parent shows the added line
    page.wait_for_function("() => document.querySelector('#lab-diff').innerText.includes('特别注意从停靠车辆')")
    page.wait_for_function(f"() => document.querySelector('#lab-diff').innerText.includes('parent: {base}')")
    added = [ln for ln in page.locator("#lab-diff-body").inner_text().splitlines() if MARKER in ln]
    assert added and all(ln.lstrip().startswith("+") for ln in added), added
    assert f"parent: {base}" in page.locator("#lab-diff-body").inner_text()
    saved = app.data / "prompts" / f"{pid}.v{int(ver) + 1}.yaml"
    assert saved.exists() and MARKER in saved.read_text(encoding="utf-8")

    # saving the same content again is refused in one sentence, nothing written
    page.click("#lab-save")
    status = _wait_status(page, "lab-save-status", sign="⚠️")
    assert status.startswith("⚠️") and "asks the same" in status and len(status.splitlines()) == 1, status
    assert not (app.data / "prompts" / f"{pid}.v{int(ver) + 2}.yaml").exists()


def test_run_baseline_on_demo_fills_matrix(page, app, demo_labels):
    _open_lab(page, app)
    assert re.search(r"@\d+", _prompt_ref(page))
    assert page.locator("#lab-engine input").input_value().startswith("baseline")
    assert page.locator("#lab-label-set input").input_value().startswith("demo")
    page.click("#lab-run")
    status = _wait_status(page, "lab-run-status", timeout=240_000)
    assert status.startswith("✅"), status
    run_id = RUN_ID.search(status).group(0)
    assert f"{len(demo_labels)} 个视频" in status

    page.wait_for_function(f"() => document.querySelector('#lab-matrix').innerText.includes('{run_id}')")
    rows = page.locator("#lab-matrix table.lab-matrix tbody tr")
    assert rows.count() == len(demo_labels)
    shown = {rows.nth(i).get_attribute("data-video") for i in range(rows.count())}
    assert shown == {r["video_id"] for r in demo_labels}
    cells = page.locator(f"#lab-matrix td[data-run='{run_id}']")
    assert cells.count() == len(demo_labels)
    for i in range(cells.count()):
        cls = cells.nth(i).get_attribute("data-status")
        assert cls in ("right", "wrong", "unparsed", "error"), cls
        bg = cells.nth(i).evaluate("el => getComputedStyle(el).backgroundColor")
        assert bg not in ("rgba(0, 0, 0, 0)", "rgb(255, 255, 255)"), bg
    # the label column and the run's accuracy with its interval and n
    labels = page.locator("#lab-matrix td.lbl").all_inner_texts()
    assert len(labels) == len(demo_labels) and any(s.startswith("鬼探头") for s in labels)
    foot = page.locator("#lab-matrix tfoot").inner_text()
    assert f"n={len(demo_labels)}" in foot and "%" in foot


def test_drill_down_review_and_label_correction(page, app, demo_labels):
    _open_lab(page, app)
    page.wait_for_selector("#lab-matrix td[data-run]")
    cell = page.locator("#lab-matrix td[data-run]").first
    video, run_id = cell.get_attribute("data-video"), cell.get_attribute("data-run")
    cell.click()
    page.wait_for_function(f"() => document.querySelector('#lab-drill-verdict').innerText.includes('{run_id}')")
    verdict = _md(page, "lab-drill-verdict")
    assert "status" in verdict and "ghost_probing" in verdict
    assert "标签" in _md(page, "lab-drill-label") and "demo" in _md(page, "lab-drill-label")
    assert page.locator("#lab-drill-raw textarea").input_value() != ""
    page.wait_for_function("() => { const v = document.querySelector('#lab-drill-player video'); return v && v.src; }",
                           timeout=120_000)
    assert page.locator("#lab-drill-video-id input").input_value() == video

    page.locator("#lab-review-mark input[value=unsure]").check()
    page.locator("#lab-review-comment textarea").fill("浏览器测试的评审")
    page.click("#lab-review-save")
    status = _wait_status(page, "lab-review-status")
    assert status.startswith("✅") and "unsure" in status
    page.wait_for_function("() => document.querySelector('#lab-reviews').innerText.includes('浏览器测试的评审')")

    page.locator("#lab-fix-kind input[value=none]").check()
    page.locator("#lab-fix-note textarea").fill("浏览器测试的修正")
    page.click("#lab-fix-save")
    status = _wait_status(page, "lab-fix-status")
    assert status.startswith("✅") and "demo+fix" in status and "保持不变" in status, status

    from gradio_client import Client

    client = Client(app.url, verbose=False)
    rows = client.predict(label_set="demo", label_filter="all", api_name="/library_videos")
    original = next(r for r in rows if r["video_id"] == video)["label"]
    assert original["ghost_probing"] == (next(r for r in demo_labels if r["video_id"] == video)["ghost_probing"] == "1")
    fixed = next(r for r in client.predict(label_set="demo+fix", label_filter="all", api_name="/library_videos")
                 if r["video_id"] == video)["label"]
    assert fixed["ghost_probing"] is False and fixed["source"] == "correction"


def test_cancel_without_a_run_is_one_sentence(page, app):
    _open_lab(page, app)
    page.click("#lab-cancel")
    status = _wait_status(page, "lab-run-status")
    assert status.startswith("⚠️") and len(status.splitlines()) == 1
