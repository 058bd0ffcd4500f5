"""AI-VAD behind SageMaker's bring-your-own-container contract (``server``), its Dockerfile and the
boto3 deploy script (``deploy``). The client engine is :mod:`engines.vad.sagemaker`."""
