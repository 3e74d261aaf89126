"""The classroom web app without a browser: levers, live changes, charts, CLI."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from sim.app import charts
from sim.app.controls import (
    PRESETS,
    WORLDS,
    Controls,
    controls_to_overrides,
    policy_tables,
    unavailable_controls,
)
from sim.app.live import LiveRun
from sim.world import load_world, read_toml

CLASSROOM = WORLDS["classroom"]
ALL_ON = Controls(
    export_controls=True,
    approval_rate=0.3,
    stockpile_days=90,
    vault_budget_busd=2.0,
    recycling_rate=0.2,
    demand_growth=1.5,
)


def worlds() -> list[str]:
    return [k for k, p in WORLDS.items() if p.exists()]


def test_defaults_only_set_demand_growth():
    raw = read_toml(CLASSROOM)
    assert controls_to_overrides(Controls(), raw) == ["behaviour.demand_growth_multiplier=1.0"]
    assert unavailable_controls() == {}


def test_each_control_produces_its_policy_table():
    raw = read_toml(CLASSROOM)
    tables = policy_tables(ALL_ON, raw)
    assert set(tables) == {"export_controls", "stockpiles", "vault", "recycling_targets"}
    assert tables["export_controls"]["approval_probability"] == 0.3
    assert tables["export_controls"]["start"] == "2025-04"
    assert tables["stockpiles"]["usa"]["target_days"] == 90.0
    assert tables["vault"]["budget_usd"] == 2e9
    assert {c["firm"] for c in tables["vault"]["candidates"]} == {
        "usa_separator",
        "usa_metal",
        "eu_magnets",
        "usa_magnets",
    }
    assert tables["recycling_targets"]["all"]["target_share"] == 0.2
    ov = controls_to_overrides(ALL_ON, raw)
    assert "policies.export_controls.approval_probability=0.3" in ov
    assert "policies.stockpiles.usa.target_days=90.0" in ov
    assert "behaviour.demand_growth_multiplier=1.5" in ov
    _, resolved = load_world(CLASSROOM, ov)
    assert resolved["policies"] == tables
    # a lever changed during a run acts from the month given, not before
    later = policy_tables(ALL_ON, raw, "2026-03")
    assert later["export_controls"]["start"] == "2026-03"
    assert later["stockpiles"]["usa"]["start"] == "2026-03"


def _run(c: Controls, months: int) -> LiveRun:
    r = LiveRun(c)
    r.step(months)
    return r


def test_live_change_acts_from_next_month_and_leaves_the_past_alone():
    """Export controls switched on in month 18: identical history before, different after."""
    off = _run(Controls(), 18)
    live = _run(Controls(), 18)
    live.set_controls(replace(live.controls, export_controls=True, approval_rate=0.1))
    assert live.pending is not None
    live.step(18)
    off.step(18)
    a, b = off.model.recorder, live.model.recorder
    np.testing.assert_array_equal(a.shortage[:18], b.shortage[:18])
    np.testing.assert_array_equal(a.price_world[:18], b.price_world[:18])
    assert not np.array_equal(a.price_world[18:36], b.price_world[18:36])
    assert b.shortage[18:36].sum() > a.shortage[18:36].sum()
    assert any(e.kind == "controls" for e in live.events)


def test_live_stockpile_keeps_its_stock_when_the_target_changes():
    r = _run(Controls(stockpile_days=60), 12)
    s0 = r.series().stockpile["usa"][-1]
    assert s0 > 0
    r.set_controls(replace(r.controls, stockpile_days=120))
    r.step(1)
    s1 = r.series().stockpile["usa"][-1]
    assert s1 >= s0 - 1e-6  # nothing lost at the hand-over; buying continues towards 120 days
    assert r.totals()["usa"]["money_usd"] > 0


def test_live_demand_growth_changes_demand_only_from_next_month():
    a, b = _run(Controls(), 24), _run(Controls(), 24)
    b.set_controls(replace(b.controls, demand_growth=3.0))
    a.step(24)
    b.step(24)
    da, db = a.model.recorder.demand, b.model.recorder.demand
    np.testing.assert_array_equal(da[:24], db[:24])
    assert db[40].sum() > da[40].sum()


@pytest.mark.parametrize("world", worlds())
def test_presets_run_and_chart_on_both_worlds(world):
    for p in PRESETS.values():
        r = _run(replace(p.controls, world=world), 30)
        v = charts.View(r.series(), r.baseline(), tuple(r.events), ("2024-01-01", "2027-01-01"))
        for name in p.charts:
            opt = charts.CHART_BUILDERS[name](v)
            assert opt["series"], name
        lay = charts.network_layout(r.model)
        net = charts.network_chart(r.model, lay, "t")
        assert net["series"][0]["data"]
        assert r.what_just_happened(r.events[-1:])


def test_blocked_is_not_a_region_colour():
    assert charts.BLOCKED_COLOUR not in charts.REGION_COLOUR.values()
    assert charts.LICENSED_COLOUR not in charts.REGION_COLOUR.values()


def test_window_follows_play_and_whole_run():
    first, last = 2024 * 12, 2036 * 12 + 11
    assert charts.window(first, last, first + 60, True) == ("2024-01-01", "2037-01-01")
    lo, hi = charts.window(first, last, first + 60, False)
    assert lo == "2026-02-01" and hi == "2029-02-01"


def test_ui_command_is_registered():
    from sim.app_cli import cdn_packages, server_command, server_env
    from sim.cli import build_parser

    args = build_parser().parse_args(["ui", "--port", "9999", "--world", str(CLASSROOM)])
    assert args.port == 9999 and args.func.__name__ == "cmd_ui"
    cmd = server_command(9999)
    assert cmd[-6:] == ["--host", "127.0.0.1", "--port", "9999", "--production", "--no-open"]
    env = server_env(str(CLASSROOM))
    assert env["SOLARA_ASSETS_PROXY_CACHE_DIR"] and env["SOLARA_THEME_SHOW_BANNER"] == "False"
    assert any(p.startswith("echarts@") for p in cdn_packages())


def test_ui_rejects_a_missing_world(capsys):
    from sim.cli import main

    assert main(["ui", "--world", "nope.toml"]) == 2
    assert "no such file" in capsys.readouterr().err


def test_status_line_leads_with_the_month_shown():
    from sim.app.live import Event, month_words

    r = LiveRun(PRESETS["Exercise 1: export controls"].controls)
    events = r.step(12)
    now = month_words(r.month_shown)  # the month the network's title shows
    assert r.what_just_happened(events).startswith(now + ":")
    old = Event(r.month_shown - 5, "capacity", "something happened")
    assert r.what_just_happened([old]) == f"{now}: in {month_words(old.month_abs)}, {old.text}"
    new = Event(r.month_shown, "capacity", "something happened")
    assert r.what_just_happened([new]) == f"{now}: {new.text}"


def test_no_policy_run_has_a_grey_legend_entry():
    r = LiveRun(PRESETS["Exercise 1: export controls"].controls)
    r.step(3)
    m = r.model
    v = charts.View(r.series(), r.baseline(), (), charts.window(m.start_abs, m.end_abs, 0, True))
    for build in charts.CHART_BUILDERS.values():
        for s in build(v)["series"]:
            if s["name"] == "no-policy run":
                assert s["itemStyle"]["color"] == charts.BASELINE_KEY_COLOUR
    assert charts.BASELINE_KEY_COLOUR not in charts.REGION_COLOUR.values()
