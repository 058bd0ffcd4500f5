"""Costs: a shipped catalogue, user edits that stick, and unknown never shown as 0."""

from __future__ import annotations

import pytest

from engines.types import Verdict
from reports import costs as C
from reports.runs import add_prediction, create_run


def test_catalogue_has_the_required_rows_with_sources():
    rows = {(r["provider"], r["sku"]): r for r in C.load_catalogue()}
    expect = {("azure", "Standard_NC24s_v3"): 12.24, ("azure", "Standard_NC12s_v3"): 6.12,
              ("azure", "Standard_NC24ads_A100_v4"): 3.673, ("azure", "Standard_NC40ads_H100_v5"): 6.98,
              ("aws", "ml.g5.xlarge"): 1.408, ("aws", "ml.p3.2xlarge"): 3.825, ("aws", "ml.p4d.24xlarge"): 37.688}
    for key, price in expect.items():
        assert rows[key]["usd_per_hour"] == price, key
    assert rows[("azure", "Standard_NC24s_v3")]["gpus"] == 4
    assert rows[("openai", "gpt-4o")]["usd_per_1m_input_tokens"] == 2.50
    assert rows[("openai", "gpt-4o")]["usd_per_1m_output_tokens"] == 10.00
    assert rows[("local", "local-cpu")]["usd_per_hour"] is None
    for r in rows.values():
        assert r["source"], r
        if r["provider"] != "local":
            assert r["as_of"] is not None and "not re-verified" in r["notes"]


def test_seed_once_and_edits_stay(store):
    assert C.ensure_prices(store) > 0
    assert C.ensure_prices(store, force=True) == 0  # unchanged catalogue: nothing rewritten
    C.set_price(store, "azure", "Standard_NC24s_v3", "eastus", usd_per_hour=10.0)
    C.ensure_prices(store, force=True)
    row = [r for r in C.list_prices(store) if r["sku"] == "Standard_NC24s_v3"][0]
    assert row["usd_per_hour"] == 10.0 and row["edited"] is True and row["notes"] == "edited by a person"
    with pytest.raises(Exception, match="non-negative"):
        C.set_price(store, "local", "local-cpu", usd_per_hour=-1)


def _run(store, location, preds, instances=1):
    rid = create_run(store, engine="x", location=location, instances=instances)
    for i, (lat, pt, ct, cached) in enumerate(preds):
        add_prediction(store, rid, f"v{i}.avi", None, Verdict(ghost_probing=True, status="ok"),
                       {"latency_s": lat, "prompt_tokens": pt, "completion_tokens": ct}, cached=cached)
    return rid


def test_hourly_cost_from_measured_seconds(store):
    rid = _run(store, "azure:Standard_NC24s_v3:eastus", [(30.0, None, None, False), (60.0, None, None, False),
                                                         (45.0, None, None, True)], instances=2)
    c = C.run_cost(store, rid)
    # (30 + 60) s × 12.24 $/h / 3600 × 2 instances; the cached answer costs nothing
    assert c["basis"] == "hourly" and c["usd"] == pytest.approx(90 * 12.24 / 3600 * 2)
    assert c["usd_per_video"] == pytest.approx(c["usd"] / 3) and c["usd_per_call"] == pytest.approx(c["usd"] / 2)
    assert c["model_calls"] == 2 and c["cached"] == 1 and c["price"]["source"].startswith("https://")
    per = {r["video_id"]: r["usd"] for r in C.video_costs(store, rid)}
    assert per["v2.avi"] == 0.0 and per["v0.avi"] == pytest.approx(30 * 12.24 / 3600 * 2)
    assert C.runs_costs(store)[rid]["usd"] == pytest.approx(c["usd"])
    # sku alone and provider:sku also name the row when unambiguous
    assert C.find_price(store, "ml.g5.xlarge")[0]["usd_per_hour"] == 1.408
    assert C.find_price(store, "aws:ml.p3.2xlarge")[0]["usd_per_hour"] == 3.825


def test_token_cost(store):
    rid = _run(store, "openai:gpt-4o", [(3.0, 1_000_000, 100_000, False), (2.0, 500_000, 0, False)])
    c = C.run_cost(store, rid)
    assert c["basis"] == "tokens" and c["usd"] == pytest.approx(1.5 * 2.50 + 0.1 * 10.00)


@pytest.mark.parametrize("location,preds,why", [
    ("local-cpu", [(1.0, None, None, False)], "not set"),
    ("somewhere-else", [(1.0, None, None, False)], "no price is set"),
    (None, [(1.0, None, None, False)], "does not say where"),
    ("azure:Standard_NC24s_v3:eastus", [(1.0, None, None, False), (None, None, None, False)], "no measured latency"),
    ("openai:gpt-4o", [(1.0, 10, None, False)], "no token counts"),
])
def test_unknown_cost_is_none_never_zero(store, location, preds, why):
    c = C.run_cost(store, _run(store, location, preds))
    assert c["usd"] is None and c["usd_per_video"] is None
    assert why in c["reason"] and c["reason"].startswith("Cost unknown")


def test_user_price_makes_local_known(store):
    rid = _run(store, "local-cuda", [(36.0, None, None, False)])
    assert C.run_cost(store, rid)["usd"] is None
    C.set_price(store, "local", "local-cuda", usd_per_hour=1.0)
    assert C.run_cost(store, rid)["usd"] == pytest.approx(0.01)


def test_fully_cached_rerun_costs_zero_measured(store):
    c = C.run_cost(store, _run(store, "local-cpu", [(5.0, None, None, True)]))
    assert c["usd"] == 0.0 and c["basis"] == "cached"
