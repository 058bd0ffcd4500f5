"""Metrics: hand-checked statistics, scikit-learn agreement, policies, and figures from the store."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engines.types import Verdict
from reports import metrics as M
from reports.runs import add_prediction, create_run, finish_run


# -- hand-checked statistics -------------------------------------------------------------------------
def test_wilson_hand_checked():
    lo, hi = M.wilson(8, 10)
    assert (round(lo, 3), round(hi, 3)) == (0.490, 0.943)
    lo, hi = M.wilson(0, 10)  # never a degenerate [0, 0]
    assert lo == 0.0 and round(hi, 3) == 0.278
    lo, hi = M.wilson(10, 10)
    assert round(lo, 3) == 0.722 and hi == 1.0
    lo, hi = M.wilson(9, 12)  # 75%, n=12: the seed's band question
    assert (round(lo, 3), round(hi, 3)) == (0.468, 0.911)
    assert M.wilson(0, 0) is None


def test_mcnemar_exact_hand_checked():
    assert M.mcnemar_exact(1, 6) == pytest.approx(0.125)
    assert M.mcnemar_exact(6, 1) == pytest.approx(0.125)
    assert M.mcnemar_exact(0, 0) == 1.0
    assert M.mcnemar_exact(3, 3) == 1.0
    assert M.mcnemar_exact(0, 5) == pytest.approx(2 / 32)
    # b=2, c=10: 2 * (1 + 12 + 66) / 4096
    assert M.mcnemar_exact(2, 10) == pytest.approx(2 * 79 / 4096)


def test_mcnemar_matches_scipy_binomtest():
    from scipy.stats import binomtest

    for b in range(0, 15):
        for c in range(0, 15):
            if b + c:
                assert M.mcnemar_exact(b, c) == pytest.approx(binomtest(b, b + c, 0.5).pvalue, rel=1e-9)


def test_undefined_is_none_not_zero():
    m = M.binary_metrics(0, 0, 5, 0)  # no positives at all, no positive predictions
    assert m["recall"] is None and m["recall_ci"] is None
    assert m["precision"] is None and m["f1"] is None and m["balanced_accuracy"] is None
    assert m["specificity"] == 1.0 and m["accuracy"] == 1.0
    empty = M.binary_metrics(0, 0, 0, 0)
    assert all(empty[k] is None for k in ("accuracy", "precision", "recall", "specificity", "f1", "fpr", "fnr"))


def test_interval_helpers_bracket_the_point():
    m = M.binary_metrics(6, 5, 1, 0)
    for k in ("accuracy", "precision", "recall", "specificity", "f1", "balanced_accuracy", "fpr"):
        lo, hi = m[k + "_ci"]
        assert 0.0 <= lo <= m[k] <= hi <= 1.0, k


def test_policies_unparsed_is_never_a_no():
    rows = [
        {"label": True, "prediction": True, "status": "ok"},
        {"label": True, "prediction": None, "status": "unparsed"},
        {"label": False, "prediction": None, "status": "error"},
        {"label": False, "prediction": False, "status": "ok"},
        {"label": None, "prediction": True, "status": "ok"},
    ]
    m = M.evaluate(rows, "counted_wrong")
    assert (m["tp"], m["fn"], m["fp"], m["tn"]) == (1, 1, 1, 1)
    assert m["n"] == 4 and m["unparsed"] == 1 and m["errors"] == 1 and m["unlabelled"] == 1
    ex = m["metrics_both_ways"]["excluded"]
    assert (ex["tp"], ex["fn"], ex["fp"], ex["tn"], ex["n"]) == (1, 0, 0, 1, 2)
    assert ex["accuracy"] == 1.0 and m["accuracy"] == 0.5


def test_onset_and_latency():
    rows = [
        {"label": True, "prediction": True, "status": "ok", "label_onset_s": 2.0, "onset_s": 2.5, "latency_s": 1.0},
        {"label": True, "prediction": True, "status": "ok", "label_onset_s": 6.0, "onset_s": 3.0, "latency_s": 2.0},
        {"label": True, "prediction": True, "status": "ok", "label_onset_s": 4.0, "onset_s": 4.0, "latency_s": 3.0},
        {"label": False, "prediction": True, "status": "ok", "label_onset_s": None, "onset_s": 1.0, "latency_s": 4.0},
        {"label": False, "prediction": None, "status": "error", "latency_s": 99.0},
    ]
    m = M.evaluate(rows)
    assert m["onset"]["n"] == 3 and m["onset"]["median_abs_s"] == 0.5
    assert m["onset"]["within_1s"] == pytest.approx(2 / 3)
    assert m["latency_s"]["n"] == 4 and m["latency_s"]["p50"] == 2.5
    assert m["latency_s"]["p95"] == pytest.approx(np.percentile([1, 2, 3, 4], 95))


# -- scikit-learn agreement (property test) ----------------------------------------------------------
rows_strategy = st.lists(
    st.tuples(st.booleans(), st.booleans(), st.sampled_from(["ok", "ok", "ok", "unparsed", "error"]),
              st.one_of(st.none(), st.floats(0, 1, allow_nan=False))),
    min_size=1, max_size=60)


@settings(max_examples=150, deadline=None)
@given(rows_strategy, st.sampled_from(M.POLICIES))
def test_matches_scikit_learn(data, policy):
    from sklearn.metrics import (accuracy_score, balanced_accuracy_score, confusion_matrix, f1_score,
                                 precision_score, recall_score, roc_auc_score)

    rows = [{"label": y, "prediction": p if s == "ok" else None, "status": s, "confidence": c}
            for y, p, s, c in data]
    m = M.evaluate(rows, policy)
    y_true, y_pred = [], []
    for y, p, s, _ in data:
        if s == "ok":
            y_true.append(y), y_pred.append(p)
        elif policy == "counted_wrong":
            y_true.append(y), y_pred.append(not y)  # an unparsed answer is wrong, whatever the label
    assert m["n"] == len(y_true)
    if not y_true:
        assert m["accuracy"] is None
        return
    tn, fp, fn, tp = confusion_matrix(y_true, y_pred, labels=[False, True]).ravel()
    assert (m["tp"], m["fp"], m["tn"], m["fn"]) == (tp, fp, tn, fn)
    assert m["accuracy"] == pytest.approx(accuracy_score(y_true, y_pred))
    if tp + fp:
        assert m["precision"] == pytest.approx(precision_score(y_true, y_pred, zero_division=0))
    else:
        assert m["precision"] is None
    if tp + fn:
        assert m["recall"] == pytest.approx(recall_score(y_true, y_pred, zero_division=0))
    else:
        assert m["recall"] is None
    if 2 * tp + fp + fn:
        assert m["f1"] == pytest.approx(f1_score(y_true, y_pred, zero_division=0))
    else:
        assert m["f1"] is None
    if tp + fn and tn + fp:
        assert m["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(y_true, y_pred))
        assert m["specificity"] == pytest.approx(recall_score(y_true, y_pred, pos_label=False))
    # AUROC over parsed answers that carry a confidence
    ys = [y for y, p, s, c in data if s == "ok" and c is not None]
    ss = [(c if p else 1 - c) for y, p, s, c in data if s == "ok" and c is not None]
    if any(ys) and not all(ys):
        assert m["auroc"] == pytest.approx(roc_auc_score(ys, ss))
        assert m["auroc_n"] == len(ys)
    else:
        assert m["auroc"] is None


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 300), st.integers(1, 300))
def test_wilson_properties(k, n):
    k = min(k, n)
    lo, hi = M.wilson(k, n)
    assert 0.0 <= lo <= k / n <= hi <= 1.0
    # agrees with statsmodels' closed form written independently
    z = M.Z95
    p = k / n
    c = (2 * n * p + z * z) / (2 * (n + z * z))
    h = z * math.sqrt(z * z + 4 * n * p * (1 - p)) / (2 * (n + z * z))
    assert lo == pytest.approx(max(0, c - h), abs=1e-12) and hi == pytest.approx(min(1, c + h), abs=1e-12)


# -- from the store ---------------------------------------------------------------------------------
def _labels(store, name, items):
    with store.write() as cur:
        cur.execute("INSERT INTO label_sets (name, source) VALUES (?, 'test')", [name])
        for vid, gp, onset in items:
            cur.execute("INSERT INTO labels (label_set, video_id, ghost_probing, kind, onset_s) VALUES (?, ?, ?, ?, ?)",
                        [name, vid, gp, "ghost_probing" if gp else "none", onset])


def _run(store, answers, label_set="t", name=None, **kw):
    rid = create_run(store, engine="baseline", label_set=label_set, selection=[a[0] for a in answers], name=name,
                     location="local-cpu", **kw)
    for vid, v, lat in answers:
        add_prediction(store, rid, vid, None, v, {"latency_s": lat})
    finish_run(store, rid)
    return rid


def test_run_metrics_from_store_matches_in_memory(store):
    _labels(store, "t", [(f"v{i}.avi", i % 2 == 0, 2.0 if i % 2 == 0 else None) for i in range(10)]
            + [("v_noconf.avi", False, None)])
    rng = np.random.default_rng(3)
    answers, rows = [], []
    for i in range(10):
        status = ["ok", "ok", "ok", "unparsed", "error"][rng.integers(0, 5)]
        pred = bool(rng.integers(0, 2))
        conf = float(rng.random())
        v = Verdict(ghost_probing=pred, confidence=conf, status=status, onset_s=2.4) if status == "ok" else \
            Verdict(status=status, raw="???")
        answers.append((f"v{i}.avi", v, 0.5 + i))
        rows.append({"label": i % 2 == 0, "prediction": pred if status == "ok" else None, "status": status,
                     "confidence": conf if status == "ok" else None, "latency_s": 0.5 + i,
                     "label_onset_s": 2.0 if i % 2 == 0 else None, "onset_s": 2.4 if status == "ok" else None})
    answers.append(("v_noconf.avi", Verdict(ghost_probing=True, status="ok"), 1.0))  # parsed, no confidence
    rows.append({"label": False, "prediction": True, "status": "ok", "confidence": None, "latency_s": 1.0})
    answers.append(("unlabelled.avi", Verdict(ghost_probing=True, status="ok"), 1.0))
    rows.append({"label": None, "prediction": True, "status": "ok", "latency_s": 1.0})
    rid = _run(store, answers)
    for policy in M.POLICIES:
        got, want = M.run_metrics(store, rid, policy), M.evaluate(rows, policy)
        for k in ("n", "tp", "fp", "tn", "fn", "unparsed", "errors", "unlabelled", "accuracy", "accuracy_ci",
                  "precision", "recall", "specificity", "f1", "f1_ci", "balanced_accuracy", "balanced_accuracy_ci",
                  "auroc", "auroc_n", "metrics_both_ways"):
            assert got[k] == pytest.approx(want[k]) if isinstance(want[k], float) else got[k] == want[k], k
        assert got["onset"] == want["onset"]
        assert got["latency_s"]["p50"] == pytest.approx(want["latency_s"]["p50"])
        assert got["latency_s"]["p95"] == pytest.approx(want["latency_s"]["p95"])
        assert got["label_set"] == "t" and got["policy"] == policy and got["missing"] == 0
    overview = {r["run_id"]: r for r in M.runs_overview(store)}
    assert overview[rid]["tp"] == M.run_metrics(store, rid)["tp"]
    assert overview[rid]["accuracy_ci"] == M.run_metrics(store, rid)["accuracy_ci"]


def test_run_metrics_json_keys(store):
    import json

    _labels(store, "t", [("a.avi", True, None), ("b.avi", False, None)])
    rid = _run(store, [("a.avi", Verdict(ghost_probing=True, status="ok"), 1.0)])
    m = json.loads(json.dumps(M.run_metrics(store, rid), default=str))
    for k in ("run_id", "n", "tp", "fp", "tn", "fn", "unparsed", "errors", "accuracy", "balanced_accuracy",
              "precision", "recall", "specificity", "f1", "accuracy_ci", "label_set", "policy", "metrics_both_ways"):
        assert k in m, k
    assert m["missing"] == 1 and m["label_set_size"] == 2
    assert m["specificity"] is None  # no negative scored: null, not 0


def test_compare_runs_mcnemar_and_flips(store):
    vids = [f"v{i}.avi" for i in range(10)]
    _labels(store, "t", [(v, True, None) for v in vids])
    yes = Verdict(ghost_probing=True, status="ok")
    no = Verdict(ghost_probing=False, status="ok")
    # A right on v0..v1 and v8..v9; B right on v1..v7 + v9. A→B: v0 right→wrong, v2..v7 wrong→right.
    a = _run(store, [(v, yes if i in (0, 1, 8, 9) else no, 1.0) for i, v in enumerate(vids)], name="A")
    b = _run(store, [(v, yes if i in (1, 2, 3, 4, 5, 6, 7, 9) else no, 1.0) for i, v in enumerate(vids)], name="B")
    c = M.compare_runs(store, "A", "B")
    assert c["shared"]["n"] == 10
    assert c["flipped"]["right_to_wrong"] == ["v0.avi", "v8.avi"]
    assert c["flipped"]["wrong_to_right"] == [f"v{i}.avi" for i in range(2, 8)]
    assert c["mcnemar_p"] == pytest.approx(M.mcnemar_exact(2, 6))
    assert c["a"]["run_id"] == a and c["b"]["run_id"] == b
    assert c["shared"]["a_accuracy"] == 0.4 and c["shared"]["b_accuracy"] == 0.8


def test_by_prompt_version_takes_latest_run_per_cell(store):
    _labels(store, "t", [("a.avi", True, None), ("b.avi", False, None)])
    yes = Verdict(ghost_probing=True, status="ok")
    _run(store, [("a.avi", yes, 1.0), ("b.avi", yes, 1.0)], prompt=("gp", "1", "h1"))
    latest = _run(store, [("a.avi", yes, 1.0), ("b.avi", Verdict(ghost_probing=False, status="ok"), 1.0)],
                  prompt=("gp", "1", "h1"))
    _run(store, [("a.avi", yes, 1.0)], prompt=("gp", "2", "h2"))
    rows = M.by_prompt_version(store)
    assert [r["prompt_version"] for r in rows] == ["1", "2"]
    assert rows[0]["run_id"] == latest and rows[0]["runs_in_cell"] == 2 and rows[0]["accuracy"] == 1.0
    lat = M.latency_by_engine(store)
    assert lat[0]["engine"] == "baseline" and lat[0]["n"] == 5 and lat[0]["p50"] == 1.0


def test_overview_memo_follows_new_predictions_and_label_changes(store):
    _labels(store, "t", [("a.avi", True, None), ("b.avi", False, None)])
    yes = Verdict(ghost_probing=True, status="ok")
    rid = _run(store, [("a.avi", yes, 1.0)])
    assert M.runs_overview(store)[0]["tp"] == 1 and M.runs_overview(store)[0]["fp"] == 0
    add_prediction(store, rid, "b.avi", None, yes, {"latency_s": 3.0})
    o = M.runs_overview(store)[0]
    assert (o["tp"], o["fp"], o["n"]) == (1, 1, 2) and o["latency_s"]["p50"] == 2.0
    add_prediction(store, rid, "b.avi", None, Verdict(ghost_probing=False, status="ok"), {"latency_s": 3.0})  # replaced
    assert M.runs_overview(store)[0]["tn"] == 1
    with store.write() as cur:  # a label corrected in place
        cur.execute("UPDATE labels SET ghost_probing = true, kind = 'ghost_probing' WHERE video_id = 'b.avi'")
    o = M.runs_overview(store)[0]
    assert (o["tp"], o["fn"], o["tn"]) == (1, 1, 0)
    assert M.runs_overview(store, [rid])[0]["fn"] == 1 and M.runs_overview(store, []) == []
    assert M.latency_by_engine(store)[0]["n"] == 2
    add_prediction(store, rid, "c.avi", None, yes, {"latency_s": 5.0})
    assert M.latency_by_engine(store)[0]["n"] == 3


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(0, 6), min_size=1, max_size=40))
def test_midranks_match_scipy(values):
    from scipy.stats import rankdata

    v = np.asarray(values, dtype=float)
    assert np.allclose(M._midranks(v), rankdata(v))


def test_roc_and_pr_points_match_scikit_learn():
    import numpy as np
    from sklearn.metrics import precision_recall_curve, roc_curve

    from reports.figures import pr_points, roc_points

    rng = np.random.default_rng(0)
    checked = 0
    for _ in range(60):
        y = rng.random(30) < 0.4
        s = np.round(rng.random(30), 1)  # many ties
        if y.all() or (~y).all():
            continue
        fpr, tpr = roc_points(y, s)
        ref_fpr, ref_tpr, _ = roc_curve(y, s, drop_intermediate=False)
        assert np.allclose(fpr, ref_fpr) and np.allclose(tpr, ref_tpr)
        rec, prec = pr_points(y, s)
        ref_prec, ref_rec, _ = precision_recall_curve(y, s)
        assert np.allclose(rec[::-1], ref_rec[:-1]) and np.allclose(prec[::-1], ref_prec[:-1])
        checked += 1
    assert checked > 50


# -- the per-run memo gives what a fresh computation gives ----------------------------------------------------
def _fresh(store, fn):
    """``fn(store)`` with an empty memo, and the memo put back as it was (a second store is not needed)."""
    saved = M._MEMO.pop(store, None)
    try:
        return fn(store)
    finally:
        M._MEMO.pop(store, None)
        if saved is not None:
            M._MEMO[store] = saved


def _sql_latency(store):
    """latency_by_engine's figures straight from DuckDB (the reference for the cached numpy form)."""
    rows = store.query("""SELECT r.engine, r.model, count(*) AS n, min(p.latency_s) AS mn,
                                 quantile_cont(p.latency_s, [0.25, 0.5, 0.75, 0.95]) AS q, max(p.latency_s) AS mx,
                                 avg(p.latency_s) AS mean
                          FROM predictions p JOIN runs r USING (run_id)
                          WHERE p.status <> 'error' AND p.latency_s IS NOT NULL GROUP BY ALL ORDER BY 1, 2""")
    return [{"engine": r["engine"], "model": r["model"], "n": r["n"], "min": r["mn"], "q1": r["q"][0],
             "p50": r["q"][1], "q3": r["q"][2], "p95": r["q"][3], "max": r["mx"], "mean": r["mean"]} for r in rows]


