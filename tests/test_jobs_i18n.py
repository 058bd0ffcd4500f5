"""The 任务 · Jobs tab's run-time text in both languages: the table, badges, the selected job's detail and the
clouds' lines read in English for an English browser (no Chinese at all) and in Chinese for a Chinese one."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

import pytest

from reports import jobs as J
from webapp import messages as MSG
from webapp.tabs import jobs as JT

CJK = re.compile(r"[\u4e00-\u9fff]")
T0 = datetime(2026, 12, 2, 6, 0, 0)


@pytest.fixture
def jobs_store(store):
    J.add_job(store, job_id="azureml:gp-eval-done", backend="azureml", kind="job", name="gp-eval-done",
              compute="gpu-v100x4", instance_type="Standard_NC24s_v3", instance_count=4,
              location="azure:Standard_NC24s_v3", created_at=T0, url="https://ml.azure.com/runs/gp-eval-done")
    J.record_state(store, "azureml:gp-eval-done", "running", at=T0 + timedelta(minutes=4), provider_state="Running")
    J.record_state(store, "azureml:gp-eval-done", "completed", at=T0 + timedelta(minutes=34),
                   provider_state="Completed")
    J.set_job_run(store, "azureml:gp-eval-done", "r20261202-060000-aaaa")
    # an endpoint without a price: its cost is unknown, and the note says why in the reader's language
    J.add_job(store, job_id="sagemaker-endpoint:gp-vlm", backend="sagemaker", kind="endpoint", name="gp-vlm",
              instance_type="ml.g4dn.xlarge", instance_count=1, location="sagemaker:ml.nothing-priced",
              created_at=T0 + timedelta(hours=1), message="Creating the endpoint.")
    return store


def test_table_in_english_has_no_chinese_and_in_chinese_reads_chinese(jobs_store):
    en = JT.jobs_table_html(jobs_store, "en")
    assert not CJK.search(en), CJK.findall(en)
    for head in ("Job", "Kind", "State", "Compute × count", "Duration", "Cost so far", "Run", "Logs"):
        assert f"<th>{head}</th>" in en
    done = en.split('data-job="azureml:gp-eval-done"', 1)[1].split("</tr>", 1)[0]
    assert 'class="gp-badge gp-state-completed"' in done and ">completed</span>" in done
    assert "<td>job</td>" in done and "$24.48" in done and "30m00s" in done and ">open</a>" in done
    assert 'class="gp-job-run">r20261202-060000-aaaa' in done
    endpoint = en.split('data-job="sagemaker-endpoint:gp-vlm"', 1)[1].split("</tr>", 1)[0]
    assert "<td>endpoint</td>" in endpoint and "<td>unknown</td>" in endpoint and ">queued</span>" in endpoint

    zh = JT.jobs_table_html(jobs_store, "zh")
    assert JT.jobs_table_html(jobs_store) == zh  # Chinese without a language (the UI is Chinese first)
    for head in ("任务", "类型", "状态", "计算资源 × 数量", "时长", "成本（至今）", "运行", "日志"):
        assert f"<th>{head}</th>" in zh
    done = zh.split('data-job="azureml:gp-eval-done"', 1)[1].split("</tr>", 1)[0]
    assert 'gp-state-completed' in done and ">已完成</span>" in done and ">打开</a>" in done and "<td>任务</td>" in done
    endpoint = zh.split('data-job="sagemaker-endpoint:gp-vlm"', 1)[1].split("</tr>", 1)[0]
    assert "<td>端点</td>" in endpoint and "<td>未知</td>" in endpoint and ">排队中</span>" in endpoint
    # no English words outside tags, ids and numbers
    text = re.sub(r"<[^>]+>", " ", zh)
    assert not re.search(r"\b(job|kind|state|unknown|open|completed|queued|endpoint)\b", text.replace(
        "azureml:gp-eval-done", "").replace("sagemaker-endpoint:gp-vlm", "")), text


def test_empty_table_in_each_language(store):
    en = JT.jobs_table_html(store, "en")
    assert en.startswith('<p id="jobs-empty">No cloud jobs yet') and not CJK.search(en)
    assert "<code>ghostprobe jobs submit-eval --backend azureml …</code>" in en
    zh = JT.jobs_table_html(store, "zh")
    assert zh.startswith('<p id="jobs-empty">还没有云端任务') and "No cloud jobs" not in zh


def test_detail_in_each_language(jobs_store):
    en = JT.job_detail_md(jobs_store, "azureml:gp-eval-done", "en")
    assert not CJK.search(en), CJK.findall(en)
    assert en.startswith("### `azureml:gp-eval-done` <span class=\"gp-badge gp-state-completed\"")
    assert "- compute: **gpu\\-v100x4**, 4 × Standard\\_NC24s\\_v3 (price key `azure:Standard_NC24s_v3`)" in en
    assert "- duration: 30m00s; cost so far: **$24.48** — 0.500 h × 4 × $12.24/h" in en
    assert "- ingested as run **`r20261202-060000-aaaa`** — see Reports" in en
    assert "| time (UTC) | state | message |" in en and "| 2026-12-02 06:34:00 |" in en
    assert ">queued</span>" in en and ">running</span>" in en and ">completed</span>" in en

    zh = JT.job_detail_md(jobs_store, "azureml:gp-eval-done", "zh")
    assert "- 计算资源：**gpu\\-v100x4**，4 × Standard\\_NC24s\\_v3（价格键 `azure:Standard_NC24s_v3`）" in zh
    assert "- 时长：30m00s；成本（至今）：**$24.48**" in zh and "- 已导入为运行 **`r20261202-060000-aaaa`**" in zh
    assert "| 时间（UTC） | 状态 | 说明 |" in zh and ">排队中</span>" in zh and ">已完成</span>" in zh
    for english in ("compute:", "duration", "cost so far", "ingested", "see Reports", ">completed<"):
        assert english not in zh

    # the cost note and the job's message are backend sentences: English as written, Chinese translated
    en = JT.job_detail_md(jobs_store, "sagemaker-endpoint:gp-vlm", "en")
    assert not CJK.search(en) and "cost so far: **unknown** — Cost unknown:" in en and "- message: " in en
    zh = JT.job_detail_md(jobs_store, "sagemaker-endpoint:gp-vlm", "zh")
    assert "成本（至今）：**未知** — 成本未知：" in zh and "- 消息：" in zh and "Cost unknown" not in zh
    assert JT.job_detail_md(jobs_store, None, "en") == ""


def test_not_started_cost_note_reads_in_chinese(store):
    J.add_job(store, job_id="azureml:gp-eval-queued", backend="azureml", kind="job", name="gp-eval-queued",
              compute="gpu-v100x4", instance_type="Standard_NC24s_v3", instance_count=2,
              location="azure:Standard_NC24s_v3", created_at=T0)
    en = JT.job_detail_md(store, "azureml:gp-eval-queued", "en")
    assert "not started yet: 2 × azure:Standard\\_NC24s\\_v3 at $12.24/h" in en and not CJK.search(en)
    zh = JT.job_detail_md(store, "azureml:gp-eval-queued", "zh")
    assert "尚未开始：2 × azure:Standard\\_NC24s\\_v3，每小时 $12.24" in zh and "not started" not in zh


def test_badge_and_state_names(jobs_store):
    assert JT.badge("failed", "en").endswith(">failed</span>") and JT.badge("failed", "zh").endswith(">失败</span>")
    assert 'class="gp-badge gp-state-failed"' in JT.badge("failed", "en")
    assert JT.kind_name("transform", "en") == "transform" and JT.kind_name("transform", "zh") == "批量转换"


def test_cloud_lines_in_each_language(monkeypatch):
    for k in ("GHOSTPROBE_AZUREML_SUBSCRIPTION", "GHOSTPROBE_AZUREML_RESOURCE_GROUP", "GHOSTPROBE_AZUREML_WORKSPACE",
              "AZUREML_CONFIG"):
        monkeypatch.setenv(k, "")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    import webapp.tabs.prompt_lab  # noqa: F401  (the app imports it first: its translations of the Azure ML line)

    en = JT.availability_md("en")
    assert "- **Azure ML**: ⚠️ " in en and "- **SageMaker**: " in en and not CJK.search(en), en
    zh = JT.availability_md("zh")
    assert CJK.search(zh) and "is not configured" not in zh and "not yet contacted" not in zh, zh


def test_cloud_reasons_are_translated_for_chinese():
    import webapp.tabs.prompt_lab  # noqa: F401

    for english, chinese in (
            ("configured, not yet contacted: region us-east-1.", "已配置，尚未连接：区域 us-east-1。"),
            ("configured, not yet contacted: workspace ws-ghost, cluster gpu-v100x4.",
             "已配置，尚未连接：工作区 ws-ghost，计算集群 gpu-v100x4。"),
            ("The boto3 package is not installed (pip install '.[cloud]').", "没有安装 boto3 包（pip install '.[cloud]'）。"),
            ("The sagemaker check failed: ValueError: bad.", "sagemaker 的可用性检查失败：ValueError: bad。")):
        assert MSG.translate(english, "zh") == chinese
        assert MSG.translate(english, "en") == english


def test_the_ingest_refusal_reads_in_chinese():
    e = J.JobError("Job azureml:gp-eval-running is running; only a completed job's outputs can be ingested.")
    assert MSG.error_text(e, "zh") == "任务 azureml:gp-eval-running 是 running 状态：只有已完成任务的输出才能导入。"
    assert MSG.error_text(e, "en") == str(e)
