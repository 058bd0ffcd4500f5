"""The 任务 · Jobs tab in headless Chromium against the real app: seeded jobs with their states and history,
a refresh that reports the missing Azure ML workspace in one sentence, a SageMaker sync against a moto
server on loopback, cancel, and a completed job's ingested run opened in 报告 (Reports); its run-time text
in the browser's language (English only for an English browser, Chinese for a Chinese one)."""

from __future__ import annotations

import re
import time
from datetime import datetime, timedelta

import pytest

pytest.importorskip("moto")
boto3 = pytest.importorskip("boto3")

from tests.appserver import RunningApp, free_port  # noqa: E402

CJK = re.compile(r"[\u4e00-\u9fff]")
pytestmark = pytest.mark.browser
T0 = datetime(2026, 12, 2, 6, 0, 0)
AWS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_REGION": "us-east-1",
       "AWS_DEFAULT_REGION": "us-east-1"}


@pytest.fixture(scope="module")
def moto_url():
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


def _seed(db_path, tmp_path):
    from engines.base import CallRecord
    from engines.types import Verdict
    from reports import jobs as J
    from reports import run_folder as RF
    from reports.store import Store

    s = Store(db_path)
    try:
        J.add_job(s, job_id="azureml:gp-eval-done", backend="azureml", kind="job", name="gp-eval-done",
                  compute="gpu-v100x4", instance_type="Standard_NC24s_v3", instance_count=4,
                  location="azure:Standard_NC24s_v3", created_at=T0, url="https://ml.azure.com/runs/gp-eval-done")
        J.record_state(s, "azureml:gp-eval-done", "running", at=T0 + timedelta(minutes=4), provider_state="Running")
        J.record_state(s, "azureml:gp-eval-done", "completed", at=T0 + timedelta(minutes=34),
                       provider_state="Completed")
        folder = tmp_path / "done-folder"
        w = RF.RunFolderWriter(folder, {"run_id": "r20261202-060000-aaaa", "identity": {"engine": "videollama2",
                                        "kind": "chat", "model": "DAMO-NLP-SG/VideoLLaMA2-7B"},
                                        "selection": ["images_1_001.avi", "images_1_002.avi"],
                                        "location": "azure:Standard_NC24s_v3", "instances": 4})
        w.add(RF.make_record("images_1_001.avi", None, Verdict(True, 0.8, raw="是", status="ok"),
                             CallRecord("videollama2", latency_s=3.0)))
        w.add(RF.make_record("images_1_002.avi", None, Verdict(False, 0.7, raw="否", status="ok"),
                             CallRecord("videollama2", latency_s=2.5)))
        w.close("done")
        rid = RF.ingest(s, folder, job_id="azureml:gp-eval-done")
        J.add_job(s, job_id="azureml:gp-eval-running", backend="azureml", kind="job", name="gp-eval-running",
                  compute="gpu-v100x4", instance_type="Standard_NC24s_v3", instance_count=2,
                  location="azure:Standard_NC24s_v3", created_at=T0 + timedelta(hours=1))
        J.record_state(s, "azureml:gp-eval-running", "running", at=T0 + timedelta(hours=1, minutes=2))
        return rid
    finally:
        s.close()


@pytest.fixture(scope="module")
def app(tmp_path_factory, moto_url):
    work = tmp_path_factory.mktemp("jobs-app")
    rid = _seed(work / "data" / "ghostprobe.duckdb", work)
    env = {**AWS, "AWS_ENDPOINT_URL_SAGEMAKER": moto_url, "GHOSTPROBE_AZUREML_SUBSCRIPTION": "",
           "GHOSTPROBE_AZUREML_RESOURCE_GROUP": "", "GHOSTPROBE_AZUREML_WORKSPACE": "", "AZUREML_CONFIG": ""}
    with RunningApp(work, env=env) as running:
        running.run_id = rid
        yield running


def _open(page, app):
    page.goto(app.url + "/?__theme=light")
    page.get_by_role("tab", name="任务").click()
    page.wait_for_selector("#jobs-table")


