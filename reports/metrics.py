"""Accuracy metrics with their confidence intervals, computed from stored predictions and labels.

Rules (DESIGN.md, "the one rule above all"):

- Every figure names its label set and its count ``n``; every proportion carries a 95% Wilson
  score interval (``<metric>_ci: [lo, hi]``). Undefined figures (0/0) are ``None``, never 0.
- An unparsed or errored answer is never a "no". Two policies, both always reported:
  ``counted_wrong`` (the default: an unparsed/errored answer on a positive video is a false
  negative, on a negative video a false positive) and ``excluded`` (left out of the matrix).
- Intervals for figures that are not plain proportions: balanced accuracy uses MOVER (Zou & Donner
  2008) over the Wilson intervals of recall and specificity; F1 maps the Wilson interval of the
  Jaccard index J = TP/(TP+FP+FN) through F1 = 2J/(1+J); AUROC uses the Hanley–McNeil (1982)
  standard error, clipped to [0, 1].
- AUROC scores the probability of ghost probing: ``confidence`` when the verdict says yes,
  ``1 - confidence`` when it says no; only parsed answers that carry a confidence are scored.
- Latency percentiles (linear interpolation) cover parsed and unparsed answers with a measured
  latency; errors are left out. A cached answer carries the latency of the call that produced it.
"""

from __future__ import annotations

import contextlib
import contextvars
import math
import threading
import weakref
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from reports.runs import RunError, get_run, video_key
from reports.store import Store, decode_json_columns

Z95 = 1.959963984540054
POLICIES = ("counted_wrong", "excluded")
CI_METHOD = {
    "proportions": "Wilson score 95%",
    "balanced_accuracy": "MOVER over Wilson intervals of recall and specificity",
    "f1": "Wilson interval of J=TP/(TP+FP+FN) mapped by F1=2J/(1+J)",
    "auroc": "Hanley-McNeil standard error, normal 95%, clipped to [0, 1]",
}


# -- elementary statistics -------------------------------------------------------------------------
def ratio(k: float, n: float) -> float | None:
    return None if not n else k / n