def _sql_scored(store, rid):
    """scored_answers' (label, P(ghost probing)) pairs straight from DuckDB, sorted (the order is not a figure)."""
    rows = store.cursor().execute(
        """SELECT l.ghost_probing, p.ghost_probing, p.confidence FROM predictions p JOIN runs r USING (run_id)
           JOIN labels l ON l.label_set = r.label_set AND l.video_id = p.video_id
           WHERE p.run_id = ? AND p.status = 'ok' AND p.ghost_probing IS NOT NULL AND p.confidence IS NOT NULL""",
        [rid]).fetchall()
    return sorted((bool(lab), M.ghost_score(pred, conf)) for lab, pred, conf in rows)


def _same(a, b):
    if isinstance(a, float) or isinstance(b, float):
        return a == pytest.approx(b, rel=1e-12, abs=1e-12)
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return a == b


def _check_all(store):
    from reports import costs as C
    from reports.runs import list_runs

    for hidden in (False, True):
        assert M.runs_listing(store, include_hidden=hidden) == list_runs(store, include_hidden=hidden)
        assert M.runs_listing(store, include_hidden=hidden, selection=False) == [
            {k: v for k, v in r.items() if k != "selection"} for r in list_runs(store, include_hidden=hidden)]
    assert _same(M.runs_overview(store), _fresh(store, M.runs_overview))
    ids = [r["run_id"] for r in list_runs(store, include_hidden=True)]
    assert _same(C.runs_costs(store), _fresh(store, C.runs_costs))
    assert _same(M.latency_by_engine(store), _sql_latency(store))
    assert _same(M.latency_by_engine(store), _fresh(store, M.latency_by_engine))
    for rid in ids:
        for policy in M.POLICIES:
            assert _same(M.run_metrics(store, rid, policy), _fresh(store, lambda s: M.run_metrics(s, rid, policy)))
        assert _same(M.scored_answers(store, rid), _fresh(store, lambda s: M.scored_answers(s, rid)))
        assert sorted(zip(*M.scored_answers(store, rid))) == _sql_scored(store, rid)
        assert _same(C.run_cost(store, rid), _fresh(store, lambda s: C.run_cost(s, rid)))


