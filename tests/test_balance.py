"""Conservation every month: tonnes per product, the NdPr element and money (sim/balance.py).

Each check compares independent records (stocks vs flows; goods shipped vs payments; funds'
budgets rebuilt from transfers) and is shown to fail when the mechanism is broken: a recipe
that makes NdPr, a release nobody pays for, a lost tonne.
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import sim
from sim.balance import fund_balances, ndpr_balance, ndpr_losses_by_stage, usd_balance
from sim.errors import UserError
from sim.ledger import KINDS
from sim.scenario import world_scenario
from sim.synthetic import synthetic_world
from sim.world import PRODUCTS, load_world, validate_world

ROOT = Path(__file__).resolve().parents[1]
REL = 1e-9


def _assert_balanced(res, rel=REL):
    bal = res.balance()
    assert set(bal["product"]) == set(PRODUCTS)
    scale = bal[["production_t", "consumption_t"]].abs().max().max() + 1.0
    worst = bal["residual_t"].abs().max()
    assert worst <= rel * scale * 10, f"mass balance residual {worst} t"
    # every month is present for every product
    assert bal.groupby("product").size().nunique() == 1


def assert_conserved(res, rel=REL):
    """Tonnes, NdPr and USD balance every month; no fund below zero; no recipe makes NdPr."""
    _assert_balanced(res, rel)
    nd = ndpr_balance(res)
    assert len(nd) == res.manifest["months"]
    assert nd["relative"].max() <= rel, f"NdPr residual {nd['residual_t'].abs().max()} t"
    loss = ndpr_losses_by_stage(res)
    assert loss.min().min() >= -rel * nd["scale_t"].max(), f"a stage makes NdPr:\n{loss.min()}"
    usd = usd_balance(res)
    assert usd["relative"].max() <= rel, f"USD residual {usd['worst_usd'].max()}"
    tr = res.transfers
    assert (tr["usd"] > 0).all() and np.isfinite(tr["usd"]).all()
    assert (tr["payer"] != tr["payee"]).all()
    assert set(tr["kind"]) <= set(KINDS)
    funds = fund_balances(res)
    if not funds.empty:
        assert funds.min().min() >= -1e-6, f"a fund went below zero:\n{funds.min()}"


def test_baseline_conserves_every_month(baseline_run):
    assert_conserved(baseline_run)


def test_classroom_conserves_every_month(classroom_run):
    assert_conserved(classroom_run)


def _experiment_files():
    # experiment files have [[scenarios]]; sweep and calibration specs do not
    return sorted(
        p
        for p in (ROOT / "experiments").glob("*.toml")
        if "[[scenarios]]" in p.read_text(encoding="utf-8")
    )


@pytest.mark.parametrize("path", _experiment_files(), ids=lambda p: p.stem)
def test_every_experiment_conserves(path):
    from sim.scenarios import load_experiment, run_experiment

    exp = load_experiment(path)
    results = run_experiment(exp)
    for name, res in results.items():
        try:
            assert_conserved(res)
        except AssertionError as exc:
            raise AssertionError(f"{path.name}/{name}: {exc}") from None


def test_balance_detects_a_lost_tonne(classroom_run):
    """The check can fail: remove one tonne of oxide stock from the table and it must show."""
    res = classroom_run
    ts = res.timeseries.copy()
    sel = ts.index[(ts["metric"] == "inventory_t") & (ts["product"] == "oxide")][5]
    ts.loc[sel, "value"] -= 1.0
    broken = type(res)(timeseries=ts, flows=res.flows, agents=res.agents, manifest=res.manifest)
    assert broken.balance()["residual_t"].abs().max() == pytest.approx(1.0, abs=1e-6)


def test_world_rejects_a_recipe_that_makes_ndpr():
    raw = load_world(ROOT / "models" / "classroom.toml")[0].model_dump()
    raw["magnet_plants"][0]["scrap_t_per_t"] = 0.2  # 0.28 in magnet + 0.2 swarf > 0.35 input
    with pytest.raises(UserError, match=r"magnet_plants\[0\]\.input_t_per_t: 0.35 t NdPr"):
        validate_world(raw)


def test_a_broken_recipe_fails_the_ndpr_check():
    """Bypass validation: magnet plants whose swarf holds more NdPr than their input allows."""
    world, _ = load_world(ROOT / "models" / "classroom.toml")
    model = sim.SupplyChainModel(world, rng=0, end="2025-12")
    mp = model.idx["magnet_plant"]
    model.state.scrap_ratio[mp] += 0.05
    model.run()
    from sim.results import build_results

    res = build_results(model, {"months": model.n_months})
    with pytest.raises(AssertionError, match="makes NdPr"):
        assert_conserved(res)


def test_an_unpaid_release_fails_the_usd_check(monkeypatch):
    """A stockpile release whose buyers pay nothing must show as money missing."""
    from sim.ledger import Transfer
    from sim.policies.stockpiles import Stockpiles

    real = Stockpiles._release

    def free(self, model, h, amount, price):
        return [e for e in real(self, model, h, amount, price) if not isinstance(e, Transfer)]

    monkeypatch.setattr(Stockpiles, "_release", free)
    # a US magnet buffer bought from 2024-03, then a year without Chinese magnets
    raw = copy.deepcopy(world_scenario(ROOT / "models" / "classroom.toml").world_raw)
    raw["calendar"]["end"] = "2025-12"
    raw.setdefault("policies", {}).update(
        {
            "stockpiles": {
                "usa": {
                    "product": "magnet",
                    "budget_usd": 5e8,
                    "target_days": 60,
                    "build_months": 6,
                    "start": "2024-03",
                    "release_on_shortage": True,
                }
            },
            "export_controls": {
                "start": "2025-01",
                "end": "2025-12",
                "exporter": "china",
                "products": ["magnet"],
                "approval_probability": 0.0,
                "exempt_share": 0.0,
            },
        }
    )
    results = {"buffer": sim.run(raw, seed=0)}
    released = sum(
        res.series("stockpile_released_t", "magnet", "usa").sum() for res in results.values()
    )
    assert released > 0, "the scenario must release something for this test to mean anything"
    with pytest.raises(AssertionError, match="USD residual"):
        for res in results.values():
            assert_conserved(res)


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


POLICY_MENU = {
    "stockpile": {
        "stockpiles": {
            "s": {"region": "r1", "product": "magnet", "budget_usd": 5e8, "start": "2024-03"}
        }
    },
    "subsidy": {
        "subsidies": {
            "s": {
                "region": "r1",
                "roles": ["magnet_plant"],
                "incentive_usd_per_kg": 5.0,
                "max_output_t_per_yr": 500.0,
                "budget_usd": 2e8,
            }
        }
    },  # fmt: skip
    "none": {},
}


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    n=st.integers(min_value=12, max_value=120),
    seed=st.integers(0, 10_000),
    k=st.integers(0, 4),
    slack=st.floats(0.7, 1.6),
    policy=st.sampled_from(sorted(POLICY_MENU)),
)
def test_random_worlds_conserve(n, seed, k, slack, policy):
    world = synthetic_world(n, seed, suppliers_per_buyer=k, months=18, slack=slack)
    pol = copy.deepcopy(POLICY_MENU[policy])
    # the policy's region: one with OEMs (stockpile buyers) and magnet plants (subsidy)
    oem_regions = {f["region"] for f in world["oems"]}
    both = sorted(oem_regions & {f["region"] for f in world.get("magnet_plants", [])})
    for table in pol.values():
        for spec in table.values():
            spec["region"] = both[0] if both else sorted(oem_regions)[0]
    if policy == "subsidy" and not both:
        pol = {}
    world.setdefault("policies", {}).update(pol)
    res = sim.run(world, seed=seed)
    assert_conserved(res)
    inv = res.timeseries[res.timeseries["metric"] == "inventory_t"]["value"]
    assert (inv >= -1e-9).all()
    prices = res.timeseries[res.timeseries["metric"] == "price_usd_per_kg"]["value"]
    assert np.isfinite(prices.dropna()).all() and (prices.dropna() > 0).all()


def test_netted_postings_match_the_detailed_ledger():
    """Runs that keep no entries post netted transfers: the balances must be the same."""
    world, _ = load_world(ROOT / "models" / "classroom.toml")
    full = sim.SupplyChainModel(world, rng=4, end="2027-12", record=True)
    full.run()
    fast = sim.SupplyChainModel(world, rng=4, end="2027-12", record=False)
    fast.run()
    a, b = full.ledger.balance, fast.ledger.balance
    np.testing.assert_allclose(a, b, rtol=0, atol=1e-9 * np.abs(a).max())
    assert abs(b.sum()) <= 1e-9 * np.abs(b).sum()  # double entry: balances sum to zero
    np.testing.assert_array_equal(full.state.cap, fast.state.cap)


def test_balances_are_exactly_what_the_entries_say(classroom_run):
    """Every change in any party's money over the recorded months is a kept entry."""
    led = classroom_run.model.ledger
    change = led.balance - led.opening
    net = led.net_of_rows(led.rows_at_opening)
    np.testing.assert_allclose(change, net, rtol=0, atol=1e-9 * np.abs(led.balance).max())
    tr = classroom_run.transfers
    assert tr["usd"].sum() == pytest.approx(
        sum(r[4].sum() for r in led.rows), rel=1e-12
    )  # the table holds every entry


def test_a_restated_fund_holds_its_new_budget_less_what_it_paid():
    from sim.ledger import Ledger

    led = Ledger(["firm"], 1)
    k = led.fund("vault:usa", "government:usa", 100.0)
    led.post("price_floor", k, 0, 30.0)
    assert led.available(k) == pytest.approx(70.0)
    led.fund("vault:usa", "government:usa", 200.0)  # budget raised mid-run
    assert led.available(k) == pytest.approx(170.0)
    led.fund("vault:usa", "government:usa", 20.0)  # cut below what it already paid
    assert led.available(k) == pytest.approx(0.0)
    assert abs(led.balance.sum()) < 1e-9
    with pytest.raises(ValueError, match="paid more than it held"):
        led.post("price_floor", k, 0, 1.0)
        led.balance  # noqa: B018  (reading balances applies the postings)