def wilson(k: int, n: int, z: float = Z95) -> list[float] | None:
    """Wilson score interval for k successes out of n; None when n == 0."""
    if not n:
        return None
    p = k / n
    z2 = z * z
    denom = 1 + z2 / n
    centre = (p + z2 / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / denom
    lo = 0.0 if k == 0 else max(0.0, centre - half)  # exact at the boundaries, no rounding residue
    hi = 1.0 if k == n else min(1.0, centre + half)
    return [lo, hi]


def mover_mean(p1: float | None, ci1: Sequence[float] | None, p2: float | None,
               ci2: Sequence[float] | None) -> list[float] | None:
    """95% interval of (p1 + p2) / 2 from the two proportions' intervals (MOVER)."""
    if p1 is None or p2 is None or ci1 is None or ci2 is None:
        return None
    theta = (p1 + p2) / 2
    lo = theta - math.sqrt((p1 - ci1[0]) ** 2 + (p2 - ci2[0]) ** 2) / 2
    hi = theta + math.sqrt((ci1[1] - p1) ** 2 + (ci2[1] - p2) ** 2) / 2
    return [max(0.0, lo), min(1.0, hi)]


def f1_interval(tp: int, fp: int, fn: int) -> list[float] | None:
    n = tp + fp + fn
    ci = wilson(tp, n)
    if ci is None:
        return None
    return [2 * ci[0] / (1 + ci[0]), 2 * ci[1] / (1 + ci[1])]


def binary_metrics(tp: int, fp: int, tn: int, fn: int) -> dict[str, Any]:
    """Every confusion-matrix figure with its 95% interval; 0/0 → None."""
    tp, fp, tn, fn = int(tp), int(fp), int(tn), int(fn)
    n = tp + fp + tn + fn
    out: dict[str, Any] = {"n": n, "tp": tp, "fp": fp, "tn": tn, "fn": fn,
                           "positives": tp + fn, "negatives": tn + fp}
    for name, k, d in (("accuracy", tp + tn, n), ("precision", tp, tp + fp), ("recall", tp, tp + fn),
                       ("specificity", tn, tn + fp), ("fpr", fp, fp + tn), ("fnr", fn, fn + tp)):
        out[name] = ratio(k, d)
        out[name + "_ci"] = wilson(k, d)
    out["f1"] = ratio(2 * tp, 2 * tp + fp + fn)
    out["f1_ci"] = f1_interval(tp, fp, fn)
    rec, spec = out["recall"], out["specificity"]
    out["balanced_accuracy"] = None if rec is None or spec is None else (rec + spec) / 2
    out["balanced_accuracy_ci"] = mover_mean(rec, out["recall_ci"], spec, out["specificity_ci"])
    return out


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value (binomial test of b vs c at p = 0.5); 1.0 when b + c == 0."""
    n = b + c
    if n == 0:
        return 1.0
    k = min(b, c)
    # P(X <= k) for X ~ Binomial(n, 1/2), exact in integers
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2 ** n
    return min(1.0, 2 * tail)


def _midranks(s: np.ndarray) -> np.ndarray:
    """1-based ranks with ties given their average rank (as scipy.stats.rankdata; scipy is slow to import)."""
    order = np.argsort(s, kind="mergesort")
    ss = s[order]
    edges = np.flatnonzero(np.r_[True, ss[1:] != ss[:-1], True])
    ranks_sorted = np.repeat((edges[:-1] + 1 + edges[1:]) / 2.0, np.diff(edges))
    ranks = np.empty_like(ranks_sorted)
    ranks[order] = ranks_sorted
    return ranks


def auroc(labels: Sequence[bool], scores: Sequence[float]) -> float | None:
    """Area under the ROC curve (Mann–Whitney U with mid-ranks for ties); None without both classes."""
    y = np.asarray(labels, dtype=bool)
    s = np.asarray(scores, dtype=float)
    n1, n0 = int(y.sum()), int((~y).sum())
    if n1 == 0 or n0 == 0:
        return None
    ranks = _midranks(s)
    return float((ranks[y].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def auroc_interval(auc: float | None, n_pos: int, n_neg: int) -> list[float] | None:
    if auc is None or not n_pos or not n_neg:
        return None
    q1 = auc / (2 - auc)
    q2 = 2 * auc * auc / (1 + auc)
    var = (auc * (1 - auc) + (n_pos - 1) * (q1 - auc * auc) + (n_neg - 1) * (q2 - auc * auc)) / (n_pos * n_neg)
    se = math.sqrt(max(var, 0.0))
    return [max(0.0, auc - Z95 * se), min(1.0, auc + Z95 * se)]


def ghost_score(ghost_probing: bool | None, confidence: float | None) -> float | None:
    """Probability of ghost probing implied by a verdict and its confidence."""
    if ghost_probing is None or confidence is None:
        return None
    c = min(1.0, max(0.0, float(confidence)))
    return c if ghost_probing else 1.0 - c


def percentiles(values: Iterable[float | None]) -> dict[str, Any]:
    v = np.asarray([x for x in values if x is not None], dtype=float)
    if v.size == 0:
        return {"p50": None, "p95": None, "mean": None, "n": 0}
    return {"p50": float(np.percentile(v, 50)), "p95": float(np.percentile(v, 95)),
            "mean": float(v.mean()), "n": int(v.size)}


def onset_error(pairs: Iterable[tuple[float | None, float | None]]) -> dict[str, Any]:
    """(label onset, predicted onset) pairs → median |Δt|, share within 1 s with interval, n."""
    d = np.asarray([abs(p - t) for t, p in pairs if t is not None and p is not None], dtype=float)
    n = int(d.size)
    if n == 0:
        return {"median_abs_s": None, "within_1s": None, "within_1s_ci": None, "n": 0}
    k = int((d <= 1.0).sum())
    return {"median_abs_s": float(np.median(d)), "within_1s": k / n, "within_1s_ci": wilson(k, n), "n": n}


# -- counting --------------------------------------------------------------------------------------
from reports.correctness import is_valid as _is_valid  # noqa: E402  (one definition of a valid answer)


def counts(rows: Iterable[dict[str, Any]]) -> dict[str, int]:
    """Base counts from rows {label, prediction, status}: matrix of parsed answers plus the rest."""
    c = dict(tp=0, fp=0, tn=0, fn=0, bad_pos=0, bad_neg=0, unparsed=0, errors=0, unlabelled=0)
    for r in rows:
        label, pred, status = r.get("label"), r.get("prediction"), r.get("status")
        if label is None:
            c["unlabelled"] += 1
            continue
        if _is_valid(status, pred):
            key = ("tp" if pred else "fn") if label else ("fp" if pred else "tn")
            c[key] += 1
        else:
            c["bad_pos" if label else "bad_neg"] += 1
            c["errors" if status == "error" else "unparsed"] += 1
    return c


def policy_matrix(c: dict[str, int], policy: str) -> tuple[int, int, int, int]:
    if policy == "counted_wrong":
        return c["tp"], c["fp"] + c["bad_neg"], c["tn"], c["fn"] + c["bad_pos"]
    if policy == "excluded":
        return c["tp"], c["fp"], c["tn"], c["fn"]
    raise RunError(f"Unknown policy '{policy}'; use counted_wrong or excluded.")


def metrics_from_counts(c: dict[str, int], policy: str = "counted_wrong") -> dict[str, Any]:
    """Top-level figures under ``policy`` plus ``metrics_both_ways``."""
    both = {p: binary_metrics(*policy_matrix(c, p)) for p in POLICIES}
    out = dict(both[policy])
    out.update(policy=policy, unparsed=c["unparsed"], errors=c["errors"], unlabelled=c["unlabelled"],
               metrics_both_ways=both)
    return out


def evaluate(rows: Sequence[dict[str, Any]], policy: str = "counted_wrong") -> dict[str, Any]:
    """Metrics from in-memory rows {label, prediction, status, confidence[, label_onset_s, onset_s, latency_s]}."""
    rows = list(rows)
    out = metrics_from_counts(counts(rows), policy)
    scored = [(bool(r["label"]), ghost_score(r.get("prediction"), r.get("confidence"))) for r in rows
              if r.get("label") is not None and _is_valid(r.get("status"), r.get("prediction"))]
    scored = [(y, s) for y, s in scored if s is not None]
    out.update(_auroc_block([y for y, _ in scored], [s for _, s in scored]))
    out["onset"] = onset_error((r.get("label_onset_s"), r.get("onset_s")) for r in rows
                               if r.get("label") and r.get("prediction") and _is_valid(r.get("status"), r.get("prediction")))
    out["latency_s"] = percentiles(r.get("latency_s") for r in rows if r.get("status") != "error")
    return out


def _auroc_block(y: Sequence[bool], s: Sequence[float]) -> dict[str, Any]:
    n_pos = sum(1 for v in y if v)
    n_neg = len(y) - n_pos
    auc = auroc(y, s) if y else None
    return {"auroc": auc, "auroc_ci": auroc_interval(auc, n_pos, n_neg), "auroc_n": len(y)}


# -- from the store --------------------------------------------------------------------------------
_COUNTS_SQL = """
    count(*) AS predictions,
    count(*) FILTER (WHERE l.video_id IS NULL) AS unlabelled,
    count(*) FILTER (WHERE l.ghost_probing AND p.status = 'ok' AND p.ghost_probing) AS tp,
    count(*) FILTER (WHERE l.ghost_probing AND p.status = 'ok' AND NOT p.ghost_probing) AS fn,
    count(*) FILTER (WHERE NOT l.ghost_probing AND p.status = 'ok' AND p.ghost_probing) AS fp,
    count(*) FILTER (WHERE NOT l.ghost_probing AND p.status = 'ok' AND NOT p.ghost_probing) AS tn,
    count(*) FILTER (WHERE l.ghost_probing AND (p.status <> 'ok' OR p.ghost_probing IS NULL)) AS bad_pos,
    count(*) FILTER (WHERE NOT l.ghost_probing AND (p.status <> 'ok' OR p.ghost_probing IS NULL)) AS bad_neg,
    count(*) FILTER (WHERE l.video_id IS NOT NULL AND p.status = 'error') AS errors,
    count(*) FILTER (WHERE l.video_id IS NOT NULL AND p.status <> 'error'
                     AND (p.status <> 'ok' OR p.ghost_probing IS NULL)) AS unparsed,
    count(*) FILTER (WHERE p.cached) AS cached,
    quantile_cont(p.latency_s, 0.5) FILTER (WHERE p.status <> 'error') AS latency_p50,
    quantile_cont(p.latency_s, 0.95) FILTER (WHERE p.status <> 'error') AS latency_p95,
    avg(p.latency_s) FILTER (WHERE p.status <> 'error') AS latency_mean,
    count(p.latency_s) FILTER (WHERE p.status <> 'error') AS latency_n
"""

_RUN_COLS = ("run_id", "name", "engine", "model", "revision", "prompt_id", "prompt_version", "prompt_hash",
             "label_set", "status", "location", "instances", "created_at", "finished_at", "planned", "missing",
             "engine_kind", "endpoint", "hidden", "job_id")


def _label_set_sizes(store: Store) -> dict[str, int]:
    return {r["label_set"]: r["n"] for r in store.query("SELECT label_set, count(*) AS n FROM labels GROUP BY 1")}


def _assemble(run: dict[str, Any], agg: dict[str, Any], policy: str, set_sizes: dict[str, int]) -> dict[str, Any]:
    c = {k: int(agg.get(k) or 0) for k in ("tp", "fp", "tn", "fn", "bad_pos", "bad_neg", "unparsed", "errors",
                                            "unlabelled")}
    out: dict[str, Any] = {k: run.get(k) for k in _RUN_COLS}
    out.update(metrics_from_counts(c, policy))
    # coverage: what the run set out to answer and what it answered (scored = a parsed or unparsed answer)
    miss = run.get("missing")
    if isinstance(miss, str):
        import json

        miss = json.loads(miss) if miss.strip().startswith("[") else []
    not_in_library = len(miss) if isinstance(miss, list) else int(miss or 0)
    npred = int(agg.get("predictions") or 0)
    planned = run.get("planned")
    planned = int(planned) if planned is not None else npred + not_in_library
    out["planned"] = planned
    out["scored"] = npred - c["errors"]
    out["errored"] = c["errors"]
    out["not_in_library"] = not_in_library
    out["coverage"] = f"{npred - c['errors']}/{planned}"
    labelled = int(agg.get("predictions") or 0) - c["unlabelled"]
    size = set_sizes.get(run.get("label_set")) if run.get("label_set") else None
    out["predictions"] = int(agg.get("predictions") or 0)
    out["cached"] = int(agg.get("cached") or 0)
    out["label_set_size"] = size
    # planned videos with no prediction (not in the library, or not reached)
    out["missing"] = max(0, size - labelled) if size is not None else max(0, planned - npred)
    out["latency_s"] = {"p50": agg.get("latency_p50"), "p95": agg.get("latency_p95"),
                        "mean": agg.get("latency_mean"), "n": int(agg.get("latency_n") or 0)}
    out["ci_method"] = CI_METHOD
    if not run.get("label_set"):
        out["note"] = "This run has no label set, so nothing can be scored."
    return out


def _run_row(store: Store, run_id: str) -> dict[str, Any]:
    """The run's row (the columns the figures need) by exact id, else through get_run (names, prefixes and
    its one-sentence errors); get_run's coverage scan is only paid when the id is not exact."""
    ref = (run_id or "").strip()
    if ref:
        rows = store.query(f"SELECT {', '.join(_RUN_COLS)} FROM runs WHERE run_id = ?", [ref])
        if rows:
            return rows[0]
    return get_run(store, run_id)


