"""The classroom web app without a browser: control mapping, model wrapper, figures, CLI."""

from __future__ import annotations

from dataclasses import asdict

import numpy as np
import pytest

from sim import app
from sim.app import ClassroomModel, Controls, controls_to_overrides, policy_tables
from sim.world import load_world, read_toml

CLASSROOM = app.WORLDS["classroom"]
ALL_ON = Controls(
    export_controls=True,
    approval_rate=0.3,
    stockpile_days=90,
    vault_budget_busd=2.0,
    recycling_rate=0.2,
    demand_growth=1.5,
)


def worlds() -> list[str]:
    return [k for k, p in app.WORLDS.items() if p.exists()]


def test_defaults_only_set_demand_growth():
    raw = read_toml(CLASSROOM)
    assert controls_to_overrides(Controls(), raw) == ["behaviour.demand_growth_multiplier=1.0"]


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
    # the overrides alone rebuild the same policy tables in the world
    _, resolved = load_world(CLASSROOM, ov)
    assert resolved["policies"] == tables


@pytest.mark.parametrize("world", worlds())
def test_all_controls_build_and_run(world):
    m = ClassroomModel(**{**asdict(ALL_ON), "world": world})
    assert m.error is None, m.error
    names = {type(i).__name__ for i in m.sim.policies.instruments}
    assert {"Stockpiles", "Vault", "RecyclingTargets"} <= names
    for _ in range(18):  # through the export controls' start
        m.step()
    assert m.error is None, m.error
    assert m.sim.recorder.t == 18
    assert np.isinf(m.sim.policies.cap_t).sum() < m.sim.links.n  # some links licensed/blocked
    for fig in (
        app.network_figure(m.sim),
        app.price_figure(m.sim),
        app.shortage_figure(m.sim),
        app.production_figure(m.sim),
        app.stockpile_figure(m.sim),
    ):
        assert fig.axes


@pytest.mark.parametrize(
    "extreme",
    [
        dict(demand_growth=0.0, approval_rate=0.0, export_controls=True),
        dict(demand_growth=3.0, stockpile_days=180, vault_budget_busd=5.0, recycling_rate=0.5),
        dict(seed=20, export_controls=True, approval_rate=1.0),
    ],
)
def test_extreme_controls_run_to_the_end(extreme):
    m = ClassroomModel(**extreme)
    assert m.error is None, m.error
    while m.running:
        m.step()
    assert m.error is None, m.error
    assert m.sim.recorder.t == m.sim.n_months
    assert np.isfinite(m.sim.recorder.price_world[:, [1, 3]]).all()  # oxide, magnet
    app.network_figure(m.sim)
    app.stockpile_figure(m.sim)


def test_bad_world_is_reported_not_raised():
    m = ClassroomModel(world="no_such_world")
    assert m.sim is None and "not available" in m.error
    m.step()
    assert m.running is False


def test_figures_before_the_first_step():
    m = ClassroomModel()
    assert "nothing run yet" in app.headline(m.sim)
    for f in (app.price_figure, app.shortage_figure, app.stockpile_figure):
        assert f(m.sim).axes


def test_layout_is_deterministic_by_stage():
    m = ClassroomModel()
    pos = app.layout_positions(m.sim.graph)
    assert pos == app.layout_positions(m.sim.graph)
    for node, d in m.sim.graph.nodes(data=True):
        assert pos[node][0] == app.STAGES.index(d["role"])
    assert len(set(pos.values())) == len(pos)


def test_model_params_match_the_model():
    params = app.model_params()
    import inspect

    init = inspect.signature(ClassroomModel.__init__).parameters
    assert set(params) <= set(init)
    assert set(Controls.__dataclass_fields__) == set(init) - {"self"}
    assert app.unavailable_controls() == {}


def test_world_env_adds_a_custom_world(monkeypatch, tmp_path):
    p = tmp_path / "mine.toml"
    p.write_text(CLASSROOM.read_text())
    monkeypatch.setenv(app.WORLD_ENV, str(p))
    assert app.default_world() == "mine"
    assert ClassroomModel(world="mine").error is None


def test_ui_command_is_registered():
    from sim.app_cli import server_command, server_env
    from sim.cli import build_parser

    args = build_parser().parse_args(["ui", "--port", "9999", "--world", str(CLASSROOM)])
    assert args.port == 9999 and args.func.__name__ == "cmd_ui"
    cmd = server_command(9999)
    assert cmd[-6:] == ["--host", "127.0.0.1", "--port", "9999", "--production", "--no-open"]
    env = server_env(str(CLASSROOM))
    assert env[app.WORLD_ENV] == str(CLASSROOM.resolve())
    assert env["SOLARA_ASSETS_PROXY_CACHE_DIR"]


def test_ui_rejects_a_missing_world(capsys):
    from sim.cli import main

    assert main(["ui", "--world", "nope.toml"]) == 2
    assert "no such file" in capsys.readouterr().err
