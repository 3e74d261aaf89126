"""Using a calibration's posterior: parameter sets drawn for runs and ensembles.

``posterior.parquet`` holds the accepted parameter sets and their weights; :func:`draw`
resamples them (seeded) so an ensemble's bands show parameter uncertainty as well as seed
noise. (The point estimate, ``point.toml``, is used through the world key
``calibration = "..."``: :func:`sim.world.apply_calibration`.)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sim.errors import UserError


def load_posterior(folder: str | Path) -> tuple[pd.DataFrame, dict[str, str]]:
    """A calibration's accepted sets and the key path of each parameter column.

    Raises:
        UserError: If ``folder`` holds no finished calibration.
    """
    d = Path(folder)
    post, info = d / "posterior.parquet", d / "calibrate.json"
    if not post.exists() or not info.exists():
        raise UserError(
            f"--posterior {folder}: no finished calibration there (posterior.parquet and "
            "calibrate.json, written by `ndsim calibrate`)"
        )
    spec = json.loads(info.read_text())["spec"]
    paths = {
        p.get("name") or p["path"].replace(".", "__").replace("-", "_"): p["path"]
        for p in spec["parameters"]
    }
    return pd.read_parquet(post), paths


def draw(folder: str | Path, n: int, seed: int) -> list[list[str]]:
    """``n`` parameter sets resampled from the posterior by weight, as ``--set`` strings.

    Draw ``i`` is fixed by ``SeedSequence(seed)``: the same seed gives the same sets.
    """
    post, paths = load_posterior(folder)
    rng = np.random.default_rng(np.random.SeedSequence(seed))
    w = post["weight"].to_numpy(float)
    rows = rng.choice(len(post), size=n, replace=True, p=w / w.sum())
    return [[f"{paths[c]}={float(post[c].iloc[r])!r}" for c in paths] for r in rows]


def draws_frame(draws: list[list[str]], seed0: int) -> pd.DataFrame:
    """The draws as a table: replicate, seed and one column per key path."""
    rows = []
    for r, sets in enumerate(draws):
        row: dict[str, Any] = {"replicate": r, "seed": seed0 + r}
        for text in sets:
            key, _, value = text.partition("=")
            row[key] = float(value)
        rows.append(row)
    return pd.DataFrame(rows)


def world_experiment(path: str | Path, overrides: list[str] | None = None) -> Any:
    """A world file as an experiment of one scenario (for ``ndsim run WORLD --posterior``)."""
    from sim.scenario import world_scenario
    from sim.scenarios import Experiment

    sc = world_scenario(path, overrides)
    return Experiment(
        path=Path(path),
        name=sc.name,
        description=sc.description,
        world_path=Path(path),
        scenarios=[sc],
    )


def posterior_ranges(folder: str | Path, q: float = 0.05) -> dict[str, tuple[float, float]]:
    """The weighted ``q`` and ``1 - q`` quantiles of each parameter, by key path.

    Sensitivity designs over "the calibrated priors" sample these ranges
    (``experiments/sweep_baseline_sobol.toml``).
    """
    from sim.calibrate.report import weighted_quantile

    post, paths = load_posterior(folder)
    w = post["weight"].to_numpy(float)
    return {
        path: (
            weighted_quantile(post[col].to_numpy(), w, q),
            weighted_quantile(post[col].to_numpy(), w, 1.0 - q),
        )
        for col, path in paths.items()
    }