def _detail(store: Store, run: dict[str, Any], what: str, compute) -> Any:
    """A per-run value cached by the run's token and the content of its label set."""
    st = _state(store)
    rid, ls = run["run_id"], run.get("label_set")
    key = (st["tok"].get(rid), ls, st["labels_fp"].get(ls))
    memo = _memo(store)["detail"]
    with _MEMO_LOCK:
        hit = memo.get((rid, what))
    if hit is not None and hit[0] == key:
        return hit[1]
    value = compute(st)
    with _MEMO_LOCK:
        memo[(rid, what)] = (key, value)
    return value


def _scored_arrays(store: Store, rid: str, ls: str | None, st: dict[str, Any]) -> dict[str, list]:
    """Parsed, labelled answers of one run in one scan: AUROC scores and onset pairs."""
    # (DuckDB's least/greatest skip NULLs, so a missing confidence must stay NULL explicitly)
    cond, params = _run_filter(st, [rid])
    cols = store.cursor().execute(
        f"""SELECT l.ghost_probing AS lab, p.ghost_probing AS pred,
                  CASE WHEN p.confidence IS NOT NULL THEN least(1.0, greatest(0.0, p.confidence)) END AS conf,
                  l.onset_s AS lon, p.onset_s AS pon
           FROM predictions p JOIN labels l ON l.label_set = ? AND l.video_id = p.video_id
           WHERE {cond} AND p.status = 'ok' AND p.ghost_probing IS NOT NULL""", [ls, *params]).fetchnumpy()
    lab = np.asarray(cols["lab"], dtype=bool)
    pred = np.asarray(cols["pred"], dtype=bool)
    conf = np.ma.filled(np.ma.asarray(cols["conf"], dtype=float), np.nan)
    has = ~np.isnan(conf)
    ys, ss = lab[has].tolist(), np.where(pred, conf, 1.0 - conf)[has].tolist()
    both = lab & pred
    lon = np.ma.filled(np.ma.asarray(cols["lon"], dtype=float), np.nan)[both]
    pon = np.ma.filled(np.ma.asarray(cols["pon"], dtype=float), np.nan)[both]
    ok = ~np.isnan(lon) & ~np.isnan(pon)
    return {"ys": ys, "ss": ss, "pairs": list(zip(lon[ok].tolist(), pon[ok].tolist()))}


