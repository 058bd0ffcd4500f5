"""Azure ML scoring script (``init()`` / ``run()``) for a managed online endpoint, served by Microsoft's
``azureml-inference-server-http`` (``azmlinfsrv --entry_script engines/cloud/azureml_score.py``).

It wraps one of this project's chat engines — by default the local transformers engine — behind the
contract of :mod:`engines.cloud.contract` (frames or a video URI, messages, options → text, verdict,
timings). Configuration through the deployment's environment variables:

- ``GHOSTPROBE_SCORE_ENGINE`` (default ``transformers``; ``videollama2`` for the seed's model);
- the engine's own settings, e.g. ``GHOSTPROBE_HF_MODEL`` (default: the registered model's folder,
  ``$AZUREML_MODEL_DIR``, or its single sub-folder), ``GHOSTPROBE_HF_DTYPE=float16``,
  ``GHOSTPROBE_HF_DEVICE=auto``.

The endpoint's key is checked by Azure ML in front of this script; nothing here sees or logs it.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

log = logging.getLogger("ghostprobe.score")
ENGINE = None


def _model_dir() -> str | None:
    if os.environ.get("GHOSTPROBE_HF_MODEL"):
        return os.environ["GHOSTPROBE_HF_MODEL"]
    d = os.environ.get("AZUREML_MODEL_DIR")
    if not d:
        return None
    p = Path(d)
    if (p / "config.json").exists():
        return str(p)
    subs = [s for s in p.iterdir() if s.is_dir() and (s / "config.json").exists()] if p.is_dir() else []
    return str(subs[0]) if len(subs) == 1 else str(p)


def init() -> None:
    global ENGINE
    from engines.registry import get_engine

    name = os.environ.get("GHOSTPROBE_SCORE_ENGINE", "transformers")
    engine = get_engine(name, model=_model_dir())
    ok, why = engine.availability()
    if not ok:
        raise RuntimeError(why)
    ENGINE = engine
    log.info("ghostprobe scoring: engine %s, model %s", name, engine.model_id())


def _response(body: dict, status: int):
    try:
        from azureml_inference_server_http.api.aml_response import AMLResponse
    except ImportError:  # called outside the inference server (tests, a local check)
        return body if status == 200 else {"status": status, **body}
    return AMLResponse(body, status, json_str=True)


def run(raw_data):
    from engines.cloud.contract import ContractError, answer
    from engines.errors import GhostProbeError
    from engines.redact import redact

    if ENGINE is None:
        init()
    try:
        return answer(ENGINE, raw_data)
    except ContractError as e:
        return _response({"error": str(e)}, 400)
    except GhostProbeError as e:
        return _response({"error": redact(str(e))}, 500)
    except Exception as e:  # noqa: BLE001 - the server must answer with a sentence, not a traceback
        log.exception("scoring failed")
        return _response({"error": f"The model failed ({type(e).__name__})."}, 500)
