"""What a run cost, from measured model time or measured tokens and a price catalogue.

- The catalogue ships as data (``reports/data/prices.csv``) and is seeded into the ``prices``
  table on first use. A row a person edited (``edited = true``) is never overwritten.
- Hourly-priced locations: cost = (sum of ``latency_s`` of the run's uncached model calls)
  × usd_per_hour / 3600 × instances. Cached answers cost 0: no model ran.
- Token-priced APIs: cost = prompt_tokens × input price + completion_tokens × output price.
- A run whose location has no price, or whose uncached predictions lack the measured latency
  (hourly) or token counts (tokens), costs ``None`` ("unknown") with a sentence saying why —
  never 0.

Locations name a catalogue row as ``provider:sku:region``, ``provider:sku`` or ``sku`` (case-
insensitive), e.g. ``azure:Standard_NC24s_v3:eastus``, ``aws:ml.g5.xlarge``, ``openai:gpt-4o``,
``local-cuda``.
"""

from __future__ import annotations

import csv
import weakref
from datetime import date
from pathlib import Path
from typing import Any

from reports.runs import RunError, get_run
from reports.store import Store

CATALOGUE = Path(__file__).resolve().parent / "data" / "prices.csv"
PRICE_FIELDS = ("gpus", "gpu_type", "usd_per_hour", "usd_per_1m_input_tokens", "usd_per_1m_output_tokens",
                "source", "as_of")
_seeded: "weakref.WeakSet[Store]" = weakref.WeakSet()


def _num(v: str | None, kind=float) -> Any:
    v = (v or "").strip()
    return kind(v) if v else None


def load_catalogue(path: Path = CATALOGUE) -> list[dict[str, Any]]:
    with open(path, newline="", encoding="utf-8") as f:
        rows = []
        for r in csv.DictReader(f):
            rows.append({
                "provider": r["provider"].strip(), "sku": r["sku"].strip(), "region": (r.get("region") or "").strip(),
                "gpus": _num(r.get("gpus"), int), "gpu_type": (r.get("gpu_type") or "").strip() or None,
                "usd_per_hour": _num(r.get("usd_per_hour")),
                "usd_per_1m_input_tokens": _num(r.get("usd_per_1m_input_tokens")),
                "usd_per_1m_output_tokens": _num(r.get("usd_per_1m_output_tokens")),
                "source": (r.get("source") or "").strip() or None,
                "as_of": date.fromisoformat(r["as_of"].strip()) if (r.get("as_of") or "").strip() else None,
                "notes": (r.get("notes") or "").strip() or None,
            })
    return rows


def _catalogue_notes() -> dict[tuple[str, str, str], str | None]:
    return {(r["provider"], r["sku"], r["region"]): r["notes"] for r in load_catalogue()}


def ensure_prices(store: Store, force: bool = False) -> int:
    """Seed / refresh catalogue rows that nobody edited. Returns rows written. Once per store."""
    if store in _seeded and not force:
        return 0
    rows = load_catalogue()
    written = 0
    with store.write() as cur:
        for r in rows:
            key = [r["provider"], r["sku"], r["region"]]
            cur_row = cur.execute(f"SELECT edited, {', '.join(PRICE_FIELDS)} FROM prices "
                                  "WHERE provider = ? AND sku = ? AND region = ?", key).fetchone()
            vals = [r[f] for f in PRICE_FIELDS]
            if cur_row is None:
                cur.execute(f"INSERT INTO prices (provider, sku, region, {', '.join(PRICE_FIELDS)}, edited) "
                            f"VALUES (?, ?, ?, {', '.join('?' * len(PRICE_FIELDS))}, false)", key + vals)
                written += 1
            elif not cur_row[0] and list(cur_row[1:]) != vals:
                cur.execute(f"UPDATE prices SET {', '.join(f + ' = ?' for f in PRICE_FIELDS)} "
                            "WHERE provider = ? AND sku = ? AND region = ?", vals + key)
                written += 1
    _seeded.add(store)
    return written


def list_prices(store: Store) -> list[dict[str, Any]]:
    ensure_prices(store)
    notes = _catalogue_notes()
    rows = store.query("SELECT * FROM prices ORDER BY provider, sku, region")
    for r in rows:
        r["notes"] = "edited by a person" if r["edited"] else notes.get((r["provider"], r["sku"], r["region"]))
        r["location"] = ":".join(x for x in (r["provider"], r["sku"], r["region"]) if x)
    return rows


