"""The distance between a run's simulated target values and the data (see ``DistanceSpec``)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sim.calibrate.spec import DistanceSpec
from sim.calibrate.targets import TargetData


def scales(t: TargetData, floor: float) -> np.ndarray:
    """Per data row: half the published band, at least ``floor`` x |value|."""
    half = (t.high - t.low) / 2.0
    half = np.where(np.isfinite(half) & (half > 0), half, 0.0)
    return np.maximum(half, floor * np.abs(t.value))


@dataclass(frozen=True)
class BandDistance:
    """RMS of band-scaled residuals, averaged per target, then weighted over targets.

    A run with a missing value (NaN: e.g. a share of a zero total, or a failed run) is
    infinitely far. Picklable, so pyabc may store and ship it.

    Attributes:
        names: Target names, in spec order.
        weights: Target weights (normalised here).
        scale: Per target, the scale of each data row.
    """

    names: tuple[str, ...]
    weights: tuple[float, ...]
    scale: tuple[np.ndarray, ...]

    @classmethod
    def build(cls, targets: list[TargetData], spec: DistanceSpec) -> BandDistance:
        """The distance of a spec's targets."""
        w = np.array([t.spec.weight for t in targets], float)
        return cls(
            names=tuple(t.name for t in targets),
            weights=tuple((w / w.sum()).tolist()),
            scale=tuple(scales(t, spec.relative_floor) for t in targets),
        )

    def per_target(self, x: dict[str, np.ndarray], x0: dict[str, np.ndarray]) -> np.ndarray:
        """Mean squared scaled residual of each target (inf where a value is missing)."""
        out = np.empty(len(self.names))
        for k, (name, s) in enumerate(zip(self.names, self.scale, strict=True)):
            r = (np.asarray(x[name], float) - np.asarray(x0[name], float)) / s
            out[k] = float(np.mean(r * r)) if np.all(np.isfinite(r)) else np.inf
        return out

    def __call__(self, x: dict[str, np.ndarray], x0: dict[str, np.ndarray]) -> float:
        """The distance (0: every point on the data; 1: one band half-width off, RMS)."""
        return float(np.sqrt(np.dot(self.weights, self.per_target(x, x0))))