def test_jobs_tab_shows_seeded_jobs_history_refresh_sync_and_run_in_reports(page, app, moto_url):
    _open(page, app)
    table = page.locator("#jobs-table")
    done = table.locator('tr[data-job="azureml:gp-eval-done"]')
    assert "已完成" in done.inner_text() and app.run_id in done.inner_text()
    assert done.locator(".gp-badge.gp-state-completed").inner_text() == "已完成"
    assert "gpu-v100x4 · Standard_NC24s_v3 × 4" in done.inner_text() and "0h30m00s" not in done.inner_text()
    assert "30m00s" in done.inner_text()
    # 0.5 h × 4 nodes × $12.24/h
    assert "$24.48" in done.inner_text()
    assert done.locator("a").get_attribute("href") == "https://ml.azure.com/runs/gp-eval-done"
    running = table.locator('tr[data-job="azureml:gp-eval-running"]')
    assert "运行中" in running.inner_text()
    # one sentence about the missing workspace, in the tab (in Chinese)
    cloud = page.locator("#jobs-cloud").inner_text()
    assert "Azure ML 尚未配置：请设置 GHOSTPROBE_AZUREML_SUBSCRIPTION" in cloud
    assert "SageMaker" in cloud and "已配置，尚未连接：区域 us-east-1" in cloud

    # the newest job is selected; pick the completed one and read its history with times
    page.locator("#jobs-pick input").click()
    page.get_by_role("option", name="azureml:gp-eval-done · completed").click()
    page.wait_for_function("() => document.querySelector('#jobs-detail').innerText.includes('gp-eval-done')")
    detail = page.locator("#jobs-detail").inner_text()
    for ts, st in (("2026-12-02 06:00:00", "排队中"), ("2026-12-02 06:04:00", "运行中"),
                   ("2026-12-02 06:34:00", "已完成")):
        assert ts in detail and st in detail
    assert app.run_id in detail

    # refresh: the running job cannot be asked without a workspace: one sentence, nothing lost
    page.locator("#jobs-refresh").click()
    page.wait_for_function("() => document.querySelector('#jobs-status').innerText.includes('Azure ML 尚未配置')")
    assert "运行中" in page.locator('#jobs-table tr[data-job="azureml:gp-eval-running"]').inner_text()

    # SageMaker: an endpoint created in the (moto) account shows up after a sync
    sm = boto3.client("sagemaker", region_name="us-east-1", endpoint_url=moto_url, aws_access_key_id="testing",
                      aws_secret_access_key="testing")
    from engines.cloud.sagemaker import deploy_endpoint

    deploy_endpoint(sm, name="gp-vlm", image_uri="123456789012.dkr.ecr.us-east-1.amazonaws.com/gp:latest",
                    role_arn="arn:aws:iam::123456789012:role/gp", instance_type="ml.g4dn.xlarge", instance_count=1)
    page.locator("#jobs-sync").click()
    page.wait_for_selector('#jobs-table tr[data-job="sagemaker-endpoint:gp-vlm"]')
    row = page.locator('#jobs-table tr[data-job="sagemaker-endpoint:gp-vlm"]').inner_text()
    assert "端点" in row and "ml.g4dn.xlarge × 1" in row and "未知" in row

    # cancel (delete) the endpoint from the tab
    page.locator("#jobs-pick input").click()
    page.get_by_role("option", name="sagemaker-endpoint:gp-vlm · running").click()
    page.locator("#jobs-cancel").click()
    page.wait_for_function("() => document.querySelector('#jobs-status').innerText.includes('deleted')")
    assert sm.list_endpoints()["Endpoints"] == []

    # the completed job's run, in Reports
    page.locator("#jobs-pick input").click()
    page.get_by_role("option", name="azureml:gp-eval-done · completed").click()
    page.locator("#jobs-show-run").click()
    page.wait_for_function(f"() => document.querySelector('#jobs-status').innerText.includes('{app.run_id}')")
    page.get_by_role("tab", name="报告").click()
    page.wait_for_function(f"() => document.querySelector('#rep-runs').innerText.includes('{app.run_id}')",
                           timeout=60_000)
    assert app.run_id in page.locator("#rep-run input").input_value()


def _open_en(page, app):
    page.goto(app.url + "/?__theme=light")
    page.get_by_role("tab", name="Jobs").click()
    page.wait_for_selector("#jobs-table")


