"""One Scenario everywhere: experiment files, sweep specs and the Python API build the same one."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

import sim
from sim.cli import main
from sim.errors import UserError
from sim.experiments.runner import prepare, sweep
from sim.scenario import load_scenario
from sim.scenarios import load_experiment

ROOT = Path(__file__).resolve().parents[1]
CLASSROOM = (ROOT / "models" / "classroom.toml").as_posix()

EXP = f'''
world = "{CLASSROOM}"
end = "2025-12"
[defaults]
set = ["behaviour.price_discovery_months=3"]
[[scenarios]]
name = "baseline"
[[scenarios]]
name = "controls"
[scenarios.policies.export_controls]
start = "2025-04"
approval_probability = 0.5
'''

SPEC = """
name = "from_experiment"
seed = 3
[base]
experiment = "exp.toml"
scenario = "controls"
overrides = ["behaviour.price_sensitivity=5.0"]
[design]
method = "lhs"
n = 2
[[parameters]]
name = "approval"
path = "policies.export_controls.approval_probability"
low = 0.2
high = 0.9
[[outcomes]]
name = "exports_price"
metric = "price_usd_per_kg"
product = "magnet"
region = "china"
reduce = "mean"
"""


@pytest.fixture
def files(tmp_path):
    (tmp_path / "exp.toml").write_text(EXP)
    (tmp_path / "spec.toml").write_text(SPEC)
    return tmp_path


def test_scenario_reference_resolves_defaults_policies_and_period(files):
    sc = load_scenario(f"{files / 'exp.toml'}#controls")
    assert sc.name == "controls" and sc.end == "2025-12"
    assert sc.world_raw["behaviour"]["price_discovery_months"] == 3
    assert sc.world_raw["policies"]["export_controls"]["approval_probability"] == 0.5
    model = sc.build_model(seed=4)
    assert model.n_months == 24 and model.recorder is not None
    res = sc.run(seed=4)
    assert res.manifest["scenario_name"] == "controls" and res.manifest["seed"] == 4
    # the same scenario through sim.run gives the same bytes
    res2 = sim.run(sc, seed=4)
    pd.testing.assert_frame_equal(res.timeseries, res2.timeseries)
    with pytest.raises(UserError, match="did you mean 'controls'"):
        load_scenario(f"{files / 'exp.toml'}#contrls")


def test_sweep_base_is_the_experiments_scenario(files):
    prep = prepare(files / "spec.toml")
    exp = load_experiment(files / "exp.toml")
    want = exp.scenario("controls").with_overrides(["behaviour.price_sensitivity=5.0"])
    assert prep.ctx.world_raw == want.world_raw
    assert prep.ctx.end == "2025-12"
    s = sweep(files / "spec.toml", out=files / "sw", workers=1, progress=False)
    assert s.n_errors == 0 and s.n_ran == 2
    # editing the experiment changes the sweep's fingerprint: no silent mixing on --resume
    (files / "exp.toml").write_text(
        EXP.replace("price_discovery_months=3", "price_discovery_months=4")
    )
    assert prepare(files / "spec.toml").ctx.key != prep.ctx.key


@pytest.mark.parametrize(
    "base, problem",
    [
        ('experiment = "exp.toml"', "needs 'scenario'"),
        ('world = "w.toml"\nexperiment = "exp.toml"\nscenario = "x"', "either 'world'"),
        ('experiment = "exp.toml"\nscenario = "nope"', "no scenario 'nope'"),
    ],
)
def test_bad_base_references_are_clear(files, base, problem):
    text = SPEC.replace('experiment = "exp.toml"\nscenario = "controls"', base)
    (files / "spec.toml").write_text(text)
    with pytest.raises(UserError, match=problem):
        prepare(files / "spec.toml")
    out = files / "sw"
    assert main(["sweep", str(files / "spec.toml"), "--out", str(out)]) == 2
    assert not out.exists()


def test_sim_run_of_an_experiment_file_says_so(files):
    with pytest.raises(UserError, match="this is an experiment file") as exc:
        sim.run(files / "exp.toml")
    assert len(exc.value.problems) == 0
    with pytest.raises(UserError, match="sweep spec"):
        sim.run(files / "spec.toml")


def test_failed_sweep_connection_leaves_nothing(files, capsys):
    out = files / "sw"
    rc = main(
        ["sweep", str(files / "spec.toml"), "--out", str(out), "--scheduler", "tcp://127.0.0.1:1"]
    )
    assert rc == 2
    assert "cannot connect" in capsys.readouterr().err
    assert not out.exists()