def run_metrics(store: Store, run_id: str, policy: str = "counted_wrong") -> dict[str, Any]:
    """Metrics of one run (id or name) against its label set, with intervals, both policies, AUROC,
    onset error and latency percentiles."""
    if policy not in POLICIES:
        raise RunError(f"Unknown policy '{policy}'; use counted_wrong or excluded.")
    run = _run_row(store, run_id)
    rid = run["run_id"]
    ls = run.get("label_set")
    st = _state(store)
    agg = _run_aggs(store, [run], st)[rid]
    sizes = {ls: int(st["labels_fp"][ls][0]) if ls in st["labels_fp"] else 0} if ls else {}
    out = _assemble(run, agg, policy, sizes)
    arr = _detail(store, run, "scored", lambda st_: _scored_arrays(store, rid, ls, st_))
    out.update(_auroc_block(list(arr["ys"]), list(arr["ss"])))
    out["onset"] = onset_error(arr["pairs"])
    return out


# -- caching ---------------------------------------------------------------------------------------
# Per-store memo of per-run aggregates. Each run has a *token* that changes whenever one of its
# predictions does; everything cached for a run (counts, latency, cost sums, scored answers) is keyed by
# that token and the content of its label set, so a refresh after one new prediction recomputes that run
# only. Finding what changed is cheap: the ``responses`` row count and the id sequence say whether
# anything was written; the rows with ids above the last one seen name the runs that were. A count that
# does not add up (rows deleted) falls back to one grouped scan of every run's (count, ids). Each run's
# rows are read through its id range, so DuckDB skips the row groups of other runs.
_MEMO: "weakref.WeakKeyDictionary[Store, dict[str, Any]]" = weakref.WeakKeyDictionary()
_MEMO_LOCK = threading.RLock()
_SNAPSHOT: "contextvars.ContextVar[dict | None]" = contextvars.ContextVar("reports_snapshot", default=None)

_RUNS_DIGEST_COLS = ("run_id", "name", "engine", "engine_kind", "model", "revision", "endpoint", "identity",
                     "identity_hash", "prompt_id", "prompt_version", "prompt_hash", "options", "sampling",
                     "label_set", "planned", "location", "instances", "status", "hidden", "job_id", "output_dir",
                     "created_at", "finished_at", "notes")


def _memo(store: Store) -> dict[str, Any]:
    with _MEMO_LOCK:
        m = _MEMO.get(store)
        if m is None:
            m = {"seen": None, "tok": {}, "range": {}, "n": 0, "runs": {}, "latency": {}, "lat_arrays": {},
                 "cost": {}, "detail": {}, "rows": {}, "listing_order": None, "assembled": {}}
            _MEMO[store] = m
        return m


def clear_cache(store: Store) -> None:
    """Forget everything cached for ``store`` (the next call recomputes every run, as on a first open)."""
    with _MEMO_LOCK:
        _MEMO.pop(store, None)


@contextlib.contextmanager
def snapshot(store: Store):
    """Within this block, ask the store what changed once: every Reports query of one click shares one
    look at the data (a write that lands during the block is seen by the next click)."""
    cur = _SNAPSHOT.get()
    if cur is not None and cur.get("store") is store:
        yield
        return
    tok = _SNAPSHOT.set({"store": store})
    try:
        yield
    finally:
        _SNAPSHOT.reset(tok)