def test_memo_matches_a_fresh_computation_through_every_kind_of_change(store):
    from reports.responses import log_response
    from reports.runs import delete_predictions, delete_run, rename_run, set_run_hidden

    rng = np.random.default_rng(7)
    _labels(store, "t", [(f"v{i}.avi", i % 3 == 0, 1.0 + i % 4) for i in range(12)])

    def answer(i):
        status = ["ok", "ok", "ok", "unparsed", "error"][int(rng.integers(0, 5))]
        if status != "ok":
            return Verdict(status=status, raw="?")
        return Verdict(ghost_probing=bool(rng.integers(0, 2)), confidence=float(rng.random()), status="ok",
                       onset_s=float(rng.random() * 3))

    a = _run(store, [(f"v{i}.avi", answer(i), float(rng.random() * 2)) for i in range(8)], name="A",
             prompt=("gp", "1", "h1"))
    b = _run(store, [(f"v{i}.avi", answer(i), float(rng.random() * 2)) for i in range(12)], name="B",
             prompt=("gp", "2", "h2"))
    _check_all(store)
    # a new prediction, a replaced one, a chat turn (no run) in between
    add_prediction(store, a, "v9.avi", None, answer(9), {"latency_s": 0.7})
    log_response(store, kind="chat", engine="baseline", chat_id="c1", video_id="v1.avi", response="hi")
    add_prediction(store, b, "v3.avi", None, Verdict(ghost_probing=True, confidence=0.9, status="ok"),
                   {"latency_s": 1.9})
    _check_all(store)
    # a cached answer, a third run on another engine, rename and hide
    c = create_run(store, engine="openai", model="gpt-4o", label_set="t", location="openai:gpt-4o",
                   selection=["v1.avi", "v2.avi"])
    add_prediction(store, c, "v1.avi", None, answer(1), {"latency_s": 3.0, "prompt_tokens": 10,
                                                          "completion_tokens": 3})
    add_prediction(store, c, "v2.avi", None, answer(2), {"latency_s": 2.0}, cached=True)
    rename_run(store, a, "A2")
    set_run_hidden(store, b, True)
    _check_all(store)
    set_run_hidden(store, b, False)
    with store.write() as cur:  # a label corrected in place
        cur.execute("UPDATE labels SET ghost_probing = NOT ghost_probing WHERE video_id = 'v3.avi'")
    _check_all(store)
    # rows deleted: a failed import's answers, then a whole run
    delete_predictions(store, c)
    _check_all(store)
    finish_run(store, c, "failed")
    delete_run(store, c)
    _check_all(store)
    assert c not in {r["run_id"] for r in M.runs_listing(store, include_hidden=True)}