def _wait_status(page, text: str) -> str:
    page.wait_for_function("t => document.querySelector('#jobs-status').innerText.includes(t)", arg=text)
    return page.locator("#jobs-status").inner_text()


def _pick(page, option: str) -> None:
    page.locator("#jobs-pick input").click()
    page.get_by_role("option", name=option).click()


def test_jobs_tab_speaks_english_to_an_english_browser_and_chinese_to_a_chinese_one(page_en, page, app):
    en = page_en
    _open_en(en, app)
    table = en.locator("#jobs-table")
    assert en.locator("#jobs-table th").all_inner_texts() == [
        "Job", "Kind", "State", "Compute × count", "Duration", "Cost so far", "Run", "Logs"]
    done = table.locator('tr[data-job="azureml:gp-eval-done"]')
    assert done.locator(".gp-badge.gp-state-completed").inner_text() == "completed"
    assert "open" in done.locator("a").inner_text()
    assert table.locator('tr[data-job="azureml:gp-eval-running"] .gp-badge').inner_text() == "running"
    assert not CJK.search(table.inner_text()), table.inner_text()
    cloud = en.locator("#jobs-cloud").inner_text()
    assert "Azure ML is not configured: set GHOSTPROBE_AZUREML_SUBSCRIPTION" in cloud
    assert "configured, not yet contacted: region us-east-1" in cloud and not CJK.search(cloud), cloud

    # the completed job's detail, with its history
    _pick(en, "azureml:gp-eval-done · completed")
    en.wait_for_function("() => document.querySelector('#jobs-detail').innerText.includes('gp-eval-done')")
    detail = en.locator("#jobs-detail").inner_text()
    assert "compute: gpu-v100x4, 4 × Standard_NC24s_v3" in detail and "cost so far: $24.48" in detail, detail
    assert f"ingested as run {app.run_id}" in detail and "time (UTC)" in detail and "completed" in detail
    assert not CJK.search(detail), detail

    # the running job has no run yet: Show the run in Reports says so, in English
    _pick(en, "azureml:gp-eval-running · running")
    en.wait_for_function("() => document.querySelector('#jobs-detail').innerText.includes('gp-eval-running')")
    assert not CJK.search(en.locator("#jobs-detail").inner_text())
    en.locator("#jobs-show-run").click()
    status = _wait_status(en, "This job has no ingested run yet.")
    assert not CJK.search(status), status

    # refresh: the missing workspace in one English sentence; the re-rendered table stays English
    en.locator("#jobs-refresh").click()
    status = _wait_status(en, "azureml:gp-eval-running: Azure ML is not configured")
    assert not CJK.search(status), status
    assert en.locator("#jobs-table th").first.inner_text() == "Job"
    assert not CJK.search(en.locator("#jobs-table").inner_text())
    assert not CJK.search(en.locator("#jobs-detail").inner_text())

    # the same app to a Chinese browser: Chinese
    _open(page, app)
    assert page.locator("#jobs-table th").all_inner_texts() == [
        "任务", "类型", "状态", "计算资源 × 数量", "时长", "成本（至今）", "运行", "日志"]
    zh_done = page.locator('#jobs-table tr[data-job="azureml:gp-eval-done"]')
    assert zh_done.locator(".gp-badge").inner_text() == "已完成" and zh_done.locator("a").inner_text() == "打开"
    _pick(page, "azureml:gp-eval-running · running")
    page.wait_for_function("() => document.querySelector('#jobs-detail').innerText.includes('gp-eval-running')")
    assert "计算资源：" in page.locator("#jobs-detail").inner_text()
    page.locator("#jobs-show-run").click()
    assert "这个任务还没有导入的运行。" in _wait_status(page, "这个任务还没有导入的运行")
    page.locator("#jobs-refresh").click()
    status = _wait_status(page, "azureml:gp-eval-running: Azure ML 尚未配置")
    assert "is not configured" not in status