def set_price(store: Store, provider: str, sku: str, region: str = "", **fields: Any) -> dict[str, Any]:
    """Create or edit a price row; it is marked edited so the catalogue never overwrites it."""
    bad = set(fields) - set(PRICE_FIELDS)
    if bad:
        raise RunError(f"Unknown price field {', '.join(sorted(bad))}; use {', '.join(PRICE_FIELDS)}.")
    for k in ("usd_per_hour", "usd_per_1m_input_tokens", "usd_per_1m_output_tokens"):
        v = fields.get(k)
        if v is not None and (not isinstance(v, (int, float)) or v < 0 or v != v):
            raise RunError(f"{k} must be a non-negative number of US dollars.")
    provider, sku, region = provider.strip(), sku.strip(), (region or "").strip()
    if not provider or not sku:
        raise RunError("A price needs a provider and a SKU.")
    ensure_prices(store)
    fields.setdefault("source", "edited by a person")
    fields.setdefault("as_of", date.today())
    key = [provider, sku, region]
    with store.write() as cur:
        exists = cur.execute("SELECT 1 FROM prices WHERE provider = ? AND sku = ? AND region = ?", key).fetchone()
        if exists:
            sets = ", ".join(f"{k} = ?" for k in fields)
            cur.execute(f"UPDATE prices SET {sets}, edited = true WHERE provider = ? AND sku = ? AND region = ?",
                        [*fields.values(), *key])
        else:
            cols = ", ".join(fields)
            cur.execute(f"INSERT INTO prices (provider, sku, region, {cols}, edited) "
                        f"VALUES (?, ?, ?, {', '.join('?' * len(fields))}, true)", [*key, *fields.values()])
    return store.query("SELECT * FROM prices WHERE provider = ? AND sku = ? AND region = ?", key)[0]


def find_price(store: Store, location: str | None) -> tuple[dict[str, Any] | None, str | None]:
    """The catalogue row a location names, or (None, why not)."""
    if not location or not str(location).strip():
        return None, "the run does not say where it ran"
    ensure_prices(store)
    parts = [p.strip().lower() for p in str(location).split(":")]
    rows = store.query("SELECT * FROM prices")
    low = [(r, r["provider"].lower(), r["sku"].lower(), (r["region"] or "").lower()) for r in rows]
    if len(parts) >= 3:
        cand = [r for r, p, s, g in low if p == parts[0] and s == parts[1] and g == ":".join(parts[2:])]
    elif len(parts) == 2:
        cand = [r for r, p, s, g in low if p == parts[0] and s == parts[1]]
        if not cand:  # sku:region
            cand = [r for r, p, s, g in low if s == parts[0] and g == parts[1]]
    else:
        cand = [r for r, p, s, g in low if s == parts[0]]
    if not cand:
        return None, f"no price is set for location '{location}'"
    if len(cand) > 1:
        where = ", ".join(":".join(x for x in (r["provider"], r["sku"], r["region"]) if x) for r in cand)
        return None, f"location '{location}' matches several prices ({where}); name one exactly"
    return cand[0], None


_AGG_SQL = """
    SELECT run_id, count(*) AS videos,
           count(*) FILTER (WHERE cached) AS cached,
           count(*) FILTER (WHERE NOT coalesce(cached, false)) AS calls,
           sum(latency_s) FILTER (WHERE NOT coalesce(cached, false)) AS billable_s,
           count(*) FILTER (WHERE NOT coalesce(cached, false) AND latency_s IS NULL) AS missing_latency,
           sum(prompt_tokens) FILTER (WHERE NOT coalesce(cached, false)) AS prompt_tokens,
           sum(completion_tokens) FILTER (WHERE NOT coalesce(cached, false)) AS completion_tokens,
           count(*) FILTER (WHERE NOT coalesce(cached, false)
                            AND (prompt_tokens IS NULL OR completion_tokens IS NULL)) AS missing_tokens
    FROM predictions {where} GROUP BY run_id"""


def _cost(run: dict[str, Any], agg: dict[str, Any], price: dict[str, Any] | None, why: str | None) -> dict[str, Any]:
    videos = int(agg.get("videos") or 0)
    calls = int(agg.get("calls") or 0)
    instances = int(run.get("instances") or 1)
    out: dict[str, Any] = {
        "run_id": run["run_id"], "location": run.get("location"), "instances": instances,
        "videos": videos, "model_calls": calls, "cached": int(agg.get("cached") or 0),
        "billable_s": agg.get("billable_s"), "prompt_tokens": agg.get("prompt_tokens"),
        "completion_tokens": agg.get("completion_tokens"),
        "price": None if price is None else {k: price.get(k) for k in (
            "provider", "sku", "region", "gpus", "gpu_type", "usd_per_hour", "usd_per_1m_input_tokens",
            "usd_per_1m_output_tokens", "source", "as_of", "edited")},
        "basis": None, "usd": None, "usd_per_video": None, "usd_per_call": None, "reason": None,
    }
    if videos and calls == 0:  # every answer came from the cache: no model ran, nothing billed
        out.update(usd=0.0, usd_per_video=0.0, basis="cached")
        return out
    if price is None:
        out["reason"] = f"Cost unknown: {why}."
        return out
    if price.get("usd_per_hour") is not None:
        out["basis"] = "hourly"
        missing = int(agg.get("missing_latency") or 0)
        if missing:
            out["reason"] = f"Cost unknown: {missing} of {calls} model calls have no measured latency."
            return out
        usd = float(agg.get("billable_s") or 0.0) * float(price["usd_per_hour"]) / 3600.0 * instances
    elif price.get("usd_per_1m_input_tokens") is not None and price.get("usd_per_1m_output_tokens") is not None:
        out["basis"] = "tokens"
        missing = int(agg.get("missing_tokens") or 0)
        if missing:
            out["reason"] = f"Cost unknown: {missing} of {calls} model calls have no token counts."
            return out
        usd = (float(agg.get("prompt_tokens") or 0) * float(price["usd_per_1m_input_tokens"])
               + float(agg.get("completion_tokens") or 0) * float(price["usd_per_1m_output_tokens"])) / 1e6
    else:
        loc = ":".join(x for x in (price["provider"], price["sku"], price["region"]) if x)
        out["reason"] = f"Cost unknown: the price of {loc} is not set (`ghostprobe prices set`)."
        return out
    if videos == 0:
        out["reason"] = "Cost unknown: the run has no predictions yet."
        return out
    out["usd"] = usd
    out["usd_per_video"] = usd / videos
    out["usd_per_call"] = usd / calls if calls else None
    return out


