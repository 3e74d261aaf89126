"""Mechanism tests of the policy instruments on the classroom world (docs/policies.md)."""

from __future__ import annotations

import copy

import numpy as np
import pytest

import sim.api as api
from sim.errors import UserError
from sim.model import SupplyChainModel
from sim.world import read_toml

WORLD = read_toml("models/classroom.toml")


def world(policies: dict, end: str = "2027-12") -> dict:
    raw = copy.deepcopy(WORLD)
    raw["calendar"]["end"] = end
    raw["policies"] = policies
    return raw


def cn_exports(res, to: str | None = None) -> np.ndarray:
    fl = res.flows
    sel = (
        (fl.source_region == "china") & (fl.target_region != "china") & (fl["product"] == "magnet")
    )
    if to:
        sel &= fl.target_region == to
    dates = res.series("price_usd_per_kg", "magnet", "china").index
    return fl[sel].groupby("date").tonnes.sum().reindex(dates, fill_value=0.0).to_numpy()


def month_index(res, month: str) -> int:
    dates = res.series("price_usd_per_kg", "magnet", "china").index
    return int(np.flatnonzero(dates == np.datetime64(f"{month}-01"))[0])


@pytest.fixture(scope="module")
def base():
    return api.run(world({}), seed=3)


def test_quota_caps_exports_at_quota_plus_leakage(base):
    quota = 6000.0
    res = api.run(
        world(
            {
                "export_controls": {
                    "start": "2025-01",
                    "requires_licence": False,
                    "quota_t_per_yr": quota,
                }
            }
        ),
        seed=3,
    )
    k = month_index(res, "2025-01")
    ex = cn_exports(res)
    assert ex[:k].mean() > quota / 12 * 1.5  # the quota binds
    assert ex[k:].max() <= quota / 12 + 1e-6
    leak = 0.3
    res2 = api.run(
        world(
            {
                "export_controls": {
                    "start": "2025-01",
                    "requires_licence": False,
                    "quota_t_per_yr": quota,
                    "leakage_share": leak,
                }
            }
        ),
        seed=3,
    )
    ins = res2.model.policies.instruments[0].rules[0]
    bound = quota / 12 + leak * np.maximum(ins.ref_flow - ins.link_caps(res2.model) * 0, 0).sum()
    ex2 = cn_exports(res2)
    assert ex2[k:].max() <= bound + 1e-6
    assert ex2[k:].sum() > ex[k:].sum()  # leakage lets more through


def test_licence_delay_shifts_flows_by_processing_time(base):
    months = 3
    pol = {
        "export_controls": {
            "start": "2025-03",
            "processing_days": 21.0 * months,
            "processing_sd_log": 0.0,
            "approval_probability": 1.0,
            "validity_months": 60,
        }
    }
    res = api.run(world(pol), seed=3)
    k = month_index(res, "2025-03")
    ex = cn_exports(res)
    assert ex[k - 1] > 100
    assert np.all(ex[k : k + months] < 1e-9)  # nothing until the licences are granted
    assert ex[k + months] > 100
    # a shorter review shifts the restart accordingly
    pol["export_controls"]["processing_days"] = 21.0
    ex1 = cn_exports(api.run(world(pol), seed=3))
    assert ex1[k] < 1e-9 and ex1[k + 1] > 100


def test_defence_refused_and_denials_block():
    pol = {
        "export_controls": {
            "start": "2025-01",
            "approval_probability": 0.0,
            "processing_sd_log": 0.0,
        }
    }
    res = api.run(world(pol), seed=3)
    k = month_index(res, "2025-01")
    assert cn_exports(res)[k:].max() < 1e-9
    ts = res.timeseries
    assert ts[ts.metric == "licences_denied"].value.sum() > 0


def test_controls_create_price_wedge(base):
    pol = {"export_controls": {"start": "2025-01", "approval_probability": 0.0}}
    res = api.run(world(pol), seed=3)
    k = month_index(res, "2025-01")
    ch = res.series("price_usd_per_kg", "magnet", "china").to_numpy()
    ww = res.series("price_usd_per_kg", "magnet", "ex_china").to_numpy()
    ch0 = base.series("price_usd_per_kg", "magnet", "china").to_numpy()
    assert (ww[k + 6] / ch[k + 6]) > (ww[k - 1] / ch[k - 1]) + 0.05
    assert ch[k + 6] < ch0[k + 6]  # blocked exports lower the domestic price