def snapshotted(store: Store, fn):
    """``fn`` run inside :func:`snapshot` (for event handlers; keeps its signature for Gradio)."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with snapshot(store):
            return fn(*args, **kwargs)

    return wrapper


def _state(store: Store) -> dict[str, Any]:
    """Bring the per-run tokens up to date and return {tok, range, labels_fp, runs_digest}."""
    snap = _SNAPSHOT.get()
    if snap is not None and snap.get("store") is store and "state" in snap:
        return snap["state"]
    memo = _memo(store)
    cur = store.cursor()
    count, seq, runs_digest = cur.execute(
        f"""SELECT (SELECT count(*) FROM responses),
                   (SELECT last_value FROM duckdb_sequences() WHERE sequence_name = 'responses_seq'),
                   (SELECT sum(hash({', '.join(_RUNS_DIGEST_COLS)})) FROM runs)""").fetchone()
    labels_fp = {r[0]: tuple(r[1:]) for r in cur.execute(
        """SELECT label_set, count(*), sum(hash(video_id, ghost_probing, kind, onset_s)) FROM labels
           GROUP BY label_set""").fetchall()}
    with _MEMO_LOCK:
        seen = memo["seen"]
        if seen != (count, seq):
            full = seen is None or seq is None or seen[1] is None
            if not full:
                new = cur.execute("""SELECT run_id, count(*), min(id), max(id) FROM responses WHERE id > ?
                                     GROUP BY run_id""", [seen[1]]).fetchall()
                if count != seen[0] + sum(r[1] for r in new):
                    full = True  # rows were deleted (or a write is still landing): look at every run
                else:
                    for rid, _, lo, hi in new:
                        if rid is None:
                            continue  # a chat turn or detect: no run
                        memo["n"] += 1
                        memo["tok"][rid] = ("w", memo["n"])
                        old = memo["range"].get(rid)
                        memo["range"][rid] = (min(lo, old[0]), max(hi, old[1])) if old else (lo, hi)
            if full:
                tok, rng, scan = {}, {}, {}
                scan_prev = memo.get("scan", {})
                for rid, n, lo, hi, total in cur.execute(
                        """SELECT run_id, count(*), min(id), max(id), sum(id) FROM responses
                           WHERE run_id IS NOT NULL GROUP BY run_id""").fetchall():
                    key = (n, lo, hi, total)
                    old = memo["tok"].get(rid)
                    # an unchanged run keeps its token (and so its cached aggregates)
                    tok[rid] = old if old is not None and scan_prev.get(rid) == key else ("s", key)
                    rng[rid], scan[rid] = (lo, hi), key
                memo["scan"] = scan
                memo["tok"], memo["range"] = tok, rng
            memo["seen"] = (count, seq)
        st = {"tok": dict(memo["tok"]), "range": dict(memo["range"]), "labels_fp": labels_fp,
              "runs_digest": runs_digest}
    if snap is not None and snap.get("store") is store:
        snap["state"] = st
    return st


def _per_click(store: Store, key: tuple, compute) -> list[dict[str, Any]]:
    """Within a :func:`snapshot`, a listing computed once and shared by every query of the click: each caller
    gets its own shallow copies of the rows (values inside them are shared: read, do not change them).
    Outside a snapshot, computed afresh every call."""
    snap = _SNAPSHOT.get()
    if snap is None or snap.get("store") is not store:
        return compute()
    memo = snap.setdefault("rows", {})
    if key not in memo:
        memo[key] = compute()
    return [dict(r) for r in memo[key]]


def _fingerprints(store: Store) -> tuple[dict[str, tuple], dict[str, tuple]]:
    """(run_id → token of its predictions, label_set → (count, content hash))."""
    st = _state(store)
    return st["tok"], st["labels_fp"]


def _in_clause(col: str, ids: Sequence[str]) -> tuple[str, list[str]]:
    return f"{col} IN ({', '.join('?' * len(ids))})", list(ids)


def _run_filter(st: dict[str, Any], run_ids: Sequence[str], col: str = "p.run_id",
                id_col: str = "p.response_id") -> tuple[str, list[Any]]:
    """``col IN (...)`` plus the runs' id ranges, so DuckDB prunes the row groups of other runs."""
    cond, params = _in_clause(col, run_ids)
    ranges = [st["range"][r] for r in run_ids if r in st["range"]]
    if ranges and len(ranges) == len(run_ids):
        lo, hi = min(r[0] for r in ranges), max(r[1] for r in ranges)
        cond += f" AND {id_col} BETWEEN ? AND ?"
        params += [lo, hi]
    return cond, params


def _aggregate_runs(store: Store, run_ids: Sequence[str] | None,
                    st: dict[str, Any] | None = None) -> dict[str, dict[str, Any]]:
    """Counts, status counts and latency per run with two grouped scans (no per-row Python work)."""
    where, params = ("", [])
    if run_ids is not None:
        cond, params = _run_filter(st or _state(store), run_ids)
        where = "WHERE " + cond
    out: dict[str, dict[str, Any]] = {}
    for rid, lab, status, pred, cnt in store.cursor().execute(
            f"""SELECT p.run_id, l.ghost_probing, p.status, p.ghost_probing, count(*)
                FROM predictions p JOIN runs r USING (run_id)
                LEFT JOIN labels l ON l.label_set = r.label_set AND l.video_id = p.video_id
                {where} GROUP BY ALL""", params).fetchall():
        a = out.setdefault(rid, dict(tp=0, fp=0, tn=0, fn=0, bad_pos=0, bad_neg=0, unparsed=0, errors=0,
                                     unlabelled=0, predictions=0, by_status={}))
        a["predictions"] += cnt
        a["by_status"][status] = a["by_status"].get(status, 0) + cnt
        if lab is None:
            a["unlabelled"] += cnt
        elif status == "ok" and pred is not None:
            a[("tp" if pred else "fn") if lab else ("fp" if pred else "tn")] += cnt
        else:
            a["bad_pos" if lab else "bad_neg"] += cnt
            a["errors" if status == "error" else "unparsed"] += cnt
    for rid, q, mean, n, cached in store.cursor().execute(
            f"""SELECT p.run_id, quantile_cont(p.latency_s, [0.5, 0.95]) FILTER (WHERE p.status <> 'error'),
                       avg(p.latency_s) FILTER (WHERE p.status <> 'error'),
                       count(p.latency_s) FILTER (WHERE p.status <> 'error'), count(*) FILTER (WHERE p.cached)
                FROM predictions p {where} GROUP BY p.run_id""", params).fetchall():
        a = out.setdefault(rid, {})
        a.update(latency_p50=q[0] if q else None, latency_p95=q[1] if q else None, latency_mean=mean,
                 latency_n=n, cached=cached)
    return out