def test_snapshot_shares_one_look_and_the_next_click_sees_new_predictions(store):
    _labels(store, "t", [("a.avi", True, None), ("b.avi", False, None)])
    yes = Verdict(ghost_probing=True, status="ok")
    rid = _run(store, [("a.avi", yes, 1.0)])
    with M.snapshot(store):
        assert M.runs_overview(store)[0]["n"] == 1
        add_prediction(store, rid, "b.avi", None, yes, {"latency_s": 2.0})
        assert M.runs_overview(store)[0]["n"] == 1  # the click's one look at the store
    assert M.runs_overview(store)[0]["n"] == 2  # the next click sees the new answer
    wrapped = M.snapshotted(store, lambda: (M.runs_overview(store)[0]["n"], M.runs_listing(store)[0]["predictions"]))
    assert wrapped() == (2, 2)


def test_one_click_lists_runs_once_and_each_caller_gets_its_own_rows(store, monkeypatch):
    from reports.runs import list_runs

    _labels(store, "t", [("a.avi", True, None), ("b.avi", False, None)])
    yes = Verdict(ghost_probing=True, status="ok")
    rid = _run(store, [("a.avi", yes, 1.0)])
    calls = []
    listing, overview = M._runs_listing, M._runs_overview
    monkeypatch.setattr(M, "_runs_listing", lambda *a: calls.append("listing") or listing(*a))
    monkeypatch.setattr(M, "_runs_overview", lambda *a: calls.append("overview") or overview(*a))
    with M.snapshot(store):
        first = M.runs_listing(store, include_hidden=True)
        first[0]["name"] = "changed by a caller"
        assert M.runs_listing(store, include_hidden=True) == list_runs(store, include_hidden=True)
        o = M.runs_overview(store)
        o[0]["n"] = -1
        assert M.runs_overview(store)[0]["n"] == 1 and M.runs_overview(store, [rid])[0]["n"] == 1
    assert calls == ["listing", "overview", "overview"]  # once per argument set within the click
    M.runs_listing(store, include_hidden=True)
    M.runs_listing(store, include_hidden=True)
    assert calls[3:] == ["listing", "listing"]  # outside a click: computed every call


