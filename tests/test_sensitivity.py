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


def analyse(method: str, n: int, f, log: frozenset[str] = frozenset()):
    s = spec(method, n)
    d = make_design(s)
    unit = pd.DataFrame(d.unit, columns=[f"u_x{k}" for k in range(3)])
    design = pd.concat([pd.DataFrame({"row": np.arange(len(unit))}), unit], axis=1)
    runs = d.runs.assign(y=f(d.unit), status="ok")
    idx, notes, warns = sensitivity(s, design, runs, log)
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


def test_a_heavy_tailed_outcome_is_read_on_the_log_scale():
    """y = exp(8 (u0 + 0.5 u1)): on the log scale the analytic total indices are those of
    u0 + 0.5 u1 (0.8, 0.2); on the linear scale the few largest runs decide them."""
    heavy = lambda u: np.exp(8.0 * linear(u))  # noqa: E731
    idx, warns = analyse("sobol", 1024, heavy, frozenset({"y"}))
    assert set(idx["scale"]) == {"log"} and warns == []
    assert idx["ST"].to_numpy()[:2] == pytest.approx([0.8, 0.2], abs=0.05)
    lin, _ = analyse("sobol", 1024, heavy)
    assert set(lin["scale"]) == {"linear"}
    # on the linear scale y = f(u0) g(u1) with f = exp(8 u), g = exp(4 u): u1's total index is
    # Var(g) E[f^2] / Var(y), about 0.59: the exponential's interaction, not u1's share
    m = lambda a: np.expm1(a) / a  # noqa: E731  E[exp(a u)], u ~ U(0, 1)
    var_y = m(16) * m(8) - (m(8) * m(4)) ** 2
    st1 = (m(8) - m(4) ** 2) * m(16) / var_y
    assert lin["ST"].to_numpy()[1] == pytest.approx(st1, abs=0.05)
    assert st1 > 0.5


def test_log_scale_needs_a_positive_outcome():
    s = spec("sobol", 64)
    d = make_design(s)
    unit = pd.DataFrame(d.unit, columns=[f"u_x{k}" for k in range(3)])
    design = pd.concat([pd.DataFrame({"row": np.arange(len(unit))}), unit], axis=1)
    runs = d.runs.assign(y=d.unit[:, 0] - 0.5, status="ok")
    idx, notes, _ = sensitivity(s, design, runs, frozenset({"y"}))
    assert idx.empty and "no log scale" in notes[0]


def test_bootstrap_intervals_are_the_same_in_every_analysis():
    """Analysing the same runs twice gives the same intervals (SALib reads seed 0 as none)."""
    rng = np.random.default_rng(5)
    noisy = lambda u: linear(u) + 0.3 * rng.normal(size=len(u))  # noqa: E731
    s = spec("sobol", 64)
    d = make_design(s)
    unit = pd.DataFrame(d.unit, columns=[f"u_x{k}" for k in range(3)])
    design = pd.concat([pd.DataFrame({"row": np.arange(len(unit))}), unit], axis=1)
    runs = d.runs.assign(y=noisy(d.unit), status="ok")
    first, _, _ = sensitivity(s, design, runs)
    np.random.seed(123)  # noqa: NPY002  whatever the global generator holds
    second, _, _ = sensitivity(s, design, runs)
    pd.testing.assert_frame_equal(first, second)
