"""The 任务 · Jobs tab in headless Chromium against the real app: seeded jobs with their states and history,
a refresh that reports the missing Azure ML workspace in one sentence, a SageMaker sync against a moto
server on loopback, cancel, and a completed job's ingested run opened in 报告 (Reports)."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

pytest.importorskip("moto")
boto3 = pytest.importorskip("boto3")

from tests.appserver import RunningApp, free_port  # noqa: E402

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
    assert "已完成 completed" in done.inner_text() and app.run_id in done.inner_text()
    assert "gpu-v100x4 · Standard_NC24s_v3 × 4" in done.inner_text() and "0h30m00s" not in done.inner_text()
    assert "30m00s" in done.inner_text()
    # 0.5 h × 4 nodes × $12.24/h
    assert "$24.48" in done.inner_text()
    assert done.locator("a").get_attribute("href") == "https://ml.azure.com/runs/gp-eval-done"
    running = table.locator('tr[data-job="azureml:gp-eval-running"]')
    assert "运行中 running" in running.inner_text()
    # one sentence about the missing workspace, in the tab
    cloud = page.locator("#jobs-cloud").inner_text()
    assert "Azure ML is not configured: set GHOSTPROBE_AZUREML_SUBSCRIPTION" in cloud
    assert "SageMaker" in cloud and "configured, not yet contacted: region us-east-1" in cloud

    # the newest job is selected; pick the completed one and read its history with times
    page.locator("#jobs-pick input").click()
    page.get_by_role("option", name="azureml:gp-eval-done · completed").click()
    page.wait_for_function("() => document.querySelector('#jobs-detail').innerText.includes('gp-eval-done')")
    detail = page.locator("#jobs-detail").inner_text()
    for ts, st in (("2026-12-02 06:00:00", "queued"), ("2026-12-02 06:04:00", "running"),
                   ("2026-12-02 06:34:00", "completed")):
        assert ts in detail and st in detail
    assert app.run_id in detail

    # refresh: the running job cannot be asked without a workspace: one sentence, nothing lost
    page.locator("#jobs-refresh").click()
    page.wait_for_function("() => document.querySelector('#jobs-status').innerText.includes('Azure ML is not configured')")
    assert "运行中 running" in page.locator('#jobs-table tr[data-job="azureml:gp-eval-running"]').inner_text()

    # SageMaker: an endpoint created in the (moto) account shows up after a sync
    sm = boto3.client("sagemaker", region_name="us-east-1", endpoint_url=moto_url, aws_access_key_id="testing",
                      aws_secret_access_key="testing")
    from engines.cloud.sagemaker import deploy_endpoint

    deploy_endpoint(sm, name="gp-vlm", image_uri="123456789012.dkr.ecr.us-east-1.amazonaws.com/gp:latest",
                    role_arn="arn:aws:iam::123456789012:role/gp", instance_type="ml.g4dn.xlarge", instance_count=1)
    page.locator("#jobs-sync").click()
    page.wait_for_selector('#jobs-table tr[data-job="sagemaker-endpoint:gp-vlm"]')
    row = page.locator('#jobs-table tr[data-job="sagemaker-endpoint:gp-vlm"]').inner_text()
    assert "端点 endpoint" in row and "ml.g4dn.xlarge × 1" in row and "未知 unknown" in row

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