def test_stockpile_within_budget_and_nonnegative():
    budget = 2.0e8
    pol = {
        "stockpiles": {"usa": {"budget_usd": budget, "target_days": 90, "start": "2024-03"}},
        "export_controls": {"start": "2026-01", "end": "2026-12", "approval_probability": 0.0},
    }
    res = api.run(world(pol), seed=1)
    stock = res.series("stockpile_t", "magnet", "usa").to_numpy()
    spent = res.series("stockpile_spent_usd", "magnet", "usa").to_numpy()
    assert stock.min() >= -1e-9 and stock.max() > 0
    assert spent.max() <= budget + 1e-3
    assert np.all(np.diff(spent) >= -1e-9)
    assert res.series("stockpile_released_t", "magnet", "usa").sum() > 0  # released in the halt
    assert np.abs(res.balance().residual_t).max() < 1e-6


def test_stockpile_budget_binds():
    pol = {"stockpiles": {"usa": {"budget_usd": 1.0e6, "target_days": 60}}}
    res = api.run(world(pol, end="2024-12"), seed=1)
    spent = res.series("stockpile_spent_usd", "magnet", "usa").to_numpy()
    assert spent.max() == pytest.approx(1.0e6, rel=1e-6)


VAULT = {
    "budget_usd": 1.0e9,
    "start": "2024-06",
    "milestone_months": [2, 3, 3, 2],
    "candidates": [
        {"firm": "usa_magnets", "capacity_t_per_yr": 4000, "capex_usd_per_t_per_yr": 1e5},
        {"firm": "eu_magnets", "capacity_t_per_yr": 3000, "capex_usd_per_t_per_yr": 2e5},
        {"firm": "usa_separator", "capacity_t_per_yr": 3000, "capex_usd_per_t_per_yr": 5e4},
    ],
}


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_vault_budget_and_milestones(seed):
    v = copy.deepcopy(VAULT)
    v["failure_probability"] = [0.3, 0.3, 0.3, 0.0]
    res = api.run(world({"vault": v}), seed=seed)
    fund = res.model.policies.instruments[0]
    disbursed = res.series("vault_disbursed_usd", "", "usa").to_numpy()
    assert disbursed.max() <= v["budget_usd"] + 1e-3
    assert fund.committed <= v["budget_usd"] + 1e-3
    # tranches only on met milestones: each payment matches a logged milestone event
    pays = [
        e
        for e in fund.log
        if e[2] in ("feasibility", "construction", "commissioning", "verified_output")
    ]
    assert sum(e[3] for e in pays) == pytest.approx(fund.disbursed)
    for p in fund.projects:
        shares = np.cumsum(v.get("milestone_share", [0.1, 0.4, 0.3, 0.2]))
        met = p.milestone if p.status != "done" else 4
        expect = shares[met - 1] * p.cost_usd if met > 0 else 0.0
        assert p.disbursed_usd == pytest.approx(expect)
        if p.status == "failed":
            assert p.online is None
    lost = res.series("vault_lost_usd", "", "usa").to_numpy()[-1]
    assert lost == pytest.approx(
        sum(p.disbursed_usd for p in fund.projects if p.status == "failed")
    )
    # every tranche is a ledger transfer from the fund, and the fund never went below zero
    tr = res.transfers
    paid = tr[(tr["payer"] == "vault:usa") & (tr["kind"] == "vault_disbursement")]["usd"].sum()
    assert paid == pytest.approx(fund.disbursed)
    left = res.series("vault_budget_left_usd", "", "usa").to_numpy()
    assert left.min() >= -1e-6


