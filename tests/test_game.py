"""The rare-earth game without a browser: tokens, turns, undo, isolation, debrief."""

from __future__ import annotations

import numpy as np
import pytest

from sim.game.session import GameError, Games


@pytest.fixture
def game():
    g = Games().create()
    g.tokens = {r: g.join(r, r).token for r in ("china", "usa", "eu")}
    return g


def test_a_team_changes_only_its_own_levers(game):
    with pytest.raises(GameError) as e:
        game.set_lever(game.tokens["usa"], "china", "approval", 0.0)
    assert e.value.status == 403
    with pytest.raises(GameError):
        game.set_lever("forged", "china", "approval", 0.0)
    assert game.levers["china"]["approval"] == 1.0
    assert game.set_lever(game.tokens["china"], "china", "approval", 7) == 1.0  # clamped
    with pytest.raises(GameError):
        game.join("china", "again")  # taken
    with pytest.raises(GameError):
        game.advance(game.tokens["china"])  # teacher only


def test_decisions_act_through_the_instruments_and_undo_replays(game):
    game.set_lever(game.tokens["china"], "china", "approval", 0.1)
    for _ in range(2):
        game.advance(game.teacher_token)
    with_controls = game.scoreboard()["usa"]["US shortage (t)"]
    assert with_controls[0] > with_controls[1]  # vs the no-decision run
    shortage = game.run.model.recorder.shortage[:24].copy()
    game.advance(game.teacher_token)
    game.undo(game.teacher_token)
    assert len(game.decisions) == 2 and game.year == 2026
    np.testing.assert_array_equal(game.run.model.recorder.shortage[:24], shortage)
    d = game.debrief()
    assert d["years"][0]["changed"] == {"china": {"approval": (1.0, 0.1)}}
    # the year-1 decision's effect is the game against a replay with the controls starting a
    # year later: it moves US shortage (its sign is the model's answer: controls announced a
    # year earlier also trigger a year of precautionary buying and supplier switching, ODD 7.2)
    assert d["years"][0]["effect"]["usa"]["US shortage (t)"] != 0
    # the debrief's lines: every objective month by month, the game against no decisions
    assert len(d["months"]) == 24 and d["months"][0] == "2024-01"
    usa = d["lines"]["usa"]["US shortage (t)"]
    # the debrief's lines are rounded to 2 decimals (sim/game/session.py)
    assert usa["game"][-1] == pytest.approx(with_controls[0], abs=0.005)
    assert usa["baseline"][-1] == pytest.approx(with_controls[1], abs=0.005)


def test_games_are_isolated():
    games = Games()
    a, b = games.create(), games.create()
    assert a.code != b.code and games.get(a.code.lower()) is a
    ta = a.join("china", "x").token
    with pytest.raises(GameError):
        b.set_lever(ta, "china", "approval", 0.0)
    a.set_lever(ta, "china", "approval", 0.0)
    assert b.levers["china"]["approval"] == 1.0


def test_deadline_closes_the_levers(game):
    game.set_deadline(game.teacher_token, -1)
    with pytest.raises(GameError) as e:
        game.set_lever(game.tokens["eu"], "eu", "stockpile_days", 30)
    assert e.value.status == 409


def play(levers: dict[str, dict[str, float]], years: int = 2):
    """A game where the teams set ``levers`` before the first year; the rest neutral."""
    g = Games().create()
    for role, lv in levers.items():
        token = g.join(role, role).token
        for key, value in lv.items():
            assert g.set_lever(token, role, key, value) == value
    for _ in range(years):
        g.advance(g.teacher_token)
    return g


def shipped(g, src_region: str, dst_region: str, product: str) -> float:
    """Tonnes shipped on links from one region into another, all months played."""
    from sim.network import P

    m = g.run.model
    reg = np.array(m.nodes.regions)[m.nodes.region]
    sel = (
        (reg[m.links.src] == src_region)
        & (reg[m.links.dst] == dst_region)
        & (m.links.product == P[product])
    )
    return float(m.recorder.shipped[: m.recorder.t, sel].sum())


def test_a_firm_team_cannot_touch_another_firms_levers():
    g = Games().create()
    ev = g.join("ev_maker", "cars").token
    with pytest.raises(GameError) as e:
        g.set_lever(ev, "magnet_maker", "invest_t_per_yr", 1000)
    assert e.value.status == 403
    with pytest.raises(GameError) as e:
        g.set_lever(ev, "ev_maker", "no_such_lever", 1)
    assert e.value.status == 400


