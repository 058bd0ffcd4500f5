"""SageMaker endpoints and transform jobs in the jobs table, with moto answering the control plane."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

pytest.importorskip("moto")
boto3 = pytest.importorskip("boto3")
from moto import mock_aws  # noqa: E402

from engines.cloud import sagemaker as SM  # noqa: E402
from engines.cloud import service as S  # noqa: E402
from reports import costs as C  # noqa: E402
from reports import jobs as J  # noqa: E402

ROLE = "arn:aws:iam::123456789012:role/ghostprobe-sagemaker"
IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/ghostprobe-vlm:latest"


@pytest.fixture
def aws(monkeypatch):
    for k, v in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_SESSION_TOKEN": "testing",
                 "AWS_DEFAULT_REGION": "us-east-1", "AWS_REGION": "us-east-1"}.items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("GHOSTPROBE_SAGEMAKER_REGION", raising=False)
    with mock_aws():
        yield boto3.client("sagemaker", region_name="us-east-1")


def _transform(c, name, itype="ml.g4dn.xlarge", count=2):
    c.create_model(ModelName=f"{name}-model", PrimaryContainer={"Image": IMAGE}, ExecutionRoleArn=ROLE)
    c.create_transform_job(
        TransformJobName=name, ModelName=f"{name}-model",
        TransformInput={"DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": "s3://gp-videos/dada/"}},
                        "ContentType": "application/json"},
        TransformOutput={"S3OutputPath": "s3://gp-results/"},
        TransformResources={"InstanceType": itype, "InstanceCount": count})


def test_endpoints_and_transform_jobs_listed_with_compute_state_and_cost(store, aws):
    SM.deploy_endpoint(aws, name="gp-vlm", image_uri=IMAGE, role_arn=ROLE, instance_type="ml.g4dn.xlarge",
                       instance_count=2, environment={"GHOSTPROBE_ENGINE": "transformers"})
    _transform(aws, "gp-transform-1")
    backend = SM.SageMakerBackend(client=aws)
    seen = backend.sync(store)
    assert sorted(seen) == ["sagemaker-endpoint:gp-vlm", "sagemaker-transform:gp-transform-1"]

    ep = J.get_job(store, "sagemaker-endpoint:gp-vlm")
    desc = aws.describe_endpoint(EndpointName="gp-vlm")
    assert ep["kind"] == "endpoint" and ep["backend"] == "sagemaker"
    assert ep["provider_state"] == desc["EndpointStatus"]
    assert ep["state"] == SM.ENDPOINT_STATES[desc["EndpointStatus"].lower()]
    assert ep["instance_type"] == "ml.g4dn.xlarge" and ep["instance_count"] == 2
    assert ep["location"] == "aws:ml.g4dn.xlarge"
    assert ep["url"] == "https://us-east-1.console.aws.amazon.com/sagemaker/home?region=us-east-1#/endpoints/gp-vlm"
    # the shipped catalogue has no ml.g4dn.xlarge price: unknown, never 0
    assert ep["cost_usd"] is None and ep["cost_note"] == "Cost unknown: no price is set for location 'aws:ml.g4dn.xlarge'."

    tr = J.get_job(store, "sagemaker-transform:gp-transform-1")
    d = aws.describe_transform_job(TransformJobName="gp-transform-1")
    assert tr["kind"] == "transform" and tr["instance_count"] == 2
    assert tr["provider_state"] == d["TransformJobStatus"]
    assert tr["state"] == SM.TRANSFORM_STATES[d["TransformJobStatus"].lower()]

    # with a price, endpoint cost is its time in service × instances × price
    C.set_price(store, "aws", "ml.g4dn.xlarge", "us-east-1", usd_per_hour=0.736, source="test price")
    ep = J.get_job(store, "sagemaker-endpoint:gp-vlm")
    later = J.to_utc(ep["started_at"]) + timedelta(hours=3)
    usd, note = J.job_cost(store, ep, now=later)
    assert usd == pytest.approx(3 * 2 * 0.736) and note.startswith("3.000 h × 2 × $0.736/h")


def test_refresh_stop_and_delete(store, aws):
    SM.deploy_endpoint(aws, name="gp-vlm", image_uri=IMAGE, role_arn=ROLE, instance_type="ml.g4dn.xlarge")
    _transform(aws, "gp-transform-2", count=1)
    backend = SM.SageMakerBackend(client=aws)
    backend.sync(store)
    r = S.refresh(store, "sagemaker-transform:gp-transform-2", backend)
    assert r["state"] in ("running", "completed")
    if r["state"] == "running":
        out = S.cancel(store, "sagemaker-transform:gp-transform-2", backend)
        assert aws.describe_transform_job(TransformJobName="gp-transform-2")["TransformJobStatus"] in ("Stopping", "Stopped")
        assert out["state"] in ("running", "canceled")

    # deleting the endpoint (what stops its bill) moves it to deleted with an end time
    out = S.cancel(store, "sagemaker-endpoint:gp-vlm", backend)
    assert out["state"] == "deleted"
    ep = J.get_job(store, "sagemaker-endpoint:gp-vlm")
    assert ep["ended_at"] is not None and [e["state"] for e in J.events(store, ep["job_id"])][-1] == "deleted"
    assert aws.list_endpoints()["Endpoints"] == []
    backend.sync(store)  # gone from the account: stays deleted
    assert J.get_job(store, "sagemaker-endpoint:gp-vlm")["state"] == "deleted"


def test_missing_region_or_credentials_is_one_sentence(monkeypatch, tmp_path):
    for k in ("GHOSTPROBE_SAGEMAKER_REGION", "AWS_REGION", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(k, raising=False)
    ok, why = SM.availability()
    assert not ok and why == "SageMaker is not configured: set AWS_REGION (or GHOSTPROBE_SAGEMAKER_REGION), e.g. us-east-1."
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    ok, why = SM.availability()
    assert not ok and why.startswith("No AWS credentials found by boto3")
    with pytest.raises(SM.EngineError, match="^No AWS credentials found"):
        SM.SageMakerBackend().client()


def test_endpoints_cli_deploy_list_delete(aws, tmp_path, capsys):
    import json

    from webapp.cli import main

    db = str(tmp_path / "gp.duckdb")
    args = ["--db", db, "endpoints", "deploy", "--backend", "sagemaker", "--name", "gp-vlm", "--instance-type",
            "ml.g4dn.xlarge", "--image", IMAGE, "--role", ROLE, "--engine-env", "GHOSTPROBE_HF_DTYPE=float16"]
    assert main(args + ["--dry-run", "--json"]) == 0
    spec = json.loads(capsys.readouterr().out)["sagemaker"]
    assert spec["environment"] == {"GHOSTPROBE_SCORE_ENGINE": "transformers", "GHOSTPROBE_HF_DTYPE": "float16"}
    assert aws.list_endpoints()["Endpoints"] == []  # a dry run creates nothing
    assert main(args + ["--json"]) == 0
    assert json.loads(capsys.readouterr().out)["job_id"] == "sagemaker-endpoint:gp-vlm"
    model = aws.describe_model(ModelName="gp-vlm")
    assert model["PrimaryContainer"]["Image"] == IMAGE and model["ExecutionRoleArn"] == ROLE
    assert main(["--db", db, "endpoints", "list", "--sync", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["endpoints"]
    assert [r["job_id"] for r in rows] == ["sagemaker-endpoint:gp-vlm"] and rows[0]["instance_type"] == "ml.g4dn.xlarge"
    assert main(["--db", db, "endpoints", "delete", "gp-vlm", "--backend", "sagemaker", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["state"] == "deleted"
    assert aws.list_endpoints()["Endpoints"] == []
    assert main(["--db", db, "endpoints", "deploy", "--backend", "sagemaker", "--name", "x", "--instance-type",
                 "ml.g4dn.xlarge"]) == 2
    assert capsys.readouterr().err.strip() == ("ghostprobe: A SageMaker endpoint needs --image (the container) and "
                                               "--role (its execution role ARN).")
