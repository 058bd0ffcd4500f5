"""The run folder: what a local ``ghostprobe eval … --output DIR`` and a cloud job both write.

A run folder holds two files:

- ``manifest.json`` — the run manifest, written atomically (temp file + rename) when the run starts
  and again when it ends::

      {"format": "ghostprobe-run-folder", "format_version": 1,
       "run_id": "r20261202-071800-ab12",          # the id of the run that wrote it (its origin)
       "identity": {"engine": "transformers", "kind": "chat", "model": …},   # EngineIdentity.to_dict()
       "prompt": {"ref": "ghost_probing@v3", "hash": "…", "text": "…"} | null,  # null for detectors
       "label_set": "dada-dev" | null, "selection": ["images_1_001.avi", …],
       "sampling": {"num_frames": 16, …}, "options": {"max_new_tokens": 512, …},
       "planned": 12, "location": "azure:Standard_NC24s_v3" | null, "instances": 1,
       "job_id": null | "azureml:…", "status": "running" | "done" | "partial" | "failed" | "cancelled",
       "created_at": "2026-12-02T07:18:00+00:00", "finished_at": null | "…",
       "tool_version": "0.1.0", "summary": {…}}

- ``predictions.jsonl`` — one JSON object per answered video, appended (flush + fsync) as each
  video finishes, so a crash loses at most the video in flight::

      {"video_id", "sha256", "response",                      # the model's text (raw answer)
       "ghost_probing", "confidence", "danger_level", "object_type", "onset_s", "reason", "status",
       "latency_s",                                   # end to end: decode + the engine (as in responses)
       "decode_s", "preprocess_s", "generate_s", "model_s",   # model_s: the engine alone (optional)
       "prompt_tokens", "completion_tokens", "device", "error", "cached", "extra"}

  ``status`` is ``ok``, ``unparsed`` or ``error``; ``ghost_probing`` is null unless status is ``ok``
  (an unparsed answer is never a "no"). A video may appear more than once (a retried mini-batch of
  an Azure ML parallel job appends it again): the **last** line for a video wins. Keys not listed
  are ignored by readers.

:func:`ingest` turns a folder into a run. It is idempotent: the folder's origin ``run_id`` is
recorded in table ``run_folders`` (migration ``m011_jobs``), so ingesting the same folder twice — or a
folder that grew since — adds only the videos not yet there (or whose answer changed), never twice.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from engines.errors import GhostProbeError

FORMAT = "ghostprobe-run-folder"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
PREDICTIONS = "predictions.jsonl"
MANIFEST_STATUSES = ("running", "done", "partial", "failed", "cancelled")
RECORD_STATUSES = ("ok", "unparsed", "error")
FLOAT_FIELDS = ("confidence", "onset_s", "latency_s", "decode_s", "preprocess_s", "generate_s", "model_s")
INT_FIELDS = ("prompt_tokens", "completion_tokens")
TEXT_FIELDS = ("sha256", "response", "danger_level", "object_type", "reason", "device", "error")
RECORD_FIELDS = ("video_id", "sha256", "response", "ghost_probing", "confidence", "danger_level", "object_type",
                 "onset_s", "reason", "status", "latency_s", "decode_s", "preprocess_s", "generate_s", "model_s",
                 "prompt_tokens", "completion_tokens", "device", "error", "cached", "extra")


class RunFolderError(GhostProbeError):
    """A run folder that cannot be written or read (one sentence)."""


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def tool_version() -> str:
    from importlib import metadata

    try:
        return metadata.version("ghostprobe-studio")
    except metadata.PackageNotFoundError:
        return "unknown"


def _atomic_write_json(path: Path, obj: Any) -> None:
    data = json.dumps(obj, ensure_ascii=False, indent=2, sort_keys=True, default=str).encode("utf-8")
    fd, tmp = tempfile.mkstemp(prefix=".manifest-", suffix=".tmp", dir=str(path.parent))
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    try:  # make the rename itself durable
        dfd = os.open(str(path.parent), os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass


# -- validation -----------------------------------------------------------------------------------
def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def record_problem(rec: Any) -> str | None:
    """Why this object is not a valid prediction record (a phrase), or None when it is."""
    if not isinstance(rec, dict):
        return "is not a JSON object"
    vid = rec.get("video_id")
    if not isinstance(vid, str) or not vid.strip():
        return "has no video_id"
    status = rec.get("status")
    if status not in RECORD_STATUSES:
        return f"has status {json.dumps(status, ensure_ascii=False)}, not one of {', '.join(RECORD_STATUSES)}"
    gp = rec.get("ghost_probing")
    if gp is not None and not isinstance(gp, bool):
        return "has a ghost_probing that is not true, false or null"
    if status != "ok" and gp is not None:
        return f"answers ghost_probing although its status is {status}"
    for k in FLOAT_FIELDS:
        v = rec.get(k)
        if v is not None and not _is_num(v):
            return f"has a {k} that is not a number"
    for k in INT_FIELDS:
        v = rec.get(k)
        if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v < 0):
            return f"has a {k} that is not a non-negative whole number"
    for k in TEXT_FIELDS:
        v = rec.get(k)
        if v is not None and not isinstance(v, str):
            return f"has a {k} that is not text"
    c = rec.get("confidence")
    if c is not None and not 0.0 <= float(c) <= 1.0:
        return "has a confidence outside 0..1"
    for k in ("latency_s", "decode_s", "preprocess_s", "generate_s", "model_s"):
        v = rec.get(k)
        if v is not None and v < 0:
            return f"has a negative {k}"
    if rec.get("cached") is not None and not isinstance(rec.get("cached"), bool):
        return "has a cached that is not true or false"
    if rec.get("extra") is not None and not isinstance(rec.get("extra"), dict):
        return "has an extra that is not an object"
    return None


def manifest_problem(m: Any) -> str | None:
    if not isinstance(m, dict):
        return "is not a JSON object"
    if m.get("format") not in (None, FORMAT):
        return f"is not a GhostProbe run manifest (format {m.get('format')!r})"
    if int(m.get("format_version") or FORMAT_VERSION) > FORMAT_VERSION:
        return (f"has format version {m.get('format_version')}, newer than this GhostProbe reads "
                f"({FORMAT_VERSION}); upgrade GhostProbe")
    if not isinstance(m.get("run_id"), str) or not m["run_id"].strip():
        return "has no run_id"
    ident = m.get("identity")
    if not isinstance(ident, dict) or not isinstance(ident.get("engine"), str) or not ident["engine"]:
        return "has no engine identity (identity.engine)"
    p = m.get("prompt")
    if p is not None and (not isinstance(p, dict) or not all(isinstance(p.get(k), (str, type(None)))
                                                               for k in ("ref", "hash", "text"))):
        return "has a prompt that is not {ref, hash, text} or null"
    if m.get("status") not in MANIFEST_STATUSES:
        return f"has status {m.get('status')!r}, not one of {', '.join(MANIFEST_STATUSES)}"
    planned = m.get("planned")
    if planned is not None and (not isinstance(planned, int) or isinstance(planned, bool) or planned < 0):
        return "has a planned count that is not a non-negative whole number"
    for k in ("selection",):
        if m.get(k) is not None and not isinstance(m[k], list):
            return f"has a {k} that is not a list"
    for k in ("sampling", "options", "summary"):
        if m.get(k) is not None and not isinstance(m[k], dict):
            return f"has {k} that is not an object"
    inst = m.get("instances", 1)
    if not isinstance(inst, int) or isinstance(inst, bool) or inst < 1:
        return "has an instance count that is not a whole number of at least 1"
    return None


def normalise_manifest(manifest: dict[str, Any]) -> dict[str, Any]:
    m = dict(manifest)
    m.setdefault("format", FORMAT)
    m.setdefault("format_version", FORMAT_VERSION)
    m.setdefault("prompt", None)
    m.setdefault("label_set", None)
    m["selection"] = list(m.get("selection") or [])
    m["sampling"] = dict(m.get("sampling") or {})
    m["options"] = dict(m.get("options") or {})
    if m.get("planned") is None:
        m["planned"] = len(m["selection"])
    m.setdefault("location", None)
    m["instances"] = m.get("instances") if m.get("instances") is not None else 1
    m.setdefault("job_id", None)
    m.setdefault("status", "running")
    m.setdefault("created_at", now_iso())
    m.setdefault("finished_at", None)
    m.setdefault("tool_version", tool_version())
    m.setdefault("summary", {})
    return m


def make_record(video_id: str, sha256: str | None, verdict: Any, call: Any = None, *, error: str | None = None,
                cached: bool = False, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """A record from a Verdict (or dict) and a CallRecord (or dict), as the runner has them."""
    def g(obj: Any, k: str) -> Any:
        if obj is None:
            return None
        return obj.get(k) if isinstance(obj, dict) else getattr(obj, k, None)

    status = g(verdict, "status") or "unparsed"
    conf = g(verdict, "confidence")
    # a CallRecord's latency_s is the engine's own time (model_s); the record's is end to end, as in responses
    model_s, decode_s = g(call, "latency_s"), g(call, "decode_s")
    latency_s = None if model_s is None and decode_s is None else (model_s or 0.0) + (decode_s or 0.0)
    rec = {
        "video_id": video_id, "sha256": sha256, "response": g(verdict, "raw") or "",
        "ghost_probing": g(verdict, "ghost_probing") if status == "ok" else None,
        "confidence": None if conf is None else float(conf), "danger_level": g(verdict, "danger_level"),
        "object_type": g(verdict, "object_type"), "onset_s": g(verdict, "onset_s"),
        "reason": g(verdict, "reason") or "", "status": status,
        "latency_s": latency_s, "model_s": model_s, "decode_s": decode_s, "preprocess_s": g(call, "preprocess_s"),
        "generate_s": g(call, "generate_s"), "prompt_tokens": g(call, "prompt_tokens"),
        "completion_tokens": g(call, "completion_tokens"), "device": g(call, "device"),
        "error": error if error is not None else (g(verdict, "reason") if status == "error" else None),
        "cached": bool(cached), "extra": dict(extra or {}),
    }
    return rec


# -- writing --------------------------------------------------------------------------------------
class RunFolderWriter:
    """Write one run folder. ``add`` is thread-safe (a remote engine's runner answers N videos at once).

    Opening a folder that already holds *this* run's manifest (same ``run_id``) reopens it to append
    (a resumed run); a folder holding another run's manifest is refused."""

    def __init__(self, folder: str | os.PathLike[str], manifest: dict[str, Any]):
        self.folder = Path(folder)
        m = normalise_manifest(manifest)
        why = manifest_problem(m)
        if why:
            raise RunFolderError(f"The run manifest {why}.")
        if self.folder.exists() and not self.folder.is_dir():
            raise RunFolderError(f"{self.folder} is a file, not a folder for a run.")
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise RunFolderError(f"Cannot create the run folder {self.folder}: {e.strerror or e}.") from None
        self.manifest_path = self.folder / MANIFEST
        self.predictions_path = self.folder / PREDICTIONS
        if self.manifest_path.exists():
            try:
                old = json.loads(self.manifest_path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                raise RunFolderError(f"{self.manifest_path} exists and is not a readable run manifest; "
                                     "choose an empty folder.") from None
            if not isinstance(old, dict) or old.get("run_id") != m["run_id"]:
                other = old.get("run_id") if isinstance(old, dict) else None
                raise RunFolderError(f"{self.folder} already holds run {other or 'of unknown id'}; "
                                     f"choose an empty folder for run {m['run_id']}.")
            m["created_at"] = old.get("created_at") or m["created_at"]
            m["status"] = "running"
            m["finished_at"] = None
        elif self.predictions_path.exists() and self.predictions_path.stat().st_size:
            raise RunFolderError(f"{self.folder} holds predictions without a manifest; choose an empty folder.")
        self.manifest = m
        self._lock = threading.Lock()
        self.count = 0
        _atomic_write_json(self.manifest_path, self.manifest)
        self._f = open(self.predictions_path, "a", encoding="utf-8")

    def add(self, record: dict[str, Any]) -> None:
        """Append one record (one line), flushed and fsynced before returning."""
        why = record_problem(record)
        if why:
            raise RunFolderError(f"A prediction record {why}.")
        line = json.dumps(record, ensure_ascii=False, sort_keys=True, default=str)
        if "\n" in line:  # json.dumps never emits a raw newline; guard against a custom default
            raise RunFolderError("A prediction record does not fit on one line.")
        with self._lock:
            if self._f.closed:
                raise RunFolderError(f"The run folder {self.folder} is closed.")
            self._f.write(line + "\n")
            self._f.flush()
            os.fsync(self._f.fileno())
            self.count += 1

    def close(self, status: str = "done", summary: dict[str, Any] | None = None) -> dict[str, Any]:
        """Finish the run: the manifest gets its final status, finish time and summary (atomically)."""
        status = "cancelled" if status == "canceled" else status
        if status not in MANIFEST_STATUSES or status == "running":
            raise RunFolderError(f"A finished run's status is one of done, partial, failed, cancelled, not '{status}'.")
        with self._lock:
            if not self._f.closed:
                self._f.close()
            self.manifest.update(status=status, finished_at=now_iso(), summary=dict(summary or {}))
            _atomic_write_json(self.manifest_path, self.manifest)
        return self.manifest

    def __enter__(self) -> "RunFolderWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if not self._f.closed:
            self.close("failed" if exc_type else "done",
                       {"error": str(exc)} if exc is not None else {"written": self.count})


# -- reading --------------------------------------------------------------------------------------
def read_manifest(folder: str | os.PathLike[str]) -> dict[str, Any]:
    folder = Path(folder)
    if not folder.exists():
        raise RunFolderError(f"The run folder {folder} does not exist.")
    if not folder.is_dir():
        raise RunFolderError(f"{folder} is not a folder; a run folder holds manifest.json and predictions.jsonl.")
    path = folder / MANIFEST
    if not path.exists():
        raise RunFolderError(f"{folder} has no manifest.json, so it is not a GhostProbe run folder.")
    try:
        m = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise RunFolderError(f"{path} is not UTF-8 text.") from None
    except ValueError as e:
        raise RunFolderError(f"{path} is not valid JSON ({e.msg} at line {e.lineno}).") from None
    why = manifest_problem(m)
    if why:
        raise RunFolderError(f"{path} {why}.")
    return normalise_manifest(m)


def read_run_folder(folder: str | os.PathLike[str]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(manifest, records) with every line checked: a bad line is one sentence with its number.

    Records are returned in file order, duplicates included (see :func:`latest_records`). A last line
    without its newline (a writer killed mid-line) is a bad line too: nothing is guessed."""
    folder = Path(folder)
    manifest = read_manifest(folder)
    path = folder / PREDICTIONS
    records: list[dict[str, Any]] = []
    if not path.exists():
        return manifest, records
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as e:
        line_no = path.read_bytes()[: e.start].count(b"\n") + 1
        raise RunFolderError(f"{PREDICTIONS} line {line_no} is not UTF-8 text.") from None
    lines = text.split("\n")
    for i, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        if i == len(lines):  # text after the last newline: a torn write
            raise RunFolderError(f"{PREDICTIONS} line {i} is cut short (no end of line): the writer stopped "
                                 "mid-record.")
        try:
            rec = json.loads(line)
        except ValueError as e:
            raise RunFolderError(f"{PREDICTIONS} line {i} is not valid JSON ({e.msg}).") from None
        why = record_problem(rec)
        if why:
            raise RunFolderError(f"{PREDICTIONS} line {i} {why}.")
        records.append(rec)
    return manifest, records


def latest_records(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One record per video: the last line wins (a retried mini-batch appends its videos again)."""
    by_id: dict[str, dict[str, Any]] = {}
    for r in records:
        by_id.pop(r["video_id"], None)
        by_id[r["video_id"]] = r
    return list(by_id.values())


def records_from_run(store: Any, run_id: str) -> list[dict[str, Any]]:
    """A run's predictions from the store as records (to write a folder after the fact)."""
    rows = store.query("SELECT * FROM predictions WHERE run_id = ? ORDER BY video_id", [run_id])
    out = []
    for r in rows:
        verdict = {k: r.get(k) for k in ("ghost_probing", "confidence", "danger_level", "object_type", "onset_s",
                                         "reason", "status")}
        verdict["raw"] = r.get("raw")
        rec = make_record(r["video_id"], r.get("sha256"), verdict, r, cached=bool(r.get("cached")),
                          error=r.get("error"))
        rec["latency_s"], rec["model_s"] = r.get("latency_s"), r.get("model_s")
        out.append(rec)
    return out


# -- ingesting ------------------------------------------------------------------------------------
def _prompt_tuple(prompt: dict[str, Any] | None) -> tuple[str | None, str | None, str | None]:
    if not prompt:
        return None, None, None
    ref = prompt.get("ref") or ""
    pid, _, ver = ref.partition("@")
    return pid or None, ver or None, prompt.get("hash")


def _same(stored: dict[str, Any], rec: dict[str, Any]) -> bool:
    return (stored.get("status") == rec["status"] and (stored.get("raw") or "") == (rec.get("response") or "")
            and stored.get("ghost_probing") == rec.get("ghost_probing"))


def _model_s(rec: dict[str, Any]) -> float | None:
    if rec.get("model_s") is not None:
        return rec["model_s"]
    lat, dec = rec.get("latency_s"), rec.get("decode_s")
    if lat is None:
        return None
    return max(0.0, lat - (dec or 0.0))


def ingest(store: Any, folder: str | os.PathLike[str], job_id: str | None = None,
           name: str | None = None) -> str:
    """Turn a run folder into a run (engine identity, prompt, label set and options of its manifest) and
    return the run id. Everything is read and checked before anything is written. Idempotent."""
    from reports import runs as R

    folder = Path(folder)
    manifest, records = read_run_folder(folder)
    records = latest_records(records)
    ident = manifest["identity"]
    origin = manifest["run_id"]
    job_id = job_id or manifest.get("job_id")

    from engines.base import EngineIdentity
    from reports.responses import log_many, row_values

    identity = EngineIdentity.from_dict(ident)
    prompt = manifest.get("prompt") or {}
    known = store.query("SELECT run_id FROM run_folders WHERE origin = ?", [origin])
    run_id = known[0]["run_id"] if known else None
    if run_id and not store.scalar("SELECT count(*) FROM runs WHERE run_id = ?", [run_id]):
        run_id = None  # the run was deleted since: ingest again
    if run_id is None:
        notes = f"ingested from a run folder (origin run {origin}, status {manifest['status']})"
        run_id = R.create_run(
            store, engine=ident["engine"], model=ident.get("model"), revision=ident.get("revision"),
            prompt=_prompt_tuple(manifest.get("prompt")), options=manifest.get("options") or {},
            sampling=manifest.get("sampling") or {}, label_set=manifest.get("label_set"),
            selection=manifest.get("selection") or [r["video_id"] for r in records],
            location=manifest.get("location"), instances=int(manifest.get("instances") or 1),
            name=name, status="imported", notes=notes, engine_kind=ident.get("kind"), identity=identity,
            endpoint=ident.get("endpoint"), planned=manifest.get("planned"), job_id=job_id,
            output_dir=str(folder.resolve()))
    id_map = R.label_id_map(store, manifest.get("label_set"))
    stored = {r["video_id"]: r for r in store.query(
        "SELECT video_id, status, raw, ghost_probing FROM predictions WHERE run_id = ?", [run_id])}
    rows = []
    for rec in records:
        vid = id_map.get(R.video_key(rec["video_id"]), rec["video_id"])
        if vid in stored and _same(stored[vid], rec):
            continue  # already ingested: never twice
        verdict = {k: rec.get(k) for k in ("ghost_probing", "confidence", "danger_level", "object_type",
                                           "onset_s", "reason", "status")}
        verdict["raw"] = rec.get("response") or ""
        rows.append(row_values(
            kind="import", engine=ident["engine"], verdict=verdict, run_id=run_id, video_id=vid,
            sha256=rec.get("sha256"), engine_kind=ident.get("kind"), model=ident.get("model"),
            revision=ident.get("revision"), endpoint=ident.get("endpoint"), identity=ident,
            identity_hash=identity.digest(), prompt_hash=prompt.get("hash"),
            options=manifest.get("options") or {}, sampling=manifest.get("sampling") or {},
            response=rec.get("response") or "", latency_s=rec.get("latency_s"), decode_s=rec.get("decode_s"),
            preprocess_s=rec.get("preprocess_s"), generate_s=rec.get("generate_s"), model_s=_model_s(rec),
            prompt_tokens=rec.get("prompt_tokens"), completion_tokens=rec.get("completion_tokens"),
            device=rec.get("device"), error=rec.get("error"), cached=bool(rec.get("cached")),
            extra={**(rec.get("extra") or {}), "origin_run": origin, **({"job_id": job_id} if job_id else {})}))
    if rows:
        log_many(store, rows)
    R.finish_run(store, run_id, "imported")
    with store.write() as cur:
        cur.execute("INSERT OR REPLACE INTO run_folders (origin, run_id, job_id, folder, records, status, ingested_at) "
                    "VALUES (?, ?, ?, ?, ?, ?, current_timestamp)",
                    [origin, run_id, job_id, str(folder.resolve()), len(records), manifest["status"]])
        if job_id:
            cur.execute("UPDATE runs SET job_id = ? WHERE run_id = ?", [job_id, run_id])
            cur.execute("UPDATE jobs SET run_id = ? WHERE job_id = ?", [run_id, job_id])
    return run_id
