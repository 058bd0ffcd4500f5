"""Cloud jobs and endpoints: their state, every change of state with its time, and cost so far.

Tables ``jobs`` and ``job_events`` (migration ``m011_jobs``). A job is an Azure ML command/parallel job
(kind ``job``), a SageMaker batch transform job (``transform``) or an online endpoint (``endpoint``);
each backend maps its provider's words onto one state machine::

    queued ──▶ running ──▶ completed | failed | canceled        (jobs, transform jobs)
    queued ──▶ running ──▶ failed | deleted                      (endpoints: Creating → InService → …)

(``queued`` may also go straight to a final state, and ``running`` back to ``queued`` when the provider
re-queues a preempted job.) Final states are final: a later report that disagrees is ignored. Every
change is one row of ``job_events`` with the time it happened (the provider's time when it says,
else the time we saw it).

Cost so far = hours running (started → ended, or → now while running) × instance count × the
catalogue's ``usd_per_hour`` for the job's location (``azure:Standard_NC24s_v3``, ``aws:ml.g4dn.xlarge``).
A location with no price gives ``None`` ("unknown") and a sentence — never 0. Time spent queued is
not billed by either provider for jobs (nodes are allocated when the job starts).
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

from engines.errors import GhostProbeError
from reports.store import Store, decode_json_columns

STATES = ("queued", "running", "completed", "failed", "canceled", "deleted")
FINAL = frozenset({"completed", "failed", "canceled", "deleted"})
KINDS = ("job", "endpoint", "transform")
BACKENDS = ("azureml", "sagemaker")
_ALLOWED = {
    "queued": {"running", "completed", "failed", "canceled", "deleted"},
    "running": {"queued", "completed", "failed", "canceled", "deleted"},
}
STATE_NAMES = {"queued": "排队中", "running": "运行中", "completed": "已完成", "failed": "失败",
               "canceled": "已取消", "deleted": "已删除"}


class JobError(GhostProbeError):
    """A job that cannot be found or changed as asked (one sentence)."""


def utcnow() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


def to_utc(t: Any) -> datetime | None:
    """A naive UTC datetime from a datetime (aware or naive UTC), an ISO string or None."""
    if t is None or t == "":
        return None
    if isinstance(t, str):
        s = t.strip().replace("Z", "+00:00")
        t = datetime.fromisoformat(s)
    if not isinstance(t, datetime):
        raise JobError(f"{t!r} is not a time.")
    if t.tzinfo is not None:
        t = t.astimezone(timezone.utc).replace(tzinfo=None)
    return t


def _json(v: Any) -> str | None:
    return None if v is None else json.dumps(v, ensure_ascii=False, sort_keys=True, default=str)


def _decode(row: dict[str, Any]) -> dict[str, Any]:
    return decode_json_columns(row, ("spec",))


# -- records --------------------------------------------------------------------------------------
def add_job(store: Store, *, job_id: str, backend: str, kind: str, name: str, state: str = "queued",
            provider_state: str | None = None, compute: str | None = None, instance_type: str | None = None,
            instance_count: int | None = None, location: str | None = None, created_at: Any = None,
            url: str | None = None, spec: dict[str, Any] | None = None, message: str | None = None) -> dict[str, Any]:
    """Record a job we submitted (or found) with its first state. A job already recorded is left as it
    is (its state moves only through :func:`record_state`); returns the stored row.

    An endpoint recorded as ``deleted`` and created again under the same name (``created_at`` after the
    old one ended) is a new life: the old record and its history move to ``<job_id>@<ended>`` (kept, with
    its cost) and the new one starts from ``state``."""
    if backend not in BACKENDS:
        raise JobError(f"A job's backend is one of {', '.join(BACKENDS)}, not '{backend}'.")
    if kind not in KINDS:
        raise JobError(f"A job's kind is one of {', '.join(KINDS)}, not '{kind}'.")
    if state not in STATES:
        raise JobError(f"A job's state is one of {', '.join(STATES)}, not '{state}'.")
    at = to_utc(created_at) or utcnow()
    with store.write() as cur:
        row = cur.execute("SELECT state, ended_at FROM jobs WHERE job_id = ?", [job_id]).fetchone()
        if row is not None and row[0] == "deleted" and row[1] is not None and at > to_utc(row[1]):
            _archive(cur, job_id, to_utc(row[1]))
            row = None
        if row is None:
            cur.execute(
                """INSERT INTO jobs (job_id, backend, kind, name, state, provider_state, compute, instance_type,
                                     instance_count, location, created_at, started_at, ended_at, refreshed_at, url,
                                     spec, message)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
                [job_id, backend, kind, name, state, provider_state, compute, instance_type,
                 None if instance_count is None else int(instance_count), location, at,
                 at if state == "running" else None, at if state in FINAL else None, utcnow(), url, _json(spec),
                 message])
            cur.execute('INSERT INTO job_events (job_id, "at", state, message) VALUES (?, ?, ?, ?)',
                        [job_id, at, state, message or provider_state])
    return get_job(store, job_id)


