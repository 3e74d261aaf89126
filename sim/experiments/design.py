"""Designs: rows of parameter values, and runs (row x replicate) with deterministic ids and seeds.

Every design is drawn in the unit hypercube first (grid: evenly spaced levels; lhs:
``scipy.stats.qmc.LatinHypercube``; sobol and morris: SALib's samplers on ``[0, 1]``
bounds), then each column is mapped through its parameter's inverse CDF. Sample counts are
SALib's: sobol gives ``N(2D+2)`` rows (``N(D+2)`` without second order), morris
``N(D+1)``.

Run ``run_id = row * replicates + replicate``; its seed is the first word of
``SeedSequence(seed, spawn_key=(run_id,))``, which equals
``SeedSequence(seed).spawn(n_runs)[run_id]`` without materialising all children.
"""

from __future__ import annotations

import itertools
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats
from scipy.stats import qmc

from sim.experiments.spec import ParameterSpec, SweepSpec


def salib_problem(spec: SweepSpec) -> dict:
    """The SALib problem: unit bounds, since values are mapped from the unit cube."""
    cols = [p.column for p in spec.parameters]
    return {"num_vars": len(cols), "names": cols, "bounds": [[0.0, 1.0]] * len(cols)}


def unit_sample(spec: SweepSpec) -> np.ndarray:
    """The design in the unit hypercube, one row per design point."""
    d = spec.design
    params = spec.parameters
    D = len(params)
    if d.method == "grid":
        axes = []
        for p in params:
            if p.distribution == "choice":
                k = len(p.values or [])
                axes.append((np.arange(k) + 0.5) / k)
            else:
                axes.append(np.linspace(0.0, 1.0, p.levels or d.levels))
        return np.array(list(itertools.product(*axes)), dtype=float).reshape(-1, D)
    if d.method == "lhs":
        return qmc.LatinHypercube(d=D, seed=np.random.default_rng(d.seed)).random(d.n)
    problem = salib_problem(spec)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if d.method == "sobol":
            from SALib.sample import sobol

            return sobol.sample(problem, d.n, calc_second_order=d.calc_second_order, seed=d.seed)
        from SALib.sample import morris

        return morris.sample(problem, d.n, num_levels=d.num_levels, seed=d.seed)


def expected_rows(spec: SweepSpec) -> int:
    """Number of design rows by SALib's (and the grid's) definitions."""
    d, D = spec.design, len(spec.parameters)
    if d.method == "sobol":
        return d.n * (2 * D + 2 if d.calc_second_order else D + 2)
    if d.method == "morris":
        return d.n * (D + 1)
    if d.method == "lhs":
        return d.n
    n = 1
    for p in spec.parameters:
        n *= len(p.values or []) if p.distribution == "choice" else (p.levels or d.levels)
    return n


def to_value(p: ParameterSpec, u: np.ndarray) -> np.ndarray:
    """Map unit-cube coordinates ``u`` to parameter values (inverse CDF)."""
    u = np.clip(np.asarray(u, dtype=float), 0.0, 1.0)
    if p.distribution == "choice":
        vals = np.asarray(p.values, dtype=object)
        idx = np.minimum((u * len(vals)).astype(int), len(vals) - 1)
        out = vals[idx]
        if all(isinstance(v, int | float) and not isinstance(v, bool) for v in p.values or []):
            out = out.astype(float)
        return out
    lo, hi = float(p.low), float(p.high)  # type: ignore[arg-type]
    if p.distribution == "uniform":
        x = lo + u * (hi - lo)
    else:
        c = (float(p.mode) - lo) / (hi - lo)  # type: ignore[arg-type]
        x = stats.triang.ppf(u, c, loc=lo, scale=hi - lo)
    return np.round(x) if p.integer else x


@dataclass
class Design:
    """A design: unit coordinates, values per parameter and the run table."""

    unit: np.ndarray
    values: pd.DataFrame  # one column per parameter, one row per design row
    runs: pd.DataFrame  # run_id, row, replicate, seed


def run_seed(root: int, run_id: int) -> int:
    """Seed of one run: ``SeedSequence(root).spawn(n)[run_id]``'s first 32-bit word."""
    return int(np.random.SeedSequence(root, spawn_key=(run_id,)).generate_state(1)[0])


def make_design(spec: SweepSpec) -> Design:
    """Draw the design and enumerate its runs."""
    unit = unit_sample(spec)
    values = pd.DataFrame(
        {p.column: to_value(p, unit[:, k]) for k, p in enumerate(spec.parameters)}
    )
    R = spec.replicates
    n_rows = unit.shape[0]
    run_id = np.arange(n_rows * R, dtype=np.int64)
    row = run_id // R
    rep = run_id % R
    seed_ids = rep if spec.common_random_numbers else run_id
    seeds = np.array([run_seed(spec.seed, int(k)) for k in seed_ids], dtype=np.int64)
    runs = pd.DataFrame({"run_id": run_id, "row": row, "replicate": rep, "seed": seeds})
    return Design(unit=unit, values=values, runs=runs)


def run_params(spec: SweepSpec, design: Design, row: int) -> dict[str, object]:
    """Parameter values of one design row as plain Python values, keyed by column."""
    out = {}
    for p in spec.parameters:
        v = design.values.at[row, p.column]
        if isinstance(v, np.generic):
            v = v.item()
        if p.integer and isinstance(v, float):
            v = int(v)
        out[p.column] = v
    return out