def test_one_new_prediction_reassembles_only_its_run(store, monkeypatch):
    """The overview keeps each run's assembled row (metrics, intervals, coverage) until its predictions, its runs
    row or its label set change: a Reports click after one new answer works out one run again, not all."""
    from reports.runs import rename_run

    _labels(store, "t", [(f"v{i}.avi", i % 2 == 0, None) for i in range(4)])
    yes = Verdict(ghost_probing=True, status="ok")
    ids = [_run(store, [(f"v{i}.avi", yes, 1.0) for i in range(2)], name=f"R{k}") for k in range(3)]
    M.runs_overview(store)
    done = []
    assemble = M._assemble
    monkeypatch.setattr(M, "_assemble", lambda r, *a: done.append(r["run_id"]) or assemble(r, *a))
    assert M.runs_overview(store) and done == []
    add_prediction(store, ids[1], "v3.avi", None, yes, {"latency_s": 0.5})
    assert {r["run_id"]: r["n"] for r in M.runs_overview(store)}[ids[1]] == 3 and done == [ids[1]]
    rename_run(store, ids[0], "renamed")
    assert {r["run_id"]: r["name"] for r in M.runs_overview(store)}[ids[0]] == "renamed" and done[1:] == [ids[0]]
    with store.write() as cur:
        cur.execute("UPDATE labels SET ghost_probing = NOT ghost_probing WHERE video_id = 'v0.avi'")
    M.runs_overview(store)
    assert sorted(done[2:]) == sorted(ids)  # their label set changed: every run scored against it again
    M.runs_overview(store, policy="excluded")
    assert len(done) == 8  # the other policy: its own rows