def test_vault_adds_capacity_and_selects_by_cost():
    v = copy.deepcopy(VAULT)
    v["failure_probability"] = [0.0, 0.0, 0.0, 0.0]
    v["budget_usd"] = 5.0e8  # costs 1.5e8 (sep), 4e8, 6e8: only the cheapest fits
    res = api.run(world({"vault": v}), seed=0)
    fund = res.model.policies.instruments[0]
    status = {p.firm: p.status for p in fund.projects}
    assert status["usa_separator"] != "candidate"  # cheapest per t/yr first
    assert status["eu_magnets"] == "candidate"  # 6e8 does not fit after the others
    cap = res.series("capacity_t_per_yr", "oxide", "usa").to_numpy()
    assert cap[-1] >= cap[0] + 3000 - 1e-6
    assert any(o == "vault" for _, _, _, o in res.model.capacity_added)


FLOOR = {
    "product": "oxide",
    "floor_usd_per_kg": 110.0,
    "firms": ["usa_separator"],
    "start": "2024-01",
}


def test_price_floor_pays_and_guides_the_covered_firm():
    v = {"budget_usd": 1.0e9, "price_floor": dict(FLOOR)}
    res = api.run(world({"vault": v}, end="2024-12"), seed=0)
    m = res.model
    paid = np.diff(np.r_[0.0, res.series("price_floor_paid_usd", "oxide", "usa").to_numpy()])
    assert paid.min() >= 0 and paid.sum() > 0
    tr = res.transfers
    floor = tr[(tr["kind"] == "price_floor") & (tr["payer"] == "vault:usa")]
    assert set(floor["payee"]) == {"usa_separator"}
    assert floor["usd"].sum() == pytest.approx(paid.sum())
    # firms under the floor plan and invest on the floor price; others on their ask
    sep = m.nodes.ids.index("usa_separator")
    other = m.nodes.ids.index("china_separator")
    firms = np.array([sep, other])
    asks = m.state.ask[firms, 1]
    got = m.policies.price_received(m, firms, asks)
    assert got[0] == pytest.approx(max(110.0, asks[0]))
    assert got[1] == pytest.approx(asks[1])


def test_price_floor_stops_when_the_fund_is_empty():
    """The floor is paid from the fund's budget and nothing more: then the firm sees its ask."""
    v = {"budget_usd": 0.0, "price_floor": dict(FLOOR)}
    res = api.run(world({"vault": v}, end="2024-12"), seed=0)
    assert res.series("price_floor_paid_usd", "oxide", "usa").max() == 0.0
    budget = 1.0e6  # less than two years of floor payments: the fund runs dry within the run
    v = {"budget_usd": budget, "price_floor": dict(FLOOR)}
    res = api.run(world({"vault": v}, end="2025-12"), seed=0)
    paid = res.series("price_floor_paid_usd", "oxide", "usa").to_numpy()
    assert paid[-1] == pytest.approx(budget, rel=1e-9)  # the whole budget, not a dollar more
    left = res.series("vault_budget_left_usd", "", "usa").to_numpy()
    assert left.min() >= -1e-6 and left[-1] == pytest.approx(0.0, abs=1e-3)
    m = res.model
    sep = np.array([m.nodes.ids.index("usa_separator")])
    ask = m.state.ask[sep, 1]
    assert m.policies.price_received(m, sep, ask)[0] == pytest.approx(ask[0])


def test_production_quota_caps_mine_output():
    q = 120000.0
    res = api.run(
        world(
            {
                "production_quotas": {
                    "cn_mining": {"region": "china", "role": "mine", "quota_t_per_yr": q}
                }
            }
        ),
        seed=0,
    )
    prod = res.series("production_t", "concentrate", "china").to_numpy()
    assert prod.max() <= q / 12 + 1e-6


def test_recycling_target_raises_collection():
    pol = {
        "recycling_targets": {
            "all": {
                "start": "2024-01",
                "start_share": 0.02,
                "target_share": 0.15,
                "target_month": "2026-12",
            }
        }
    }
    res = api.run(world(pol), seed=0)
    rate = res.series("collection_rate_share", "scrap", "china").to_numpy()
    assert rate[-1] == pytest.approx(0.15)
    assert rate[0] < 0.03


