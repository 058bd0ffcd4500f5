"""The model catalogue: small video LLMs that run on a CPU or a small GPU, pulled on explicit request.

Nothing here runs at start-up and nothing downloads unless a person asks (``ghostprobe models pull
NAME`` or the 下载 button of the Chat tab's 模型目录 panel). A pull shows the size first — the sum of
the file sizes in the hub's own file listing, fetched at that moment — then downloads with
``huggingface_hub.snapshot_download`` into ``$GHOSTPROBE_DATA_DIR/models/<name>/`` with a progress bar
(bytes on disk against that listed total). A finished pull writes ``.ghostprobe-pull.json`` beside the
files; only then is the folder offered as a model of the ``transformers`` engine.

The hub is ``HF_ENDPOINT`` (huggingface_hub's own setting), read when the pull runs, so a mirror or a
loopback stand-in works; ``HF_HUB_OFFLINE=1`` refuses with one sentence.

Sizes before asking the hub are estimates from the parameter count (bf16, 2 bytes per parameter) and
are always labelled as such; a size fetched from the hub's listing is cached in ``models/.sizes.json``.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

from engines.errors import GhostProbeError

MARKER = ".ghostprobe-pull.json"
SIZES = ".sizes.json"


class ModelsError(GhostProbeError):
    """A catalogue request that cannot be honoured (unknown name, offline, hub unreachable, disk …)."""


@dataclass(frozen=True)
class CatalogueModel:
    name: str  # short name used on the command line and as the folder name
    repo_id: str  # Hugging Face repository
    params_b: float  # parameters, billions (from the model card)
    chinese: str  # "good" | "weak": how well it reads Chinese prompts
    runs_on: str  # where it is practical
    note_zh: str
    note_en: str

    @property
    def estimate_gb(self) -> float:
        """Estimated weights on disk: parameters × 2 bytes (bf16); a label says it is an estimate."""
        return round(self.params_b * 2.0, 1)


CATALOGUE: tuple[CatalogueModel, ...] = (
    CatalogueModel("smolvlm2-256m", "HuggingFaceTB/SmolVLM2-256M-Video-Instruct", 0.26, "weak", "CPU",
                   "最小的视频模型，CPU 上也能较快回答；中文理解弱，请配合英文提示词 ghost_probing_en。",
                   "The smallest video model, usable on a CPU; weak in Chinese: use the English prompt ghost_probing_en."),
    CatalogueModel("smolvlm2-500m", "HuggingFaceTB/SmolVLM2-500M-Video-Instruct", 0.51, "weak", "CPU",
                   "小型视频模型，CPU 可用；中文理解弱，建议用 ghost_probing_en。",
                   "A small video model, usable on a CPU; weak in Chinese: prefer ghost_probing_en."),
    CatalogueModel("qwen3-vl-2b", "Qwen/Qwen3-VL-2B-Instruct", 2.1, "good", "CPU (slow) / GPU ≥ 8 GB",
                   "中文好的小型视频模型；CPU 上每个视频需要数分钟，小显卡（≥ 8 GB）上较快。",
                   "A small video model that reads Chinese well; minutes per video on a CPU, faster on a small GPU (≥ 8 GB)."),
    CatalogueModel("smolvlm2-2.2b", "HuggingFaceTB/SmolVLM2-2.2B-Instruct", 2.2, "weak", "GPU ≥ 8 GB",
                   "SmolVLM2 系列中最大的一个，视频理解更好；中文理解弱。",
                   "The largest SmolVLM2, better at video; weak in Chinese."),
    CatalogueModel("qwen2.5-vl-3b", "Qwen/Qwen2.5-VL-3B-Instruct", 3.75, "good", "GPU ≥ 12 GB (CPU very slow)",
                   "中文好的视频模型，带时间定位；适合小显卡（≥ 12 GB）。",
                   "A video model that reads Chinese well, with temporal grounding; for a small GPU (≥ 12 GB)."),
)


def get(name: str) -> CatalogueModel:
    key = (name or "").strip().lower()
    for m in CATALOGUE:
        if key in (m.name, m.repo_id.lower()):
            return m
    known = ", ".join(m.name for m in CATALOGUE)
    raise ModelsError(f"No model named '{name}' in the catalogue; known models: {known}.")


def models_dir(config: Any) -> Path:
    """``$GHOSTPROBE_DATA_DIR/models`` (or ``GHOSTPROBE_MODELS``)."""
    env = os.environ.get("GHOSTPROBE_MODELS")
    return Path(env).expanduser().resolve() if env else Path(config.data_dir) / "models"


def local_path(config: Any, m: CatalogueModel) -> Path:
    return models_dir(config) / m.name


def pulled_info(config: Any, m: CatalogueModel) -> dict[str, Any] | None:
    """What the finished pull recorded (repo, revision, files, bytes, seconds), or None when not pulled."""
    p = local_path(config, m) / MARKER
    try:
        info = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return info if (local_path(config, m) / "config.json").exists() else None


def pulled(config: Any) -> list[tuple[CatalogueModel, Path]]:
    """Catalogue models whose pull finished, with their folders (usable as the transformers engine's model)."""
    return [(m, local_path(config, m)) for m in CATALOGUE if pulled_info(config, m) is not None]


def _endpoint() -> str | None:
    return (os.environ.get("HF_ENDPOINT") or "").rstrip("/") or None


def _offline() -> bool:
    """huggingface_hub's own rule: HF_HUB_OFFLINE (or TRANSFORMERS_OFFLINE) set to a true value."""
    v = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE") or ""
    return v.strip().lower() in ("1", "true", "yes", "on")


def _hub_error(m: CatalogueModel, e: Exception) -> ModelsError:
    from engines.redact import redact

    text = str(e).strip()
    why = f"{type(e).__name__}: {text.splitlines()[0]}" if text else type(e).__name__
    return ModelsError(f"Could not get {m.repo_id} from the model hub ({redact(why).rstrip('.')}).")


def cached_sizes(config: Any) -> dict[str, dict[str, Any]]:
    try:
        return json.loads((models_dir(config) / SIZES).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def remote_size(config: Any, m: CatalogueModel) -> dict[str, Any]:
    """Ask the hub for the file listing: ``{files, bytes, revision, fetched_at}`` (cached in models/.sizes.json)."""
    if _offline():
        raise ModelsError("HF_HUB_OFFLINE (or TRANSFORMERS_OFFLINE) is set, so the model hub cannot be asked; "
                          "unset it to see sizes and pull models.")
    from huggingface_hub import HfApi
    from huggingface_hub.hf_api import RepoFile

    api = HfApi(endpoint=_endpoint())
    try:
        info = api.model_info(m.repo_id)
        files = [f for f in api.list_repo_tree(m.repo_id, recursive=True, revision=info.sha) if isinstance(f, RepoFile)]
    except Exception as e:
        raise _hub_error(m, e) from None
    out = {"files": len(files), "bytes": int(sum(int(f.size or 0) for f in files)), "revision": info.sha,
           "fetched_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    sizes = cached_sizes(config)
    sizes[m.name] = out
    d = models_dir(config)
    d.mkdir(parents=True, exist_ok=True)
    tmp = d / (SIZES + ".part")
    tmp.write_text(json.dumps(sizes, indent=1), encoding="utf-8")
    os.replace(tmp, d / SIZES)
    return out


def human_bytes(n: int | float | None) -> str:
    if n is None:
        return "?"
    n = float(n)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


def size_text(config: Any, m: CatalogueModel, lang: str = "zh") -> str:
    """The size as known now: the hub's listing when it was asked, else the labelled estimate."""
    s = cached_sizes(config).get(m.name)
    if s:
        return (f"{human_bytes(s['bytes'])}（{s['files']} 个文件，模型库清单）" if lang == "zh"
                else f"{human_bytes(s['bytes'])} ({s['files']} files, hub listing)")
    return (f"约 {m.estimate_gb:g} GB（估计：参数量 × 2 字节）" if lang == "zh"
            else f"≈ {m.estimate_gb:g} GB (estimate: parameters × 2 bytes)")


def rows(config: Any) -> list[dict[str, Any]]:
    """Catalogue rows for ``models list --json`` and the UI."""
    sizes = cached_sizes(config)
    out = []
    for m in CATALOGUE:
        info = pulled_info(config, m)
        s = sizes.get(m.name)
        out.append({**asdict(m), "estimate_gb": m.estimate_gb,
                    "hub_bytes": s["bytes"] if s else None, "hub_files": s["files"] if s else None,
                    "pulled": info is not None, "path": str(local_path(config, m)) if info else None,
                    "pulled_bytes": info.get("bytes") if info else None})
    return out


def _folder_bytes(p: Path) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(p):
        for f in files:
            try:
                total += os.stat(os.path.join(dirpath, f)).st_size
            except OSError:
                pass
    return total


_PULL_LOCK = threading.Lock()


def pull(config: Any, name: str, progress: Callable[[int, int], None] | None = None,
         size: dict[str, Any] | None = None, poll_s: float = 0.2) -> Path:
    """Download catalogue model ``name`` into ``models/<name>``; ``progress(done_bytes, total_bytes)`` is called
    while it runs. Downloads into ``models/.<name>.partial`` and renames when complete, so a broken pull never
    leaves a folder that looks usable. Returns the folder."""
    m = get(name)
    if pulled_info(config, m) is not None:
        return local_path(config, m)
    if not _PULL_LOCK.acquire(blocking=False):
        raise ModelsError("Another model is being pulled; wait until it finishes.")
    try:
        size = size or remote_size(config, m)
        total = int(size["bytes"])
        d = models_dir(config)
        d.mkdir(parents=True, exist_ok=True)
        free = shutil.disk_usage(d).free
        if total > free:
            raise ModelsError(f"{m.name} needs {human_bytes(total)} but only {human_bytes(free)} is free under {d}.")
        part = d / f".{m.name}.partial"
        from huggingface_hub import snapshot_download
        from huggingface_hub.utils import disable_progress_bars

        disable_progress_bars()  # our own bar counts bytes on disk against the listed total

        result: dict[str, Any] = {}

        def run() -> None:
            try:
                snapshot_download(m.repo_id, revision=size.get("revision"), local_dir=str(part),
                                  endpoint=_endpoint(), max_workers=4)
            except Exception as e:  # noqa: BLE001 - reported to the caller as one sentence
                result["error"] = e

        t0 = time.monotonic()
        worker = threading.Thread(target=run, name=f"pull-{m.name}", daemon=True)
        worker.start()
        while worker.is_alive():
            worker.join(poll_s)
            if progress is not None:
                progress(min(_folder_bytes(part), total), total)
        if "error" in result:
            raise _hub_error(m, result["error"])
        shutil.rmtree(part / ".cache", ignore_errors=True)  # huggingface_hub's download bookkeeping
        if not (part / "config.json").exists():
            raise ModelsError(f"The download of {m.repo_id} has no config.json, so it is not a model folder transformers can load.")
        got = _folder_bytes(part)
        (part / MARKER).write_text(json.dumps({
            "name": m.name, "repo_id": m.repo_id, "revision": size.get("revision"), "files": size.get("files"),
            "bytes": got, "seconds": round(time.monotonic() - t0, 3),
            "pulled_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}, indent=1), encoding="utf-8")
        dest = local_path(config, m)
        if dest.exists():
            shutil.rmtree(dest)
        os.replace(part, dest)
        if progress is not None:
            progress(total, total)
        return dest
    finally:
        _PULL_LOCK.release()
