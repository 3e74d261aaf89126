"""Experiment files: loading, clear errors, running into DIR/<scenario>/ with a report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sim.cli import main
from sim.errors import UserError
from sim.scenarios import load_experiment, run_experiment_file

ROOT = Path(__file__).resolve().parents[1]
CLASSROOM = (ROOT / "models" / "classroom.toml").as_posix()

GOOD = f'''
world = "{CLASSROOM}"
end = "2025-12"
[report]
event_month = "2025-05"
[[scenarios]]
name = "baseline"
[[scenarios]]
name = "controls"
set = ["behaviour.price_discovery_months=3"]
[scenarios.policies.export_controls]
start = "2025-04"
approval_probability = 0.5
'''


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "exp.toml"
    p.write_text(text)
    return p


def test_run_writes_scenarios_figures_report(tmp_path):
    p = write(tmp_path, GOOD)
    out = tmp_path / "out"
    assert run_experiment_file(p, out=out, seeds=2, workers=1, progress=False) == 0
    for name in ("baseline", "controls"):
        assert (out / name / "timeseries.parquet").exists()
        assert (out / name / "figures" / "prices.png").exists()
        man = json.loads((out / name / "manifest.json").read_text())
        assert man["scenario_name"] == name
        assert man["seed"] == 0
    assert (out / "figures" / "prices.png").exists()
    text = (out / "report.md").read_text()
    assert "| metric | baseline | controls |" in text
    assert "Key numbers: effects against baseline (paired by seed)" in text


def test_cli_run_and_validate(tmp_path, capsys):
    p = write(tmp_path, GOOD)
    assert main(["validate", str(p)]) == 0
    assert "2 scenarios" in capsys.readouterr().out


@pytest.mark.parametrize(
    "text, problem",
    [
        (GOOD.replace('name = "controls"', 'name = "baseline"'), "duplicate name 'baseline'"),
        (GOOD.replace("set = [", "sett = ["), "scenarios[1].sett: unknown key; did you mean 'set'"),
        (
            GOOD.replace("price_discovery_months=3", "price_adjust_rte=0.05"),
            "price_adjust_rte: unknown key",
        ),
        (
            GOOD.replace("approval_probability = 0.5", "approval_probability = 2"),
            "approval_probability",
        ),
        (GOOD.replace('world = "', 'world = "nope/'), "world: file not found"),
        (GOOD.replace("end =", "seeds = 0\nend ="), "seeds: expected a positive integer"),
        (
            GOOD.replace('name = "controls"', 'name = "controls"\nseed = 3'),
            "scenarios[1].seed: scenarios share the experiment's seeds",
        ),
        (GOOD.replace("end =", 'reference = "basline"\nend ='), "did you mean 'baseline'"),
        (GOOD.replace('event_month = "2025-05"', 'event_month = "May"'), "report.event_month"),
        (
            GOOD.replace('name = "controls"', 'name = "controls"\ncalibration = "no/such"'),
            "scenarios[1].calibration: no file 'no/such'",
        ),
        (
            GOOD.replace(
                "[scenarios.policies.export_controls]",
                "[scenarios.policies.vault]\nbudget_usd = 1\n"
                "candidates = [{firm='x', capacity_t_per_yr=1, capex_usd_per_t_per_yr=1}]\n"
                "[scenarios.policies.export_controls]",
            ),
            "'x' is no firm id",
        ),
    ],
)
def test_errors_are_clear_and_nothing_written(tmp_path, capsys, text, problem):
    p = write(tmp_path, text)
    with pytest.raises(UserError) as exc:
        load_experiment(p)
    assert problem in str(exc.value)
    out = tmp_path / "out"
    assert main(["run", str(p), "--out", str(out)]) == 2
    assert problem in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.parametrize(
    "name",
    ["export_controls_2025", "project_vault", "stockpile", "china_capacity_2028", "recycling_2030"],
)
def test_shipped_experiments_validate(name):
    path = ROOT / "experiments" / f"{name}.toml"
    if not (ROOT / "models" / "baseline_2024.toml").exists():
        pytest.skip("baseline world not present")
    exp = load_experiment(path)
    assert len(exp.scenarios) >= 2


def test_scenario_calibration_replaces_policies_and_set_replaces_it(tmp_path):
    """A scenario's `calibration` (ndsim calibrate's point.toml) sets its values over the
    scenario's own `policies`; its `set` still changes them (a sensitivity scenario)."""
    (tmp_path / "cal").mkdir()
    (tmp_path / "cal" / "point.toml").write_text(
        '[values]\n"policies.export_controls.approval_probability" = 0.25\n'
        '"policies.export_controls.processing_days" = 30.0\n'
    )
    text = GOOD.replace('name = "controls"', 'name = "controls"\ncalibration = "cal"')
    text += (
        '[[scenarios]]\nname = "faster"\ncalibration = "cal/point.toml"\n'
        'set = ["policies.export_controls.processing_days=10"]\n'
        '[scenarios.policies.export_controls]\nstart = "2025-04"\napproval_probability = 0.9\n'
    )
    exp = load_experiment(write(tmp_path, text))
    controls = exp.scenario("controls").world_raw["policies"]["export_controls"]
    faster = exp.scenario("faster").world_raw["policies"]["export_controls"]
    assert controls["approval_probability"] == 0.25  # the file said 0.5
    assert controls["processing_days"] == 30.0
    assert faster["approval_probability"] == 0.25  # the file said 0.9
    assert faster["processing_days"] == 10
    assert "export_controls" not in exp.scenario("baseline").world_raw.get("policies", {})