def test_subsidy_lowers_cost_within_budget():
    pol = {
        "subsidies": {
            "usa": {
                "region": "usa",
                "roles": ["magnet_plant"],
                "incentive_usd_per_kg": 5.0,
                "budget_usd": 5.0e6,
            }
        }
    }
    res = api.run(world(pol), seed=0)
    paid = res.series("subsidy_paid_usd", "", "usa").to_numpy()
    assert paid.max() <= 5.0e6 + 1e-6 and paid.max() > 0


def test_subsidy_cuts_cost_only_on_paid_volume_and_not_in_spin_up():
    incentive, cap = 5.0, 600.0  # t/yr paid for, well below the firm's expected output
    pol = {
        "subsidies": {
            "usa": {
                "region": "usa",
                "firms": ["usa_magnets"],
                "incentive_usd_per_kg": incentive,
                "max_output_t_per_yr": cap,
                "budget_usd": 1.0e9,
            }
        }
    }
    from sim.world import validate_world

    m = SupplyChainModel(validate_world(world(pol)), rng=0)
    s, i = m.state, m.nodes.ids.index("usa_magnets")
    # after the spin-up (which the scheme sits out) the firm plans on its full cost
    assert s.conv_cost[i] == s.op_cost[i]
    m.step()
    expected = float(s.prod_ema[i])
    cut = s.op_cost[i] - s.conv_cost[i]
    assert 0 < cut < incentive
    m.step()
    cut2 = s.op_cost[i] - s.conv_cost[i]
    assert cut2 == pytest.approx(incentive * min(1.0, cap / 12 / float(s.prod_ema[i])), rel=0.2)
    assert expected > cap / 12


def test_customs_hold_stops_exempt_exports_for_its_months_only():
    """Customs hold exempt shipments in a licensing regime's first months (docs/policies.md).

    Counterfactual: the same regime and seed without the hold. No licence is ever approved,
    so what leaves China is the exempt flow alone: with the hold it is cut to
    ``1 - customs_hold_share`` in the held months and back to the counterfactual's after.
    """
    rule = {
        "start": "2025-04",
        "approval_probability": 0.0,
        "defence_approval_probability": 0.0,
        "exempt_share": 0.5,
    }
    free = api.run(world({"export_controls": rule}, end="2025-09"), seed=3)
    held = api.run(
        world(
            {"export_controls": rule | {"customs_hold_months": 2, "customs_hold_share": 1.0}},
            end="2025-09",
        ),
        seed=3,
    )
    k = month_index(free, "2025-04")
    a, b = cn_exports(free), cn_exports(held)
    assert a[k : k + 2].min() > 0  # the exempt flow moves without the hold
    assert b[k : k + 2].max() <= 1e-9  # and is held with it
    assert np.array_equal(a[:k], b[:k])  # nothing changes before the rule
    assert b[k + 2 :].min() > 0  # after the hold the exempt flow moves again


def test_mass_balance_with_every_instrument():
    pol = {
        "export_controls": {
            "start": "2025-04",
            "approval_probability": 0.7,
            "quota_t_per_yr": 20000,
            "leakage_share": 0.1,
            "export_duty_share": 0.05,
            "exempt_share": 0.1,
        },
        "stockpiles": {
            "usa": {"budget_usd": 5e8, "rotation_share_per_yr": 0.2},
            "eu": {"budget_usd": 5e8, "release_above_usd_per_kg": 60},
        },
        "vault": copy.deepcopy(VAULT)
        | {"price_floor": {"floor_usd_per_kg": 110, "firms": ["usa_separator"]}},
        "subsidies": {
            "usa": {
                "region": "usa",
                "incentive_usd_per_kg": 3,
                "budget_usd": 1e8,
                "capacity": [{"firm": "usa_metal", "capacity_t_per_yr": 500, "online": "2026-01"}],
            }
        },
        "recycling_targets": {
            "all": {"start": "2025-01", "target_share": 0.15, "target_month": "2030-12"}
        },
        "production_quotas": {
            "mine": {"region": "china", "role": "mine", "quota_t_per_yr": 200000}
        },
        "substitution_rd": {
            "start": "2025-01",
            "rate_multiplier": 2.0,
            "extra_substitution_max_share": 0.1,
        },
    }
    res = api.run(world(pol, end="2030-12"), seed=5)
    bal = res.balance()
    assert bal.residual_t.abs().max() < 1e-6
    assert (res.timeseries.query("metric == 'inventory_t'").value >= -1e-9).all()
    # every instrument is held by the government of its region (the registry attaches it)
    m = res.model
    held = {id(i): g.region for g in m.governments for i in g.instruments}
    for ins in m.policies.instruments:
        members = getattr(ins, "rules", None) or [ins]
        for x in members:
            assert id(x) in held, f"{type(x).__name__} is held by no government"
            regions = getattr(x, "regions", None) or [getattr(x, "region", None) or "world"]
            assert held[id(x)] in regions
    gov = {g.region: g for g in m.governments}
    assert any(type(i).__name__ == "Stockpiles" for i in gov["eu"].instruments)
    assert any(type(i).__name__ == "ExportControls" for i in gov["china"].instruments)


