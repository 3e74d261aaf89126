"""Finance that binds (sim/finance.py): cost of capital, financing gaps, failures, and a fund
whose gap loans change investment only where financing binds (counterfactual worlds)."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import numpy as np
import pytest

import sim
from sim.finance import cost_of_capital, project_pays
from sim.world import load_world

ROOT = Path(__file__).resolve().parents[1]
CLASSROOM = ROOT / "models" / "classroom.toml"

AMPLE = {"initial_cash_months": 600.0, "max_cash_months": 1000.0, "max_debt_to_ebitda": 10.0}
TIGHT = {"initial_cash_months": 0.0, "max_cash_months": 0.5, "max_debt_to_ebitda": 0.0}
FUND = {
    "region": "usa",
    "budget_usd": 5.0e10,
    "gap_loans": True,
    "stages": ["mine", "separator", "metal_maker", "magnet_plant", "recycler"],
    "exclude_regions": [],
}


@cache
def run(finance: tuple, fund: bool, seed: int = 0, failure: float | None = None):
    raw = load_world(CLASSROOM)[0].model_dump()
    raw["finance"] = {**raw["finance"], **dict(finance)}
    if failure is not None:
        raw["finance"]["project_failure_probability"] = failure
    if fund:
        raw["policies"] = {"vault": dict(FUND)}
    return sim.run(raw, seed=seed)


def expansions_t_per_yr(res) -> float:
    return sum(d for _, _, d, o in res.model.capacity_added if o == "expansion" and d > 0)


def loans(res) -> float:
    s = res.series("vault_loans_usd", "", "usa")
    return float(s.iloc[-1]) if len(s) else 0.0


@pytest.mark.parametrize("seed", [0, 1])
def test_fund_adds_nothing_where_firms_have_ample_cash(seed):
    with_fund = run(tuple(AMPLE.items()), True, seed)
    without = run(tuple(AMPLE.items()), False, seed)
    assert with_fund.model.finance.blocked_t_per_yr == 0.0
    assert loans(with_fund) == 0.0
    assert expansions_t_per_yr(with_fund) == expansions_t_per_yr(without)
    a = with_fund.series("capacity_t_per_yr", "magnet").to_numpy()
    b = without.series("capacity_t_per_yr", "magnet").to_numpy()
    np.testing.assert_array_equal(a, b)
    add = with_fund.series("vault_additional_capacity_t_per_yr", "", "usa").to_numpy()
    assert add.max() == 0.0


@pytest.mark.parametrize("seed", [0, 1])
def test_fund_adds_capacity_where_financing_binds(seed):
    with_fund = run(tuple(TIGHT.items()), True, seed)
    without = run(tuple(TIGHT.items()), False, seed)
    assert without.model.finance.blocked_t_per_yr > 0  # the constraint binds without the fund
    assert loans(with_fund) > 0
    assert expansions_t_per_yr(with_fund) > expansions_t_per_yr(without)
    add = with_fund.series("vault_additional_capacity_t_per_yr", "", "usa").to_numpy()
    assert add[-1] > 0
    # the fund's money: budget less loans plus repayments, never below zero
    left = with_fund.series("vault_budget_left_usd", "", "usa").to_numpy()
    rep = with_fund.series("vault_repaid_usd", "", "usa").to_numpy()
    assert left[-1] == pytest.approx(FUND["budget_usd"] - loans(with_fund) + rep[-1], rel=1e-9)
    assert left.min() >= 0


def test_failed_projects_lose_the_funds_loans():
    res = run(tuple(TIGHT.items()), True, 0, failure=1.0)
    assert expansions_t_per_yr(res) == 0.0  # every project fails
    assert res.model.finance.failed_t_per_yr > 0
    lost = res.series("vault_lost_usd", "", "usa").to_numpy()[-1]
    assert lost > 0
    # only loans to projects already due can be lost
    due = [
        p
        for p in res.model.policies.instruments[0].gap_projects
        if p.online_month <= res.model.end_abs
    ]
    assert lost == pytest.approx(sum(p.fund_loan_usd for p in due))


def test_cost_of_capital_rises_with_price_risk():
    world, _ = load_world(CLASSROOM)
    m = sim.SupplyChainModel(world, rng=0, end="2024-12")
    firms = m.idx["firm"]
    m.finance.price_var[firms] = 0.0
    calm = cost_of_capital(m, firms)
    f = world.finance
    assert calm == pytest.approx(
        np.full(firms.size, f.risk_free_rate_per_yr + f.base_risk_premium_per_yr)
    )
    m.finance.price_var[firms] = 0.3**2 / 12  # 30 % annualised volatility
    risky = cost_of_capital(m, firms)
    assert risky == pytest.approx(calm + f.price_risk_premium * 0.3)
    # a project that pays at the calm cost of capital can fail the test under price risk
    s = m.state
    margin = s.ask[firms, s.out_product[firms]] - s.unit_cost[firms]
    i = firms[[int(np.argmax(margin))]]
    assert margin.max() > 0
    util = min(float(s.prod_ema[i[0]] / (s.cap[i[0]] / 12.0)), 1.0)
    delta = np.array([1000.0])
    crf_calm = calm[0] / (1 - (1 + calm[0]) ** -f.project_life_years)
    capex = margin.max() * 1000.0 * delta * util / crf_calm * 0.99  # just pays when calm
    m.finance.price_var[i] = 0.0
    assert project_pays(m, i, delta, capex)[0]
    m.finance.price_var[i] = 0.5**2 / 12
    assert not project_pays(m, i, delta, capex)[0]


def test_a_loss_maker_with_debt_exits():
    raw = load_world(CLASSROOM)[0].model_dump()
    raw["finance"] = {**raw["finance"], **TIGHT}
    for f in raw["separators"]:
        if f["id"] == "usa_separator":
            f["unit_cost_usd_per_kg"] *= 3  # far above any price it can get
    res = sim.run(raw, seed=0)
    m = res.model
    i = m.nodes.ids.index("usa_separator")
    assert m.finance.exited[i] and m.state.cap[i] == 0.0
    assert any(node == i and o == "exit" for _, node, _, o in m.capacity_added)
    # the same firm at its own cost does not exit
    ok = run(tuple(TIGHT.items()), False, 0)
    assert not ok.model.finance.exited[i]
