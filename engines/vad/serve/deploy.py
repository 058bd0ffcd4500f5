"""Deploy the AI-VAD container as a SageMaker real-time endpoint with boto3, and delete it.

``deploy``: model (the image in ECR + ``model.tar.gz`` holding the three-file artifact in S3) →
endpoint config (one variant, ``ml.g4dn.xlarge`` by default) → endpoint → wait until InService.
``delete``: endpoint, endpoint config, model (each only if it exists).

Long videos: a real-time invocation is capped at 6 MB and 60 s. For longer clips deploy for SageMaker
*asynchronous inference* (``async_output=``, CLI ``--async-output``): the same container and model, an
endpoint config with ``AsyncInferenceConfig={"OutputConfig": {"S3OutputPath": …, "S3FailurePath": …},
"ClientConfig": {"MaxConcurrentInvocationsPerInstance": …}}``, and the container told (environment
``GHOSTPROBE_VAD_TIME_LIMIT_S`` / ``GHOSTPROBE_VAD_MAX_BODY_MB``) to accept bodies up to 1 GB and work
up to an hour per request. The client (:mod:`engines.vad.sagemaker`, ``async_input=``) uploads each
request to S3, calls ``invoke_endpoint_async(InputLocation=…)`` and polls the output/failure locations.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from engines.errors import EngineError

DEFAULT_INSTANCE = "ml.g4dn.xlarge"
ASYNC_ENV = {"GHOSTPROBE_VAD_TIME_LIMIT_S": "3600", "GHOSTPROBE_VAD_MAX_BODY_MB": "1024"}


def async_inference_config(output: str, failure: str | None = None, max_concurrent: int | None = None
                           ) -> dict[str, Any]:
    """The endpoint config's ``AsyncInferenceConfig`` (outputs and failures under S3)."""
    for what, uri in (("--async-output", output), ("--async-failure", failure)):
        if uri is not None and not str(uri).startswith("s3://"):
            raise EngineError(f"{what} must be an s3:// path, not {uri!r}.")
    out: dict[str, Any] = {"OutputConfig": {"S3OutputPath": output,
                                            "S3FailurePath": failure or output.rstrip("/") + "/failures"}}
    if max_concurrent:
        out["ClientConfig"] = {"MaxConcurrentInvocationsPerInstance": int(max_concurrent)}
    return out


@dataclass
class DeployResult:
    endpoint: str
    config: str
    model: str
    status: str
    arn: str | None = None


def _client(region: str | None, client=None):
    if client is not None:
        return client
    import boto3

    return boto3.session.Session().client("sagemaker", region_name=region)


def _aws_error(e: Exception, what: str) -> EngineError:
    name = type(e).__name__
    if name in ("NoCredentialsError", "PartialCredentialsError"):
        return EngineError("AWS credentials are missing: set AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY.")
    if name == "NoRegionError":
        return EngineError("No AWS region: pass --region or set AWS_DEFAULT_REGION.")
    msg = getattr(e, "response", {}).get("Error", {}).get("Message") if hasattr(e, "response") else None
    return EngineError(f"{what} failed: {msg or name}.")


def deploy(name: str, image_uri: str, model_data_url: str, role_arn: str, *, instance_type: str = DEFAULT_INSTANCE,
           instance_count: int = 1, region: str | None = None, async_output: str | None = None,
           async_failure: str | None = None, max_concurrent: int | None = None,
           wait: bool = True, client=None, env: dict[str, str] | None = None) -> DeployResult:
    if not model_data_url.startswith("s3://"):
        raise EngineError("--model-data must be an s3:// URI of model.tar.gz (the three AI-VAD files).")
    if (async_failure or max_concurrent) and not async_output:
        raise EngineError("--async-failure and --max-concurrent need --async-output (an asynchronous endpoint).")
    async_cfg = async_inference_config(async_output, async_failure, max_concurrent) if async_output else None
    env = {**(ASYNC_ENV if async_output else {}), **dict(env or {})}
    sm = _client(region, client)
    model, config = f"{name}-model", f"{name}-config"
    try:
        sm.create_model(ModelName=model, ExecutionRoleArn=role_arn,
                        PrimaryContainer={"Image": image_uri, "ModelDataUrl": model_data_url,
                                          "Environment": env})
        variant: dict[str, Any] = {"VariantName": "AllTraffic", "ModelName": model,
                                   "InitialInstanceCount": int(instance_count), "InstanceType": instance_type}
        kwargs: dict[str, Any] = {"EndpointConfigName": config, "ProductionVariants": [variant]}
        if async_cfg:
            kwargs["AsyncInferenceConfig"] = async_cfg
        sm.create_endpoint_config(**kwargs)
        arn = sm.create_endpoint(EndpointName=name, EndpointConfigName=config).get("EndpointArn")
        if wait:
            sm.get_waiter("endpoint_in_service").wait(EndpointName=name,
                                                      WaiterConfig={"Delay": 30, "MaxAttempts": 60})
        status = sm.describe_endpoint(EndpointName=name)["EndpointStatus"]
    except EngineError:
        raise
    except Exception as e:
        raise _aws_error(e, f"Deploying endpoint {name}") from None
    return DeployResult(endpoint=name, config=config, model=model, status=status, arn=arn)


def delete(name: str, *, region: str | None = None, client=None) -> list[str]:
    """Delete the endpoint, its config and its model; returns what was deleted."""
    sm = _client(region, client)
    done = []
    try:
        try:
            desc = sm.describe_endpoint(EndpointName=name)
            config = desc["EndpointConfigName"]
        except Exception as e:
            if "Could not find" not in str(e) and "ValidationException" not in str(e):
                raise
            config = f"{name}-config"
            desc = None
        models = []
        try:
            models = [v["ModelName"] for v in sm.describe_endpoint_config(EndpointConfigName=config)
                      ["ProductionVariants"]]
        except Exception:
            pass
        if desc is not None:
            sm.delete_endpoint(EndpointName=name)
            done.append(f"endpoint {name}")
        if models or desc is not None:
            try:
                sm.delete_endpoint_config(EndpointConfigName=config)
                done.append(f"endpoint config {config}")
            except Exception:
                pass
        for m in models or [f"{name}-model"]:
            try:
                sm.delete_model(ModelName=m)
                done.append(f"model {m}")
            except Exception:
                pass
    except Exception as e:
        raise _aws_error(e, f"Deleting endpoint {name}") from None
    if not done:
        raise EngineError(f"There is no SageMaker endpoint, config or model named {name}.")
    return done