@pytest.mark.parametrize(
    "policies, match",
    [
        ({"export_control": {}}, "did you mean 'export_controls'"),
        ({"export_controls": {"aproval_probability": 0.5}}, "aproval_probability: unknown key"),
        ({"export_controls": {"approval_probability": 1.5}}, "approval_probability"),
        ({"vault": {"budget_usd": 1, "milestone_share": [0.5, 0.5, 0.5, 0.5]}}, "sum to 1"),
        ({"stockpiles": {"usa": {"target_days": 60}}}, "budget_usd: required"),
    ],
)
def test_schema_errors_are_clear(policies, match):
    with pytest.raises(UserError, match=match):
        api.run(world(policies), seed=0)


def test_cross_reference_errors():
    with pytest.raises(
        UserError,
        match=r"candidates\[0\].firm: 'usa_magnet' is no firm id; "
        "did you mean 'usa_magnets'",
    ):
        api.run(
            world(
                {
                    "vault": {
                        "budget_usd": 1e9,
                        "candidates": [
                            {
                                "firm": "usa_magnet",
                                "capacity_t_per_yr": 1,
                                "capex_usd_per_t_per_yr": 1,
                            }
                        ],
                    }
                }
            )
        )
    with pytest.raises(UserError, match="is in excluded region 'china'"):
        api.run(
            world(
                {
                    "vault": {
                        "budget_usd": 1e9,
                        "candidates": [
                            {
                                "firm": "china_magnets",
                                "capacity_t_per_yr": 1,
                                "capex_usd_per_t_per_yr": 1,
                            }
                        ],
                    }
                }
            )
        )


def test_ui_overrides():
    raw = world(
        {
            "export_controls": {"start": "2025-04"},
            "stockpiles": {"usa": {"budget_usd": 1e8}},
            "vault": {"budget_usd": 1e9},
            "recycling_targets": {"all": {"target_share": 0.1, "target_month": "2030-12"}},
        }
    )
    res = api.run(
        raw,
        seed=0,
        end="2025-06",
        overrides=[
            "policies.export_controls.approval_probability=0.3",
            "policies.stockpiles.usa.target_days=30",
            "policies.vault.budget_usd=2e9",
            "policies.recycling_targets.all.target_share=0.2",
        ],
    )
    sc = res.manifest["scenario"]["policies"]
    assert sc["export_controls"]["approval_probability"] == 0.3
    assert res.model.policies.instruments[0].rules[0].approval.max() == pytest.approx(0.3)
    assert sc["stockpiles"]["usa"]["target_days"] == 30


def test_instruments_keep_common_random_numbers():
    """An instrument draws from its own child generator: before it starts, a run with it is
    identical to a run without it (the model's own draws are unchanged)."""
    vault = copy.deepcopy(VAULT) | {"start": "2026-06"}
    with_it = api.run(world({"vault": vault}, end="2026-05"), seed=9)
    without = api.run(world({}, end="2026-05"), seed=9)
    a = with_it.timeseries[with_it.timeseries["metric"] == "production_t"]
    b = without.timeseries[without.timeseries["metric"] == "production_t"]
    np.testing.assert_array_equal(a["value"].to_numpy(), b["value"].to_numpy())