# -- an evaluation submitted from the Prompt Lab -----------------------------------------------------
def _open_cloud_panel(page, app):
    page.goto(app.url + "/?__theme=light")
    page.get_by_role("tab", name="提示词实验室").click()
    page.wait_for_selector("#lab-matrix")
    page.wait_for_function("() => /新版本保存到|New versions are saved/.test("
                           "document.querySelector('#lab-save-where')?.innerText || '')", timeout=60_000)
    page.locator("#lab-cloud").get_by_text("云端评测（Azure ML）").click()
    page.wait_for_selector("#lab-cloud-preview", state="visible")


def _fill(page, elem_id: str, value: str) -> None:
    """Type ``value`` into the box and make sure it holds: a box inside a just-opened accordion can still
    receive its first value from the page after Playwright's fill (then it is filled again, as a person would)."""
    box = page.locator(f"#{elem_id}").locator("textarea, input").first
    for _ in range(5):
        box.fill(value)
        page.wait_for_timeout(150)
        if box.input_value() == value:
            return
    raise AssertionError(f"#{elem_id} does not keep {value!r}: it shows {box.input_value()!r}")


def _spec_text(page, needle: str, timeout: float = 60.0) -> str:
    """The previewed spec once it shows ``needle`` (the editor draws its lines after the value arrives);
    on a timeout, the whole text it showed, for the failure message."""
    deadline = time.monotonic() + timeout
    while True:
        text = page.locator("#lab-cloud-spec").inner_text()
        if needle in text:
            return text
        if time.monotonic() > deadline:
            raise AssertionError(f"the spec never showed {needle!r}; it showed:\n{text}")
        page.wait_for_timeout(250)


def _lab_md(page, elem_id: str) -> str:
    return page.locator(f"#{elem_id} [data-testid='markdown']").inner_text().strip()


def _wait_md(page, elem_id: str, pattern: str, timeout: int = 120_000) -> str:
    page.wait_for_function(
        f"() => /{pattern}/.test(document.querySelector(\"#{elem_id} [data-testid='markdown']\")?.innerText || '')",
        timeout=timeout)
    return _lab_md(page, elem_id)


def test_prompt_lab_cloud_submit_without_a_workspace_is_one_sentence_and_stores_nothing(page, app):
    _open_cloud_panel(page, app)
    assert page.locator("#lab-cloud-submit").is_disabled()  # nothing can be submitted before a preview
    _fill(page, "lab-cloud-compute", "gpu-v100x4")
    _fill(page, "lab-cloud-sku", "Standard_NC24s_v3")
    _fill(page, "lab-cloud-videos", "azureml://datastores/workspaceblobstore/paths/dada-dev/")
    page.locator("#lab-cloud-preview").click()
    status = _wait_md(page, "lab-cloud-status", "尚未配置")
    # the spec can be read (the same dry run as `jobs submit-eval --dry-run`) ...
    assert "gpu-v100x4 · Standard_NC24s_v3" in status, status  # the preview read the boxes as filled
    spec = _spec_text(page, "compute: gpu-v100x4 · Standard_NC24s_v3 × 1 node(s)")
    assert "command job: python -m engines.cloud.worker --plan job/plan.json" in spec
    assert "compute: gpu-v100x4 · Standard_NC24s_v3 × 1 node(s)" in spec and "openmpi4.1.0-cuda11.8" in spec
    # ... but not submitted: one sentence, in Chinese, no traceback, the button stays off
    assert "Azure ML 尚未配置：请设置 GHOSTPROBE_AZUREML_SUBSCRIPTION" in status and "DefaultAzureCredential" in status
    assert "Traceback" not in status and "尚未提交，也没有联系 Azure" in status
    assert page.locator("#lab-cloud-submit").is_disabled()
    page.get_by_role("tab", name="任务").click()
    page.wait_for_selector("#jobs-table")
    assert page.locator('#jobs-table tr[data-job^="azureml:"]').count() == 2  # only the two seeded Azure ML jobs


