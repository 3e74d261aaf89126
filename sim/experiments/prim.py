"""PRIM (Patient Rule Induction Method, Friedman & Fisher 1999) for scenario discovery.

A small implementation of the peeling phase, as used in exploratory modelling (Bryant &
Lempert 2010): starting from the box holding every run, repeatedly remove the ``alpha``
share of runs at the low or high end of the one parameter whose removal most raises the
density of cases of interest in the remaining box, until the box holds fewer than
``min_mass`` of the runs. The peeling trajectory (coverage, density, mass) is returned and
the box with the highest density among those with coverage at least ``min_coverage`` is
chosen. There is no pasting phase and no covering (a second box). ``ema_workbench``'s
``prim`` offers both; it is a heavier dependency (ipyparallel, seaborn, statsmodels...),
which ndsim does not require. Categorical parameters are treated by their category codes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd


@dataclass
class PrimBox:
    """One box of the peeling trajectory."""

    limits: dict[str, tuple[float, float]]
    coverage: float
    density: float
    mass: float
    n: int


@dataclass
class PrimResult:
    """The peeling trajectory and the chosen box."""

    trajectory: list[PrimBox] = field(default_factory=list)
    chosen: int = 0
    base_density: float = 0.0
    columns: list[str] = field(default_factory=list)
    bounds: dict[str, tuple[float, float]] = field(default_factory=dict)

    @property
    def box(self) -> PrimBox:
        """The chosen box."""
        return self.trajectory[self.chosen]

    def restricted(self) -> dict[str, tuple[float, float]]:
        """Limits of the chosen box on the parameters it restricts."""
        return {c: lim for c, lim in self.box.limits.items() if lim != self.bounds[c]}

    def trajectory_frame(self) -> pd.DataFrame:
        """The trajectory as a table (one row per box)."""
        return pd.DataFrame(
            [
                {
                    "box": k,
                    "coverage": b.coverage,
                    "density": b.density,
                    "mass": b.mass,
                    "n": b.n,
                    "restricted": len([c for c, v in b.limits.items() if v != self.bounds[c]]),
                }
                for k, b in enumerate(self.trajectory)
            ]
        )


def prim(
    x: pd.DataFrame,
    y: np.ndarray,
    *,
    alpha: float = 0.05,
    min_mass: float = 0.05,
    min_coverage: float = 0.5,
) -> PrimResult:
    """Find a box in parameter space where cases of interest (``y`` true) concentrate.

    Args:
        x: Parameter values, one row per run (numeric or categorical columns).
        y: Boolean, one per run: whether the run is a case of interest.
        alpha: Share of the box's runs removed per peel.
        min_mass: Stop when the box holds fewer than this share of all runs.
        min_coverage: The chosen box is the densest with at least this coverage.

    Returns:
        A :class:`PrimResult`.
    """
    y = np.asarray(y, dtype=bool)
    cols = list(x.columns)
    X = (
        np.column_stack(
            [
                x[c].to_numpy(float)
                if pd.api.types.is_numeric_dtype(x[c])
                else pd.Categorical(x[c]).codes.astype(float)
                for c in cols
            ]
        )
        if cols
        else np.zeros((len(y), 0))
    )
    n, total = len(y), max(int(y.sum()), 1)
    lo, hi = X.min(axis=0), X.max(axis=0)
    bounds = {c: (float(lo[k]), float(hi[k])) for k, c in enumerate(cols)}
    inside = np.ones(n, bool)
    res = PrimResult(base_density=float(y.mean()) if n else 0.0, columns=cols, bounds=bounds)

    def record() -> None:
        m = int(inside.sum())
        res.trajectory.append(
            PrimBox(
                limits={c: (float(lo[k]), float(hi[k])) for k, c in enumerate(cols)},
                coverage=float(y[inside].sum() / total),
                density=float(y[inside].mean()) if m else 0,
                mass=m / n,
                n=m,
            )
        )

    record()
    while inside.sum() > min_mass * n:
        best: tuple[float, int, str, float] | None = None
        for k in range(len(cols)):
            v = X[inside, k]
            for side in ("low", "high"):
                cut = np.quantile(v, alpha if side == "low" else 1 - alpha)
                keep = v > cut if side == "low" else v < cut
                if keep.all() or not keep.any():
                    # discrete values: peel the whole extreme level instead
                    ext = v.min() if side == "low" else v.max()
                    keep = v != ext
                    cut = ext
                    if not keep.any() or keep.all():
                        continue
                if keep.sum() < min_mass * n:
                    continue
                dens = y[inside][keep].mean()
                if best is None or dens > best[0]:
                    best = (float(dens), k, side, float(cut))
        if best is None or best[0] <= res.trajectory[-1].density:
            break
        _, k, side, cut = best
        col = X[:, k]
        if side == "low":
            inside &= col > cut
            lo[k] = col[inside].min()
        else:
            inside &= col < cut
            hi[k] = col[inside].max()
        record()
    ok = [i for i, b in enumerate(res.trajectory) if b.coverage >= min_coverage] or [0]
    res.chosen = max(ok, key=lambda i: (res.trajectory[i].density, -i))
    return res
