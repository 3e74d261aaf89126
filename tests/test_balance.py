"""Conservation: for each product, production - consumption = change in stocks, every month."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import sim
from sim.synthetic import synthetic_world
from sim.world import PRODUCTS


def _assert_balanced(res, rel=1e-9):
    bal = res.balance()
    assert set(bal["product"]) == set(PRODUCTS)
    scale = bal[["production_t", "consumption_t"]].abs().max().max() + 1.0
    worst = bal["residual_t"].abs().max()
    assert worst <= rel * scale * 10, f"mass balance residual {worst} t"
    # every month is present for every product
    assert bal.groupby("product").size().nunique() == 1


def test_baseline_mass_balance_every_month(baseline_run):
    _assert_balanced(baseline_run)


def test_classroom_mass_balance_every_month(classroom_run):
    _assert_balanced(classroom_run)


def test_balance_detects_a_lost_tonne(classroom_run):
    """The check can fail: remove one tonne of oxide stock from the table and it must show."""
    res = classroom_run
    ts = res.timeseries.copy()
    sel = ts.index[(ts["metric"] == "inventory_t") & (ts["product"] == "oxide")][5]
    ts.loc[sel, "value"] -= 1.0
    broken = type(res)(timeseries=ts, flows=res.flows, agents=res.agents, manifest=res.manifest)
    assert broken.balance()["residual_t"].abs().max() == pytest.approx(1.0, abs=1e-6)


def test_no_negative_inventories(baseline_run, classroom_run):
    for res in (baseline_run, classroom_run):
        inv = res.timeseries[res.timeseries["metric"] == "inventory_t"]["value"]
        assert (inv >= -1e-9).all()
        ag = res.agents
        assert (ag[["inventory_in_t", "inventory_out_t"]] >= -1e-9).all().all()


def test_shortage_is_demand_not_served(baseline_run):
    ag = baseline_run.agents
    oem = ag[ag["role"] == "oem"]
    np.testing.assert_allclose(oem["demand_t"] - oem["consumption_t"], oem["shortage_t"], atol=1e-6)


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    n=st.integers(min_value=12, max_value=120),
    seed=st.integers(0, 10_000),
    k=st.integers(0, 4),
    slack=st.floats(0.7, 1.6),
)
def test_random_worlds_conserve_mass(n, seed, k, slack):
    world = synthetic_world(n, seed, suppliers_per_buyer=k, months=18, slack=slack)
    res = sim.run(world, seed=seed)
    _assert_balanced(res)
    inv = res.timeseries[res.timeseries["metric"] == "inventory_t"]["value"]
    assert (inv >= -1e-9).all()
    prices = res.timeseries[res.timeseries["metric"] == "price_usd_per_kg"]["value"]
    assert np.isfinite(prices.dropna()).all() and (prices.dropna() > 0).all()
