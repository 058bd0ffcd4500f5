"""Cloud backends: Azure ML jobs and endpoints, SageMaker endpoints and transform jobs.

Nothing here imports azure or boto3 at module level: the SDKs are imported inside the functions that
need them, and a missing SDK or missing credentials is reported as one sentence.
"""