def _archive(cur: Any, job_id: str, ended: datetime) -> None:
    """Move a finished record and its events to ``<job_id>@<ended>`` (a unique suffix if that exists)."""
    base = f"{job_id}@{ended:%Y%m%dT%H%M%SZ}"
    new_id, n = base, 1
    while cur.execute("SELECT 1 FROM jobs WHERE job_id = ?", [new_id]).fetchone():
        n += 1
        new_id = f"{base}-{n}"
    cols = [r[0] for r in cur.execute("SELECT column_name FROM information_schema.columns "
                                      "WHERE table_name = 'jobs' ORDER BY ordinal_position").fetchall()]
    rest = ", ".join(c for c in cols if c != "job_id")
    cur.execute(f"INSERT INTO jobs (job_id, {rest}) SELECT ?, {rest} FROM jobs WHERE job_id = ?", [new_id, job_id])
    cur.execute("UPDATE job_events SET job_id = ? WHERE job_id = ?", [new_id, job_id])
    cur.execute("DELETE FROM jobs WHERE job_id = ?", [job_id])


def record_state(store: Store, job_id: str, state: str, *, at: Any = None, provider_state: str | None = None,
                 message: str | None = None, started_at: Any = None, ended_at: Any = None,
                 instance_count: int | None = None) -> bool:
    """Apply one observed state. Returns True when the state changed (and an event was recorded).

    ``started_at`` / ``ended_at`` are the provider's times when it reports them; otherwise entering
    ``running`` stamps the start and entering a final state stamps the end with ``at`` (default now)."""
    if state not in STATES:
        raise JobError(f"A job's state is one of {', '.join(STATES)}, not '{state}'.")
    at_t = to_utc(at) or utcnow()
    with store.write() as cur:
        row = cur.execute("SELECT state, started_at, ended_at FROM jobs WHERE job_id = ?", [job_id]).fetchone()
        if row is None:
            raise JobError(f"No job has the id '{job_id}'; `ghostprobe jobs list` shows them.")
        old, old_start, old_end = row
        sets: dict[str, Any] = {"refreshed_at": utcnow()}
        if provider_state is not None:
            sets["provider_state"] = provider_state
        if instance_count is not None:
            sets["instance_count"] = int(instance_count)
        changed = state != old and state in _ALLOWED.get(old, set())
        start = to_utc(started_at)
        end = to_utc(ended_at)
        if changed or state == old:
            if message is not None:
                sets["message"] = message
            if start is not None and old_start is None:
                sets["started_at"] = start
            if end is not None and old_end is None and state in FINAL:
                sets["ended_at"] = end
        if changed:
            sets["state"] = state
            if state == "running" and old_start is None and "started_at" not in sets:
                sets["started_at"] = at_t
            if state in FINAL and old_end is None and "ended_at" not in sets:
                sets["ended_at"] = at_t
            if state == "running" and old_end is not None:
                sets["ended_at"] = None
        cols = ", ".join(f"{k} = ?" for k in sets)
        cur.execute(f"UPDATE jobs SET {cols} WHERE job_id = ?", [*sets.values(), job_id])
        if changed:
            cur.execute('INSERT INTO job_events (job_id, "at", state, message) VALUES (?, ?, ?, ?)',
                        [job_id, at_t, state, message or provider_state])
    return changed


def apply_status(store: Store, status: Any, *, provider_state: str | None = None,
                 instance_count: int | None = None) -> list[str]:
    """Apply a backend's :class:`engines.base.JobStatus`: each (time, state) of its history in order,
    then its current state. Returns the states entered now (empty when nothing changed)."""
    entered: list[str] = []
    for when, st in list(getattr(status, "history", None) or []):
        if st in STATES and record_state(store, status.job_id, st, at=when,
                                         started_at=status.started_at if st == "running" else None,
                                         ended_at=status.ended_at if st in FINAL else None):
            entered.append(st)
    at = status.ended_at if status.state in FINAL else (status.started_at if status.state == "running" else None)
    if record_state(store, status.job_id, status.state, at=at, provider_state=provider_state,
                    message=status.message or None, started_at=status.started_at, ended_at=status.ended_at,
                    instance_count=instance_count):
        entered.append(status.state)
    update_cost(store, status.job_id)
    return entered


def set_job_run(store: Store, job_id: str, run_id: str) -> None:
    with store.write() as cur:
        cur.execute("UPDATE jobs SET run_id = ? WHERE job_id = ?", [run_id, job_id])