def test_us_tariff_cuts_imports_from_china():
    none, tariff = play({}), play({"usa": {"tariff_pct": 100}})
    before = shipped(none, "china", "usa", "magnet")
    assert before > 0
    assert shipped(tariff, "china", "usa", "magnet") < before


def test_eu_subsidy_is_paid_and_raises_eu_magnet_output():
    none, paid = play({}), play({"eu": {"subsidy_usd_per_kg": 20}})
    out = [g.run.series().production["eu"].sum() for g in (none, paid)]
    assert out[1] > out[0]
    money = paid.scoreboard()["eu"]["EU public money (M USD)"][0]
    assert money > 0 and none.scoreboard()["eu"]["EU public money (M USD)"][0] == 0


def test_eu_recycling_collects_in_the_classroom_world():
    # the classroom world has no EU recycler; the game adds a dormant one the lever wakes up
    none, rec = play({}), play({"eu": {"recycling": 0.5}})
    k = none.run.model.nodes.ids.index("eu_recycler_game")
    collected = [float(g.run.model.recorder.collected[:, k].sum()) for g in (none, rec)]
    assert collected[0] == 0 and collected[1] > 0


def test_contract_pays_the_magnet_maker_and_costs_the_ev_maker():
    none, deal = play({}), play({"ev_maker": {"contract_usd_per_kg": 150, "stock_days": 60}})
    ev, mm = (
        [g.scoreboard()["ev_maker"]["EV maker cost (M USD)"][0] for g in (none, deal)],
        [g.scoreboard()["magnet_maker"]["Magnet maker profit (M USD)"][0] for g in (none, deal)],
    )
    assert ev[0] == 0 and ev[1] > 0
    assert mm[1] > mm[0]
    # the EV maker's money (stock and contract) is its own: US public money is untouched
    assert deal.scoreboard()["usa"]["US public money (M USD)"][0] == 0
    rec = deal.run.model.recorder
    # the stock is bought as sellers have magnets to spare (cumulative spending, months played)
    assert np.nanmax(rec.policy_series[("stockpile_spent_usd", "magnet", "private:ev_maker")]) > 0


def test_investment_adds_capacity_after_the_lead_time():
    none, inv = play({}, 3), play({"magnet_maker": {"invest_t_per_yr": 2000}}, 3)
    m = inv.run.model
    lead = round(12 * m.world.behaviour.lead_time_years["magnet_plant"])
    added: dict[int, float] = {}
    for month, _, delta, origin in m.capacity_added:
        if origin == "investment":
            added[month] = added.get(month, 0.0) + delta
    # decided in January of each year, online one lead time later (if within the 3 years)
    due = [m.start_abs + 12 * k + lead for k in range(3) if 12 * k + lead < 36]
    assert sorted(added) == due and all(v == pytest.approx(2000) for v in added.values())
    cap = [g.run.series().capacity for g in (none, inv)]
    outside = [sum(v[-1] for r, v in c.items() if r != "china") for c in cap]
    assert outside[1] > outside[0]
    cost = [g.scoreboard()["magnet_maker"]["Magnet maker profit (M USD)"][0] for g in (none, inv)]
    assert cost[0] != cost[1]


def test_ev_maker_and_magnet_maker_have_their_own_objectives(game):
    board = game.scoreboard()
    assert set(board["ev_maker"]) == {"EV maker shortage (t)", "EV maker cost (M USD)"}
    assert set(board["magnet_maker"]) == {"Magnet maker profit (M USD)"}
    assert not set(board["ev_maker"]) & set(board["usa"])


def test_undo_replays_every_kind_of_lever_exactly():
    g = play(
        {
            "usa": {"tariff_pct": 50, "stockpile_days": 60},
            "eu": {"subsidy_usd_per_kg": 10, "recycling": 0.3},
            "ev_maker": {"contract_usd_per_kg": 100, "invest_t_per_yr": 500},
            "magnet_maker": {"metal_stock_days": 30, "invest_t_per_yr": 500},
        }
    )
    board, shortage = g.scoreboard(), g.run.model.recorder.shortage[:24].copy()
    g.advance(g.teacher_token)
    g.undo(g.teacher_token)
    np.testing.assert_array_equal(g.run.model.recorder.shortage[:24], shortage)
    assert g.scoreboard() == board
