"""The job state store (reports.jobs): state machine with times, events, cost so far from the catalogue."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from engines.base import JobStatus
from reports import jobs as J

T0 = datetime(2026, 12, 2, 7, 0, 0)


def _job(store, job_id="azureml:gp-eval-1", location="azure:Standard_NC24s_v3", count=2, **kw):
    return J.add_job(store, job_id=job_id, backend="azureml", kind="job", name=job_id.split(":", 1)[1],
                     compute="gpu-v100x4", instance_type="Standard_NC24s_v3", instance_count=count,
                     location=location, created_at=T0, url="https://ml.azure.com/runs/gp-eval-1",
                     spec={"type": "parallel"}, **kw)


def test_state_machine_records_each_change_with_its_time(store):
    job = _job(store)
    assert job["state"] == "queued" and job["started_at"] is None and job["spec"] == {"type": "parallel"}
    assert J.any_active(store)

    assert J.record_state(store, job["job_id"], "queued", at=T0 + timedelta(minutes=1)) is False  # no change
    assert J.record_state(store, job["job_id"], "running", at=T0 + timedelta(minutes=5), provider_state="Running")
    assert J.record_state(store, job["job_id"], "completed", at=T0 + timedelta(minutes=95),
                          provider_state="Completed")
    # final states are final: a stale report does not move it back
    assert J.record_state(store, job["job_id"], "running", at=T0 + timedelta(minutes=96)) is False
    job = J.get_job(store, job["job_id"])
    assert job["state"] == "completed" and job["provider_state"] == "Completed"
    assert job["started_at"] == T0 + timedelta(minutes=5) and job["ended_at"] == T0 + timedelta(minutes=95)
    ev = J.events(store, job["job_id"])
    assert [(e["at"], e["state"]) for e in ev] == [
        (T0, "queued"), (T0 + timedelta(minutes=5), "running"), (T0 + timedelta(minutes=95), "completed")]
    assert not J.any_active(store)
    assert J.duration_s(job) == 90 * 60

    # 1.5 h × 2 nodes × $12.24/h (Standard_NC24s_v3 in the shipped catalogue)
    usd, note = J.update_cost(store, job["job_id"])
    assert usd == pytest.approx(1.5 * 2 * 12.24)
    assert note.startswith("1.500 h × 2 × $12.24/h")
    assert J.get_job(store, job["job_id"])["cost_usd"] == pytest.approx(36.72)


def test_apply_status_from_a_backend_and_failure_and_cancel(store):
    _job(store, "azureml:a")
    st = JobStatus(job_id="azureml:a", state="failed",
                   history=[("2026-12-02T07:02:00+00:00", "running"), ("2026-12-02T07:32:00+00:00", "failed")],
                   started_at="2026-12-02T07:02:00+00:00", ended_at="2026-12-02T07:32:00+00:00",
                   message="CUDA out of memory on node 3.")
    assert J.apply_status(store, st, provider_state="Failed") == ["running", "failed"]
    job = J.get_job(store, "azureml:a")
    assert job["state"] == "failed" and job["message"] == "CUDA out of memory on node 3."
    assert job["started_at"] == datetime(2026, 12, 2, 7, 2) and job["ended_at"] == datetime(2026, 12, 2, 7, 32)
    assert job["cost_usd"] == pytest.approx(0.5 * 2 * 12.24)
    assert J.apply_status(store, st) == []  # the same report again changes nothing
    assert len(J.events(store, "azureml:a")) == 3

    _job(store, "azureml:b")
    assert J.record_state(store, "azureml:b", "canceled", at=T0 + timedelta(minutes=3))
    b = J.get_job(store, "azureml:b")
    assert b["started_at"] is None and b["ended_at"] == T0 + timedelta(minutes=3)
    assert J.job_cost(store, b)[0] == 0.0  # never ran: nothing billed


def test_running_cost_so_far_and_unknown_price(store):
    _job(store, "azureml:r", count=4)
    J.record_state(store, "azureml:r", "running", at=T0)
    job = J.get_job(store, "azureml:r")
    usd, _ = J.job_cost(store, job, now=T0 + timedelta(minutes=30))
    assert usd == pytest.approx(0.5 * 4 * 12.24)

    _job(store, "azureml:x", location="azure:Standard_ND96asr_v4")
    J.record_state(store, "azureml:x", "running", at=T0)
    usd, note = J.update_cost(store, "azureml:x")
    assert usd is None and note == "Cost unknown: no price is set for location 'azure:Standard_ND96asr_v4'."
    assert J.get_job(store, "azureml:x")["cost_usd"] is None


def test_lookup_and_errors(store):
    _job(store, "azureml:gp-eval-r20261202-aaaa")
    _job(store, "azureml:gp-eval-r20261202-bbbb")
    assert J.get_job(store, "gp-eval-r20261202-aaaa")["job_id"] == "azureml:gp-eval-r20261202-aaaa"
    with pytest.raises(J.JobError, match=r"'azureml:gp-eval' matches 2 jobs"):
        J.get_job(store, "azureml:gp-eval")
    with pytest.raises(J.JobError, match=r"^No job has the id or name 'nope'; `ghostprobe jobs list` shows them\.$"):
        J.get_job(store, "nope")
    with pytest.raises(J.JobError, match="not 'maybe'"):
        J.record_state(store, "azureml:gp-eval-r20261202-aaaa", "maybe")
    with pytest.raises(J.JobError, match="backend is one of azureml, sagemaker"):
        J.add_job(store, job_id="x", backend="gcp", kind="job", name="x")
    assert [j["job_id"] for j in J.list_jobs(store, active=True)] == [
        "azureml:gp-eval-r20261202-aaaa", "azureml:gp-eval-r20261202-bbbb"]
    assert J.list_jobs(store, active=False) == []
    assert J.fmt_duration(3725) == "1h02m05s" and J.fmt_duration(65) == "1m05s" and J.fmt_duration(None) == "—"


def test_jobs_cli_list_show_and_errors(tmp_path, env_dirs, capsys, monkeypatch):
    import json

    from reports.store import Store
    from webapp.cli import main

    db = tmp_path / "gp.duckdb"
    s = Store(db)
    _job(s, "azureml:gp-eval-cli", count=2)
    J.record_state(s, "azureml:gp-eval-cli", "running", at=T0 + timedelta(minutes=2))
    J.record_state(s, "azureml:gp-eval-cli", "failed", at=T0 + timedelta(minutes=32), message="CUDA out of memory.")
    s.close()
    assert main(["--db", str(db), "jobs", "list", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["job_id"], r["state"], r["duration"]) for r in rows] == [("azureml:gp-eval-cli", "failed", "30m00s")]
    assert main(["--db", str(db), "jobs", "show", "gp-eval-cli"]) == 0
    out = capsys.readouterr().out
    assert "azureml:gp-eval-cli (job, azureml): failed" in out and "2 × Standard_NC24s_v3" in out
    assert "2026-12-02 07:32:00  failed  CUDA out of memory." in out and "logs: https://ml.azure.com/runs/" in out
    assert main(["--db", str(db), "jobs", "cancel", "gp-eval-cli"]) == 2
    assert capsys.readouterr().err.strip() == ("ghostprobe: Job azureml:gp-eval-cli is already failed; there is "
                                               "nothing to cancel.")
    assert main(["--db", str(db), "jobs", "ingest", str(tmp_path / "nope")]) == 2
    assert "is neither a run folder nor a known job" in capsys.readouterr().err


def test_an_endpoint_created_again_after_deletion_is_a_new_life_and_the_old_one_keeps_its_cost(store):
    def endpoint(at):
        return J.add_job(store, job_id="azureml-endpoint:gp-vlm", backend="azureml", kind="endpoint", name="gp-vlm",
                         instance_type="Standard_NC24s_v3", instance_count=1, location="azure:Standard_NC24s_v3",
                         created_at=at)

    endpoint(T0)
    J.record_state(store, "azureml-endpoint:gp-vlm", "running", at=T0)
    J.record_state(store, "azureml-endpoint:gp-vlm", "deleted", at=T0 + timedelta(hours=2))
    # the same report of the old endpoint (created before it ended) changes nothing
    assert endpoint(T0 + timedelta(minutes=30))["state"] == "deleted"
    assert len(J.list_jobs(store)) == 1

    again = endpoint(T0 + timedelta(hours=3))
    assert again["state"] == "queued" and again["ended_at"] is None
    assert J.record_state(store, again["job_id"], "running", at=T0 + timedelta(hours=3))
    assert [e["state"] for e in J.events(store, again["job_id"])] == ["queued", "running"]
    old = J.get_job(store, "azureml-endpoint:gp-vlm@20261202T090000Z")
    assert old["state"] == "deleted" and old["name"] == "gp-vlm"
    assert [e["state"] for e in J.events(store, old["job_id"])] == ["queued", "running", "deleted"]
    assert J.update_cost(store, old["job_id"])[0] == pytest.approx(2 * 12.24)  # its two hours in service
    assert J.get_job(store, "gp-vlm")["job_id"] == "azureml-endpoint:gp-vlm"  # the name means the live one
    assert [j["job_id"] for j in J.list_jobs(store, active=True)] == ["azureml-endpoint:gp-vlm"]
