"""The worker side of a calibration: one simulation reduced to its target values.

Picklable and free of pyabc and backend code, so it runs in-process, in the sweep's process
pool and on Dask workers (``fn(ctx, run_id, seed, params)``, as the sweep backends call it).
"""

from __future__ import annotations

import time
import traceback
from dataclasses import dataclass
from typing import Any

import numpy as np

from sim.calibrate.targets import TargetData
from sim.experiments.worker import Context


@dataclass(frozen=True)
class SimContext:
    """What every calibration run needs besides its id, seed and parameter values.

    Attributes:
        key: Fingerprint of the calibration (names the tasks on Dask).
        base: The sweep worker's context (base world, period, parameter key paths).
        targets: The targets' data rows (the simulated side is computed per row).
        replicates: Runs per parameter set, each with its own seed; the run's target values
            are their mean (``CalibrationSpec.replicates``).
    """

    key: str
    base: Context
    targets: tuple[TargetData, ...]
    replicates: int = 1


def nan_stats(targets: tuple[TargetData, ...] | list[TargetData]) -> dict[str, np.ndarray]:
    """Target values of a run that has none (failed): NaN everywhere."""
    return {t.name: np.full(len(t.periods), np.nan) for t in targets}


def replicate_seeds(seed: int, replicates: int) -> list[int]:
    """The model seeds of a run's replicates: the run's seed alone, or its spawned children."""
    if replicates == 1:
        return [int(seed)]
    kids = np.random.SeedSequence(int(seed)).spawn(replicates)
    return [int(k.generate_state(1)[0]) for k in kids]


def simulate(ctx: SimContext, run_id: int, seed: int, params: dict[str, Any]) -> dict[str, Any]:
    """Run one simulation (``ctx.replicates`` seeds); model errors are returned, never raised.

    Returns:
        ``{"row": {run_id, status, error, wall_seconds}, "stats": {target: values}}``: with
        replicates, each target value is the mean over the replicates' runs.
    """
    from sim.calibrate.targets import simulated
    from sim.experiments.worker import build_world
    from sim.model import SupplyChainModel

    t0 = time.perf_counter()
    row: dict[str, Any] = {"run_id": run_id, "status": "ok", "error": ""}
    try:
        world = build_world(ctx.base, params)
        runs = []
        for s in replicate_seeds(seed, ctx.replicates):
            model = SupplyChainModel(world, rng=s, start=ctx.base.start, end=ctx.base.end)
            model.run()
            runs.append(simulated(model, list(ctx.targets)))
        stats = {
            t.name: np.mean([np.asarray(r[t.name], float) for r in runs], axis=0)
            for t in ctx.targets
        }
    except Exception as exc:  # noqa: BLE001 - a failing run is data: infinitely far
        tb = traceback.extract_tb(exc.__traceback__)
        where = f" at {tb[-1].filename.rsplit('/', 1)[-1]}:{tb[-1].lineno}" if tb else ""
        row.update(status="error", error=f"{type(exc).__name__}: {exc}{where}")
        stats = nan_stats(ctx.targets)
    row["wall_seconds"] = time.perf_counter() - t0
    return {"row": row, "stats": stats}