def _run_aggs(store: Store, run_ids: list[str]) -> dict[str, dict[str, Any]]:
    """run_id → cost sums (_AGG_SQL), cached per run by reports.metrics' run tokens: only runs whose
    predictions changed are summed again, each through its id range."""
    from reports import metrics as M

    st = M._state(store)
    memo = M._memo(store)["cost"]
    with M._MEMO_LOCK:
        stale = [rid for rid in run_ids if rid not in memo or memo[rid][0] != st["tok"].get(rid)]
    if stale:
        fresh: dict[str, dict[str, Any]] = {}
        for i in range(0, len(stale), 500):
            part = stale[i:i + 500]
            cond, params = M._run_filter(st, part, col="run_id", id_col="response_id")
            fresh.update({a["run_id"]: a for a in store.query(_AGG_SQL.format(where="WHERE " + cond), params)})
        with M._MEMO_LOCK:
            for rid in stale:
                memo[rid] = (st["tok"].get(rid), fresh.get(rid, {}))
    with M._MEMO_LOCK:
        return {rid: memo[rid][1] for rid in run_ids}


def run_cost(store: Store, run_id: str) -> dict[str, Any]:
    """Cost of one run (id or name): usd, usd_per_video, usd_per_call — or None with ``reason``."""
    from reports.metrics import _run_row

    run = _run_row(store, run_id)
    agg = _run_aggs(store, [run["run_id"]])[run["run_id"]]
    price, why = find_price(store, run.get("location"))
    return _cost(run, agg, price, why)


def runs_costs(store: Store, run_ids: list[str] | None = None) -> dict[str, dict[str, Any]]:
    """Costs of many runs: run_id → cost dict (sums cached per run, see :func:`_run_aggs`)."""
    ensure_prices(store)
    if run_ids is not None and not run_ids:
        return {}
    where, params = "", []
    if run_ids is not None:
        where, params = f"WHERE run_id IN ({', '.join('?' * len(run_ids))})", list(run_ids)
    runs = store.query(f"SELECT run_id, location, instances FROM runs {where}", params)
    aggs = _run_aggs(store, [r["run_id"] for r in runs])
    memo: dict[str | None, tuple] = {}
    out = {}
    for r in runs:
        loc = r.get("location")
        if loc not in memo:
            memo[loc] = find_price(store, loc)
        out[r["run_id"]] = _cost(r, aggs.get(r["run_id"], {}), *memo[loc])
    return out


def video_costs(store: Store, run_id: str) -> list[dict[str, Any]]:
    """Per video: usd (0 for a cached answer) or None when unknown, with the run's basis."""
    run = get_run(store, run_id)
    price, _ = find_price(store, run.get("location"))
    inst = int(run.get("instances") or 1)
    rows = store.query("""SELECT video_id, cached, latency_s, prompt_tokens, completion_tokens FROM predictions
                          WHERE run_id = ? ORDER BY video_id""", [run["run_id"]])
    for r in rows:
        usd = None
        if r["cached"]:
            usd = 0.0  # no model ran
        elif price is not None and price.get("usd_per_hour") is not None:
            if r["latency_s"] is not None:
                usd = r["latency_s"] * price["usd_per_hour"] / 3600.0 * inst
        elif price is not None and price.get("usd_per_1m_input_tokens") is not None \
                and price.get("usd_per_1m_output_tokens") is not None:
            if r["prompt_tokens"] is not None and r["completion_tokens"] is not None:
                usd = (r["prompt_tokens"] * price["usd_per_1m_input_tokens"]
                       + r["completion_tokens"] * price["usd_per_1m_output_tokens"]) / 1e6
        r["usd"] = usd
    return rows