def forget_job(store: Store, job_id: str) -> None:
    with store.write() as cur:
        cur.execute("DELETE FROM job_events WHERE job_id = ?", [job_id])
        cur.execute("DELETE FROM jobs WHERE job_id = ?", [job_id])


# -- reading --------------------------------------------------------------------------------------
def get_job(store: Store, ref: str) -> dict[str, Any]:
    """The job with this id, else the one whose id or provider name starts with ``ref`` (unique)."""
    ref = (ref or "").strip()
    if not ref:
        raise JobError("Name a job by its id (such as azureml:gp-eval-…) or its name.")
    rows = store.query("SELECT * FROM jobs WHERE job_id = ?", [ref])
    if not rows:
        rows = store.query("SELECT * FROM jobs WHERE name = ? ORDER BY created_at", [ref])
    if not rows and len(ref) >= 4:
        rows = store.query("SELECT * FROM jobs WHERE starts_with(job_id, ?) OR starts_with(name, ?) "
                           "ORDER BY created_at", [ref, ref])
    if not rows:
        raise JobError(f"No job has the id or name '{ref}'; `ghostprobe jobs list` shows them.")
    if len(rows) > 1:  # an endpoint deleted and created again: its earlier lives are <job_id>@<ended>
        current = [r for r in rows if "@" not in r["job_id"]]
        if len(current) == 1:
            return _decode(current[0])
        ids = ", ".join(r["job_id"] for r in rows[:5])
        raise JobError(f"'{ref}' matches {len(rows)} jobs ({ids}); name one by its job id.")
    return _decode(rows[0])


def events(store: Store, job_id: str) -> list[dict[str, Any]]:
    return store.query('SELECT "at", state, message FROM job_events WHERE job_id = ? ORDER BY "at", rowid',
                       [job_id])


def list_jobs(store: Store, *, kind: str | None = None, backend: str | None = None,
              active: bool | None = None) -> list[dict[str, Any]]:
    """Jobs and endpoints, newest first. ``active=True``: only those not in a final state."""
    where, params = [], []
    if kind:
        where.append("kind = ?")
        params.append(kind)
    if backend:
        where.append("backend = ?")
        params.append(backend)
    if active is not None:
        where.append(("state NOT IN " if active else "state IN ") + f"({', '.join('?' * len(FINAL))})")
        params += sorted(FINAL)
    sql = "SELECT * FROM jobs" + (" WHERE " + " AND ".join(where) if where else "") + \
        " ORDER BY created_at DESC, job_id"
    return [_decode(r) for r in store.query(sql, params)]


def any_active(store: Store) -> bool:
    return bool(store.scalar(f"SELECT count(*) FROM jobs WHERE state NOT IN ({', '.join('?' * len(FINAL))})",
                             sorted(FINAL)))


# -- duration and cost ----------------------------------------------------------------------------
def duration_s(job: dict[str, Any], now: datetime | None = None) -> float | None:
    """Seconds running: started → ended (or → now while it runs); None before it started."""
    start = to_utc(job.get("started_at"))
    if start is None:
        return None
    end = to_utc(job.get("ended_at"))
    if end is None:
        end = (now or utcnow()) if job.get("state") not in FINAL else to_utc(job.get("refreshed_at")) or start
    return max(0.0, (end - start).total_seconds())


def job_cost(store: Store, job: dict[str, Any], now: datetime | None = None) -> tuple[float | None, str]:
    """(usd so far, how it was computed) — or (None, why it is unknown)."""
    from reports.costs import find_price

    loc = job.get("location")
    price, why = find_price(store, loc)
    if price is None:
        return None, f"Cost unknown: {why}."
    rate = price.get("usd_per_hour")
    if rate is None:
        where = ":".join(x for x in (price["provider"], price["sku"], price["region"]) if x)
        return None, f"Cost unknown: the hourly price of {where} is not set (`ghostprobe prices set`)."
    count = int(job.get("instance_count") or 1)
    secs = duration_s(job, now)
    if secs is None:
        return 0.0, f"not started yet: {count} × {loc} at ${float(rate):g}/h"
    usd = secs / 3600.0 * count * float(rate)
    src = f" ({price.get('source')}, {price.get('as_of')})" if price.get("source") else ""
    return usd, f"{secs / 3600.0:.3f} h × {count} × ${float(rate):g}/h{src}"


def update_cost(store: Store, job_id: str) -> tuple[float | None, str]:
    job = get_job(store, job_id)
    usd, note = job_cost(store, job)
    with store.write() as cur:
        cur.execute("UPDATE jobs SET cost_usd = ?, cost_note = ? WHERE job_id = ?", [usd, note, job_id])
    return usd, note


def fmt_duration(secs: float | None) -> str:
    if secs is None:
        return "—"
    secs = int(round(secs))
    h, rem = divmod(secs, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else (f"{m}m{s:02d}s" if m else f"{s}s")
