"""Using a calibration: the ``calibration = "..."`` world key and ``ndsim run --posterior``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sim.cli import main
from sim.errors import UserError

ROOT = Path(__file__).resolve().parents[1]
CLASSROOM = ROOT / "models" / "classroom.toml"


def _world_with(tmp_path: Path, ref: str) -> Path:
    text = CLASSROOM.read_text()
    w = tmp_path / "world.toml"
    w.write_text(f'calibration = "{ref}"\n' + text)
    return w


def _point(d: Path, values: dict[str, float]) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    body = "\n".join(f'"{k}" = {v}' for k, v in values.items())
    (d / "point.toml").write_text("[values]\n" + body + "\n")
    return d / "point.toml"


def test_world_uses_calibrated_values_by_reference(tmp_path):
    from sim.scenario import load_scenario
    from sim.world import load_world

    _point(
        tmp_path / "cal",
        {"behaviour.price_sensitivity": 3.25, "mines.usa_mine.capacity_t_per_yr": 12345.0},
    )
    for ref in ("cal/point.toml", "cal"):  # the file, or the calibration's folder
        world, _ = load_world(_world_with(tmp_path, ref))
        assert world.behaviour.price_sensitivity == 3.25
        assert world.mines[1].id == "usa_mine" and world.mines[1].capacity_t_per_yr == 12345.0
    plain, _ = load_world(CLASSROOM)  # the counterfactual: the world's own value
    assert plain.behaviour.price_sensitivity != 3.25
    # --set comes after the calibration
    world, _ = load_world(tmp_path / "world.toml", ["behaviour.price_sensitivity=7.5"])
    assert world.behaviour.price_sensitivity == 7.5
    # experiment files and sweeps reach it through their world
    exp = tmp_path / "exp.toml"
    exp.write_text('world = "world.toml"\n[[scenarios]]\nname = "a"\n')
    assert load_scenario(f"{exp}#a").world().behaviour.price_sensitivity == 3.25


def test_missing_or_empty_calibration_is_a_clear_error(tmp_path, capsys):
    w = _world_with(tmp_path, "nowhere/point.toml")
    assert main(["validate", str(w)]) == 2
    err = capsys.readouterr().err
    assert str(w) in err and "calibration: no file 'nowhere/point.toml'" in err
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "point.toml").write_text("# nothing\n")
    w = _world_with(tmp_path, "empty")
    assert main(["validate", str(w)]) == 2
    assert "no [values] table" in capsys.readouterr().err
    _point(tmp_path / "bad", {"behaviour.price_sensitivty": 3.0})
    w = _world_with(tmp_path, "bad")
    assert main(["validate", str(w)]) == 2
    assert "behaviour.price_sensitivty: unknown key" in capsys.readouterr().err


def _posterior(d: Path, caps: list[float], weights: list[float]) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    col = "mines__usa_mine__capacity_t_per_yr"
    pd.DataFrame({col: caps, "weight": weights}).to_parquet(d / "posterior.parquet")
    spec = {"parameters": [{"path": "mines.usa_mine.capacity_t_per_yr", "name": None}]}
    (d / "calibrate.json").write_text(json.dumps({"spec": spec}))
    return d


def test_posterior_draws_are_seeded_and_follow_the_weights(tmp_path):
    from sim.calibrate.posterior import draw

    d = _posterior(tmp_path / "post", [10000.0, 20000.0, 30000.0], [0.0, 0.25, 0.75])
    a, b = draw(d, 400, seed=5), draw(d, 400, seed=5)
    assert a == b and draw(d, 400, seed=6) != a
    vals = np.array([float(s[0].split("=")[1]) for s in a])
    assert not (vals == 10000.0).any()  # weight 0 is never drawn
    # the 0.75 set: binomial(400, 0.75) lies within 4 standard deviations of 300
    assert abs((vals == 30000.0).sum() - 300) < 4 * np.sqrt(400 * 0.75 * 0.25)
    with pytest.raises(UserError, match="no finished calibration"):
        draw(tmp_path, 2, seed=0)


def test_run_world_with_posterior_gives_each_seed_a_drawn_parameter_set(tmp_path):
    d = _posterior(tmp_path / "post", [12000.0, 55000.0], [0.5, 0.5])
    out = tmp_path / "run"
    args = ["run", str(CLASSROOM), "--posterior", str(d), "--draws", "4", "--workers", "1",
            "--start", "2024-01", "--end", "2025-12", "--out", str(out)]  # fmt: skip
    assert main(args) == 0
    draws = pd.read_csv(out / "posterior_draws.csv")
    assert list(draws["replicate"]) == [0, 1, 2, 3]
    assert set(draws["mines.usa_mine.capacity_t_per_yr"]) <= {12000.0, 55000.0}
    runs = pd.read_parquet(out / "runs.parquet")
    assert len(runs) == 4 and (runs["status"] == "ok").all()
    # seed 0's full results: the US mine's capacity is the one replicate 0 drew, not the
    # world's own 40000 t/yr
    ts = pd.read_parquet(out / "classroom" / "timeseries.parquet")
    cap = ts[(ts["metric"] == "capacity_t_per_yr") & (ts["product"] == "concentrate")
             & (ts["region"] == "usa")]["value"]  # fmt: skip
    assert cap.iloc[0] == draws["mines.usa_mine.capacity_t_per_yr"].iloc[0] != 40000.0


ROOT = Path(__file__).resolve().parents[1]
HISTORY_FIT = ROOT / "models" / "calibrated" / "calibrate_history"


def test_sobol_study_samples_the_posterior_ranges_of_the_calibrated_parameters():
    """sweep_baseline_sobol.toml's calibrated parameters span the posterior's 5-95 % range."""
    from sim.calibrate.posterior import posterior_ranges
    from sim.experiments.spec import load_spec

    spec, _ = load_spec(ROOT / "experiments" / "sweep_baseline_sobol.toml")
    ranges = posterior_ranges(HISTORY_FIT)
    by_path = {p.path: p for p in spec.parameters}
    assert set(ranges) <= set(by_path), "every calibrated parameter is in the study"
    for path, (lo, hi) in ranges.items():
        p = by_path[path]
        assert (p.low, p.high) == (float(f"{lo:.3g}"), float(f"{hi:.3g}")), path


def test_history_world_uses_the_committed_calibration():
    """models/history_2020.toml runs with the point estimate of its calibration."""
    import tomllib

    from sim.world import load_world

    point = tomllib.loads((HISTORY_FIT / "point.toml").read_text())["values"]
    world, _ = load_world(ROOT / "models" / "history_2020.toml")
    b = world.behaviour
    assert b.price_discovery_months == point["behaviour.price_discovery_months"]
    assert b.supply_elasticity["separator"] == point["behaviour.supply_elasticity.separator"]
    assert b.precaution_momentum_weight == point["behaviour.precaution_momentum_weight"]