def _run_aggs(store: Store, run_rows: Sequence[dict[str, Any]], st: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Per-run aggregates from the memo, recomputing only the runs whose predictions or label set changed.
    (A run is scored against its label set as it stands in ``runs``; label_set is part of the key.)"""
    memo = _memo(store)["runs"]
    keys = {r["run_id"]: (st["tok"].get(r["run_id"]), r.get("label_set"), st["labels_fp"].get(r.get("label_set")))
            for r in run_rows}
    with _MEMO_LOCK:
        stale = [rid for rid, k in keys.items() if rid not in memo or memo[rid][0] != k]
    if stale:
        everything = len(stale) > 20 and len(stale) * 2 > len(st["tok"])
        fresh = _aggregate_runs(store, None if everything else stale, st)
        with _MEMO_LOCK:
            for rid in stale:
                memo[rid] = (keys[rid], fresh.get(rid, {}))
    with _MEMO_LOCK:
        return {rid: memo[rid][1] for rid in keys}


def run_status_counts(store: Store, run_ids: Sequence[str]) -> dict[str, dict[str, int]]:
    """run_id → {predictions, ok, unparsed, errors, cached} (as reports.runs.list_runs counts them), cached."""
    st = _state(store)
    rows = [{"run_id": r[0], "label_set": r[1]} for r in store.cursor().execute(
        f"SELECT run_id, label_set FROM runs WHERE {_in_clause('run_id', run_ids)[0]}", list(run_ids)).fetchall()] \
        if run_ids else []
    aggs = _run_aggs(store, rows, st)
    out = {}
    for rid, a in aggs.items():
        bs = a.get("by_status") or {}
        out[rid] = {"predictions": int(a.get("predictions") or 0), "ok": int(bs.get("ok", 0)),
                    "unparsed": int(bs.get("unparsed", 0)), "errors": int(bs.get("error", 0)),
                    "cached": int(a.get("cached") or 0)}
    return out


def runs_listing(store: Store, include_hidden: bool = False, selection: bool = True) -> list[dict[str, Any]]:
    """The rows of ``reports.runs.list_runs(store, include_hidden=...)`` (every column, counts, coverage),
    served from the memo: a run's row is re-read only when the run changed, its counts only when its
    predictions did. Within a :func:`snapshot` (one Reports click) it is worked out once.
    ``selection=False`` leaves out each run's list of selected video ids (``selected`` still counts them):
    copying thousands of ids per run was the dearest part of a listing that only needs coverage."""
    return _per_click(store, ("listing", bool(include_hidden), bool(selection)),
                      lambda: _runs_listing(store, include_hidden, selection))


def _runs_listing(store: Store, include_hidden: bool, selection: bool = True) -> list[dict[str, Any]]:
    from reports.runs import _decode_run

    st = _state(store)
    memo = _memo(store)
    cur = store.cursor()
    order = cur.execute(f"""SELECT run_id, hash({', '.join(_RUNS_DIGEST_COLS)}), hidden FROM runs
                            ORDER BY created_at DESC, run_id DESC""").fetchall()
    with _MEMO_LOCK:
        cache = memo["rows"]
        need = [rid for rid, h, _ in order if rid not in cache or cache[rid][0] != h]
    if need:
        hashes = {rid: h for rid, h, _ in order}
        got = {}
        for i in range(0, len(need), 500):
            part = need[i:i + 500]
            for r in store.query(f"SELECT r.* FROM runs r WHERE {_in_clause('r.run_id', part)[0]}", part):
                sel = r.get("selection")
                r = decode_json_columns(r, ("options", "sampling", "selection", "missing", "identity"))
                sel_v = r.get("selection")
                r["selected"] = len(sel_v) if isinstance(sel_v, list) else (None if sel is None else 0)
                got[r["run_id"]] = r
        with _MEMO_LOCK:
            for rid in need:
                if rid in got:
                    cache[rid] = (hashes[rid], got[rid])
            for rid in list(cache):
                if rid not in hashes:
                    del cache[rid]
    ids = [rid for rid, _, hidden in order if include_hidden or not hidden]
    run_rows = []
    with _MEMO_LOCK:
        base = {rid: cache[rid][1] for rid in ids if rid in cache}
    run_rows = [{"run_id": rid, "label_set": base[rid].get("label_set")} for rid in ids if rid in base]
    aggs = _run_aggs(store, run_rows, st)
    out = []
    for rid in ids:
        b = base.get(rid)
        if b is None:
            continue
        a = aggs.get(rid) or {}
        bs = a.get("by_status") or {}
        row = dict(b)
        row.update(predictions=int(a.get("predictions") or 0), ok=int(bs.get("ok", 0)),
                   unparsed=int(bs.get("unparsed", 0)), errors=int(bs.get("error", 0)),
                   cached=int(a.get("cached") or 0))
        # a fresh copy of the lists _decode_run keeps, so a caller cannot change the cache (it only counts
        # the selection: left out, the cached list is read and dropped)
        for k in ("selection", "missing") if selection else ("missing",):
            if isinstance(row.get(k), list):
                row[k] = list(row[k])
        row = _decode_run(row)
        if not selection:
            row.pop("selection", None)
        out.append(row)
    return out


def runs_overview(store: Store, run_ids: Sequence[str] | None = None,
                  policy: str = "counted_wrong") -> list[dict[str, Any]]:
    """Every run (or the given ones) with its matrix, figures and intervals.

    Two grouped SQL scans, and only for runs whose predictions or label set changed since the last call
    on this store (see the memo above); within a :func:`snapshot` (one Reports click) worked out once."""
    if policy not in POLICIES:
        raise RunError(f"Unknown policy '{policy}'; use counted_wrong or excluded.")
    if run_ids is not None and not run_ids:
        return []
    key = ("overview", None if run_ids is None else tuple(run_ids), policy)
    return _per_click(store, key, lambda: _runs_overview(store, run_ids, policy))


def _runs_overview(store: Store, run_ids: Sequence[str] | None, policy: str) -> list[dict[str, Any]]:
    where, params = "WHERE NOT coalesce(r.hidden, false)", []  # hidden runs stay out of tables and charts
    if run_ids is not None:
        cond, params = _in_clause("r.run_id", run_ids)
        where = "WHERE " + cond
    runs = store.query(f"SELECT {', '.join(_RUN_COLS)} FROM runs r {where} ORDER BY created_at DESC, run_id DESC",
                       params)
    st = _state(store)
    aggs = _run_aggs(store, runs, st)
    sizes = {k: int(v[0]) for k, v in st["labels_fp"].items()}
    # a run's row (its metrics, intervals and coverage) is worked out again only when its predictions, its runs
    # row or its label set changed: one new prediction re-assembles one run, not all of them
    memo = _memo(store)["assembled"]
    out = []
    for r in runs:
        rid, ls = r["run_id"], r.get("label_set")
        key = (st["tok"].get(rid), st["labels_fp"].get(ls), tuple(r.values()))
        with _MEMO_LOCK:
            hit = memo.get((rid, policy))
        if hit is None or hit[0] != key:
            hit = (key, _assemble(r, aggs[rid], policy, sizes))
            with _MEMO_LOCK:
                memo[(rid, policy)] = hit
        out.append(dict(hit[1]))  # its own shallow copy (values inside are shared: read, do not change them)
    return out


def by_prompt_version(store: Store, label_set: str | None = None, policy: str = "counted_wrong",
                      overview: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """One row per (prompt id, version, engine, model, label set) cell: the cell's latest finished run.

    Runs are not pooled: repeated runs of one cell score the same videos, so pooling them would
    shrink the interval without new evidence. ``runs_in_cell`` says how many runs the cell holds.
    Detector runs (no prompt) are left out; a partial run is kept with its ``coverage`` (scored/planned).
    """
    rows = overview if overview is not None else runs_overview(store, policy=policy)
    cells: dict[tuple, dict[str, Any]] = {}
    counts_: dict[tuple, int] = {}
    for r in sorted(rows, key=lambda r: (str(r.get("created_at")), r["run_id"])):
        if r.get("status") not in ("done", "partial", "imported"):
            continue
        if r.get("engine_kind") == "detector" and not r.get("prompt_id"):
            continue  # a detector takes no prompt: it has no place in a chart of prompt versions
        if label_set is not None and r.get("label_set") != label_set:
            continue
        key = (r.get("prompt_id"), r.get("prompt_version"), r.get("engine"), r.get("model"), r.get("label_set"))
        cells[key] = r
        counts_[key] = counts_.get(key, 0) + 1
    out = []
    for key, r in cells.items():
        row = dict(r)
        row["runs_in_cell"] = counts_[key]
        prompt = f"{key[0]}@{key[1]}" if key[0] else "no prompt"
        row["cell"] = f"{prompt} · {key[2]}" + (f" · {key[3]}" if key[3] else "")
        out.append(row)
    return sorted(out, key=lambda r: (str(r.get("label_set")), str(r.get("prompt_id")), str(r.get("prompt_version")),
                                      str(r.get("engine")), str(r.get("model"))))


def _latency_arrays(store: Store, run_ids: Sequence[str], st: dict[str, Any]) -> dict[str, np.ndarray]:
    """run_id → the measured latencies of its non-error predictions (cached per run token)."""
    memo = _memo(store)["lat_arrays"]
    with _MEMO_LOCK:
        stale = [rid for rid in run_ids if rid not in memo or memo[rid][0] != st["tok"].get(rid)]
    if stale:
        fresh: dict[str, list[float]] = {rid: [] for rid in stale}
        for i in range(0, len(stale), 100):
            part = stale[i:i + 100]
            cond, params = _run_filter(st, part)
            res = store.cursor().execute(
                f"""SELECT p.run_id, p.latency_s FROM predictions p
                    WHERE p.status <> 'error' AND p.latency_s IS NOT NULL AND {cond}""", params).fetchnumpy()
            rids, lats = np.asarray(res["run_id"], dtype=object), np.asarray(res["latency_s"], dtype=float)
            if rids.size:
                order = np.argsort(rids, kind="stable")
                rids, lats = rids[order], lats[order]
                uniq, starts = np.unique(rids, return_index=True)
                bounds = list(starts[1:]) + [rids.size]
                for rid, s0, s1 in zip(uniq, starts, bounds):
                    fresh[str(rid)] = lats[s0:s1]
        with _MEMO_LOCK:
            for rid in stale:
                memo[rid] = (st["tok"].get(rid), np.asarray(fresh[rid], dtype=float))
    with _MEMO_LOCK:
        return {rid: memo[rid][1] for rid in run_ids}


def latency_by_engine(store: Store, run_ids: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """Latency quartiles, fences and p95 per engine/model (for box plots without shipping raw rows).

    Quantiles are linear interpolation between order statistics (DuckDB's quantile_cont), over the
    runs' non-error answers with a measured latency; each run's latencies are cached by its token."""
    if run_ids is not None and not run_ids:
        return []
    st = _state(store)
    where, params = "", []
    if run_ids is not None:  # one list parameter: an IN list of hundreds of ? costs more than the lookup
        where, params = "WHERE run_id IN (SELECT unnest(?::VARCHAR[]))", [list(run_ids)]
    groups: dict[tuple, list[str]] = {}
    for rid, engine, model in store.cursor().execute(f"SELECT run_id, engine, model FROM runs {where}",
                                                     params).fetchall():
        if rid in st["tok"]:
            groups.setdefault((engine, model), []).append(rid)
    arrays = _latency_arrays(store, [r for g in groups.values() for r in g], st)
    memo = _memo(store)["latency"]
    rows = []
    for (engine, model) in sorted(groups, key=lambda k: (k[0], k[1] is None, k[1] or "")):
        ids = sorted(groups[(engine, model)])
        key = tuple((rid, st["tok"].get(rid)) for rid in ids)
        with _MEMO_LOCK:
            hit = memo.get((engine, model))
        if hit is not None and hit[0] == key:
            row = hit[1]
        else:
            parts = [arrays[rid] for rid in ids if arrays[rid].size]
            if not parts:
                row = None
            else:
                v = np.concatenate(parts)
                n = int(v.size)
                qs = [0.25, 0.5, 0.75, 0.95]
                ks = sorted({int(math.floor((n - 1) * q)) for q in qs} | {int(math.ceil((n - 1) * q)) for q in qs})
                part = np.partition(v, ks)
                qv = []
                for q in qs:
                    rn = (n - 1) * q
                    f, c = int(math.floor(rn)), int(math.ceil(rn))
                    lo, hi = float(part[f]), float(part[c])
                    qv.append(lo if f == c else lo + (rn - f) * (hi - lo))
                row = {"engine": engine, "model": model, "n": n, "min": float(v.min()), "q1": qv[0], "p50": qv[1],
                       "q3": qv[2], "p95": qv[3], "max": float(v.max()), "mean": float(v.sum() / n)}
            with _MEMO_LOCK:
                memo[(engine, model)] = (key, row)
        if row is not None:
            rows.append(dict(row))
    return rows


# -- comparing two runs ----------------------------------------------------------------------------
def _correctness(store: Store, run_id: str, label_set: str, policy: str) -> dict[str, bool | None]:
    """label-set video id → correct (None when the policy excludes the answer): reports.correctness's rule."""
    from reports.correctness import correct_sql, is_correct

    rows = store.cursor().execute(
        f"""SELECT l.video_id, {correct_sql(policy=policy)}
           FROM predictions p JOIN labels l ON l.label_set = ? AND l.video_id = p.video_id
           WHERE p.run_id = ?""", [label_set, run_id]).fetchall()
    if not rows:  # spelled differently from the label set: match by key in Python
        lab = {video_key(r[0]): (r[0], r[1]) for r in store.cursor().execute(
            "SELECT video_id, ghost_probing FROM labels WHERE label_set = ?", [label_set]).fetchall()}
        for vid, status, pred in store.cursor().execute(
                "SELECT video_id, status, ghost_probing FROM predictions WHERE run_id = ?", [run_id]).fetchall():
            hit = lab.get(video_key(vid))
            if hit is not None:
                rows.append((hit[0], is_correct(status, pred, hit[1], policy)))
    return {vid: (None if c is None else bool(c)) for vid, c in rows}


def compare_runs(store: Store, run_a: str, run_b: str, policy: str = "counted_wrong",
                 label_set: str | None = None) -> dict[str, Any]:
    """Both runs' metrics (each on its own label set, as in the runs list), and McNemar's exact test on the
    labelled videos they share in ``label_set`` (default: A's), with the videos that flipped."""
    if policy not in POLICIES:
        raise RunError(f"Unknown policy '{policy}'; use counted_wrong or excluded.")
    a, b = get_run(store, run_a), get_run(store, run_b)
    if a["run_id"] == b["run_id"]:
        raise RunError("Compare two different runs.")
    ls = label_set or a.get("label_set") or b.get("label_set")
    if not ls:
        raise RunError("Neither run has a label set, so there is nothing to compare against.")
    wrong = False if policy == "counted_wrong" else None
    rows = store.cursor().execute(
        """WITH l AS (SELECT video_id, ghost_probing FROM labels WHERE label_set = ?),
                a AS (SELECT video_id, status = 'ok' AND ghost_probing IS NOT NULL AS valid, ghost_probing
                      FROM predictions WHERE run_id = ?),
                b AS (SELECT video_id, status = 'ok' AND ghost_probing IS NOT NULL AS valid, ghost_probing
                      FROM predictions WHERE run_id = ?)
           SELECT l.video_id, a.valid, a.ghost_probing = l.ghost_probing, b.valid, b.ghost_probing = l.ghost_probing
           FROM l JOIN a USING (video_id) JOIN b USING (video_id)""", [ls, a["run_id"], b["run_id"]]).fetchall()
    if rows:
        ca = {r[0]: (bool(r[2]) if r[1] else wrong) for r in rows}
        cb = {r[0]: (bool(r[4]) if r[3] else wrong) for r in rows}
    else:  # ids spelled differently from the label set: match by key
        ca, cb = _correctness(store, a["run_id"], ls, policy), _correctness(store, b["run_id"], ls, policy)
    shared = sorted(k for k in ca.keys() & cb.keys() if ca[k] is not None and cb[k] is not None)
    both_right = sum(1 for k in shared if ca[k] and cb[k])
    both_wrong = sum(1 for k in shared if not ca[k] and not cb[k])
    r2w = [k for k in shared if ca[k] and not cb[k]]
    w2r = [k for k in shared if not ca[k] and cb[k]]
    n = len(shared)
    acc_a = sum(1 for k in shared if ca[k])
    acc_b = sum(1 for k in shared if cb[k])
    overview = {r["run_id"]: r for r in runs_overview(store, [a["run_id"], b["run_id"]], policy)}
    return {
        "label_set": ls,
        "policy": policy,
        "label_sets_differ": a.get("label_set") != b.get("label_set"),
        "a": overview[a["run_id"]],
        "b": overview[b["run_id"]],
        "shared": {
            "n": n,
            "a_accuracy": ratio(acc_a, n), "a_accuracy_ci": wilson(acc_a, n),
            "b_accuracy": ratio(acc_b, n), "b_accuracy_ci": wilson(acc_b, n),
            "both_right": both_right, "both_wrong": both_wrong,
            "a_right_b_wrong": len(r2w), "a_wrong_b_right": len(w2r),
        },
        "mcnemar_p": mcnemar_exact(len(r2w), len(w2r)) if n else None,
        "mcnemar_method": "exact two-sided binomial test on discordant pairs",
        "flipped": {"right_to_wrong": r2w, "wrong_to_right": w2r},
    }


def scored_answers(store: Store, run_id: str) -> tuple[list[bool], list[float]]:
    """(labels, P(ghost probing) scores) of a run's parsed, labelled answers that carry a confidence."""
    run = _run_row(store, run_id)
    rid, ls = run["run_id"], run.get("label_set")
    # the arrays run_metrics reads for AUROC (one scan per run token, shared): ghost_score of each answer
    arr = _detail(store, run, "scored", lambda st_: _scored_arrays(store, rid, ls, st_))
    return list(arr["ys"]), list(arr["ss"])
