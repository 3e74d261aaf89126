"""Honest sensitivity reports: intervals, N/2-vs-N convergence and warnings, on known functions."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sim.experiments.analyze import sensitivity
from sim.experiments.design import make_design
from sim.experiments.spec import SweepSpec


def spec(method: str, n: int) -> SweepSpec:
    params = [
        {"name": f"x{k}", "path": f"behaviour.p{k}", "low": 0.0, "high": 1.0} for k in range(3)
    ]
    design = {"method": method, "n": n, "seed": 1}
    if method == "sobol":
        design["calc_second_order"] = False
    return SweepSpec.model_validate(
        {
            "name": "t",
            "base": {"world": "w.toml"},
            "design": design,
            "parameters": params,
            "outcomes": [{"name": "y", "metric": "production_t"}],
        }
    )


def analyse(method: str, n: int, f) -> tuple[pd.DataFrame, list[str]]:
    s = spec(method, n)
    d = make_design(s)
    unit = pd.DataFrame(d.unit, columns=[f"u_x{k}" for k in range(3)])
    design = pd.concat([pd.DataFrame({"row": np.arange(len(unit))}), unit], axis=1)
    runs = d.runs.assign(y=f(d.unit), status="ok")
    idx, notes, warns = sensitivity(s, design, runs)
    assert not notes
    return idx, warns["y"]


def linear(u):
    return u[:, 0] + 0.5 * u[:, 1]


@pytest.mark.parametrize("method, n", [("sobol", 1024), ("morris", 64)])
def test_a_well_posed_question_gets_no_warning(method, n):
    idx, warns = analyse(method, n, linear)
    assert warns == []
    key = "ST" if method == "sobol" else "mu_star"
    assert list(idx.sort_values(key, ascending=False)["parameter"]) == ["x0", "x1", "x2"]
    assert np.allclose(idx[key], idx[f"{key}_half"], atol=0.1 * idx[key].max())
    if method == "sobol":  # analytic total indices of u0 + 0.5 u1: 0.8 and 0.2
        assert idx["ST"].to_numpy()[:2] == pytest.approx([0.8, 0.2], abs=0.05)


def test_an_outcome_constant_in_most_runs_is_flagged():
    _, warns = analyse("sobol", 256, lambda u: np.maximum(0.0, u[:, 0] - 0.9))
    assert any("same value in" in w for w in warns)
    _, warns_ok = analyse("sobol", 256, linear)
    assert not any("same value in" in w for w in warns_ok)


def test_noise_gives_wide_intervals_and_no_convergence():
    rng = np.random.default_rng(0)
    _, warns = analyse("sobol", 16, lambda u: rng.normal(size=len(u)))
    assert any("intervals are wider" in w for w in warns)
    assert any("not converged" in w for w in warns)