@pytest.fixture(scope="module")
def azure_app(tmp_path_factory):
    """The real app with a workspace configured: azure-ai-ml's real MLClient against the loopback workspace of
    tests/azureml_fake.py, signed by the real DefaultAzureCredential (its Azure CLI link, answered by the
    fake `az` first on PATH) — as after `az login`."""
    import os

    from tests.azureml_fake import FakeAzureML, fake_az_cli

    work = tmp_path_factory.mktemp("jobs-azure-app")
    (work / "fake").mkdir()
    with FakeAzureML(work / "fake") as fake:
        az = fake_az_cli(work / "az-bin")
        env = {"PATH": f"{az}{os.pathsep}{os.environ.get('PATH', '')}", "AZURE_TOKEN_CREDENTIALS": "AzureCliCredential",
               "AZUREML_DEV_URL_MFE": fake.url, "REQUESTS_CA_BUNDLE": str(fake.cert), "NO_PROXY": "127.0.0.1",
               "GHOSTPROBE_AZUREML_SUBSCRIPTION": "00000000-0000-0000-0000-000000000000",
               "GHOSTPROBE_AZUREML_RESOURCE_GROUP": "rg-ghost", "GHOSTPROBE_AZUREML_WORKSPACE": "ws-ghost",
               "GHOSTPROBE_AZUREML_COMPUTE": "gpu-v100x4", "GHOSTPROBE_AZUREML_SKU": "Standard_NC24s_v3",
               "GHOSTPROBE_AZUREML_VIDEOS": "azureml://datastores/workspaceblobstore/paths/dada-dev/",
               "AZUREML_CONFIG": "", "AZURE_CLIENT_ID": "", "AZURE_TENANT_ID": "", "AZURE_CLIENT_SECRET": "",
               "HTTPS_PROXY": "", "https_proxy": ""}
        with RunningApp(work, env=env) as running:
            running.fake = fake
            running.az_log = az / "az-calls.log"
            yield running


def test_prompt_lab_submits_to_azure_ml_and_the_job_shows_in_the_jobs_tab(page, azure_app):
    app, fake = azure_app, azure_app.fake
    _open_cloud_panel(page, app)
    # the workspace's compute, SKU and videos are the panel's first values
    assert page.locator("#lab-cloud-compute").locator("textarea, input").first.input_value() == "gpu-v100x4"
    assert page.locator("#lab-cloud-sku").locator("textarea, input").first.input_value() == "Standard_NC24s_v3"
    _fill(page, "lab-cloud-parallel", "2")
    n0 = len(fake.requests)
    page.locator("#lab-cloud-preview").click()
    status = _wait_md(page, "lab-cloud-status", "尚未提交")
    assert "并行任务" in status and "2 个节点" in status and "gpu-v100x4" in status, status
    n_videos = re.search(r"(\d+) 个视频", status).group(1)
    assert len(fake.requests) == n0  # the preview contacts nothing
    assert "azureml_parallel" in _spec_text(page, "compute: gpu-v100x4 · Standard_NC24s_v3 × 2 node(s)")
    page.wait_for_function("() => !document.querySelector('#lab-cloud-submit').disabled")

    page.locator("#lab-cloud-submit").click()
    status = _wait_md(page, "lab-cloud-status", "已提交|⚠️", timeout=240_000)
    assert status.startswith("✅") and "已提交" in status, status
    job_id = re.search(r"azureml:gp-eval-[\w-]+", status).group(0)
    name = job_id.split(":", 1)[1]
    assert name in fake.jobs and "get-access-token" in app.az_log.read_text()
    body = fake.jobs[name]["properties"]
    assert body["jobType"] == "Pipeline" and body["settings"]["default_compute"].endswith("/computes/gpu-v100x4")
    assert body["jobs"]["ghostprobe_eval_shard"]["resources"]["instance_count"] == 2
    assert body["tags"]["engine"] == "baseline" and body["tags"]["videos"] == n_videos
    assert page.locator("#lab-cloud-submit").is_disabled()  # one submit per preview

    # the Jobs tab lists it at once (queued, 2 nodes), with its link
    page.get_by_role("tab", name="任务").click()
    row = page.locator(f'#jobs-table tr[data-job="{job_id}"]')
    row.wait_for(timeout=60_000)
    text = row.inner_text()
    assert "排队中" in text and "gpu-v100x4 · Standard_NC24s_v3 × 2" in text, text
    assert row.locator("a").get_attribute("href").startswith(f"https://ml.azure.com/runs/{name}")
