"""The worker side of a sweep: run one simulation and reduce it to a small result.

Picklable and free of backend code, so the same function runs in-process, in a process pool
and on Dask workers. The validated outcome specs are cached per worker process.
"""

from __future__ import annotations

import copy
import time
import traceback
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

_CACHE: dict[str, Any] = {}


@dataclass(frozen=True)
class Context:
    """Everything a worker needs besides the run's id, seed and parameter values."""

    key: str
    world_raw: dict[str, Any]
    world_file: str
    start: str | None
    end: str | None
    param_paths: dict[str, str]
    outcomes: list[dict[str, Any]] = field(default_factory=list)
    keep: list[dict[str, Any]] = field(default_factory=list)


def _prepared(ctx: Context) -> tuple[list[Any], list[Any]]:
    hit = _CACHE.get(ctx.key)
    if hit is None:
        from sim.experiments.spec import KeepSpec, OutcomeSpec

        hit = (
            [OutcomeSpec.model_validate(o) for o in ctx.outcomes],
            [KeepSpec.model_validate(k) for k in ctx.keep],
        )
        _CACHE.clear()
        _CACHE[ctx.key] = hit
    return hit


def build_world(ctx: Context, params: dict[str, Any]):
    """The validated world of one run: the base world with the run's parameter values set."""
    from sim.world import apply_override, validate_world

    raw = copy.deepcopy(ctx.world_raw)
    for col, value in params.items():
        path = ctx.param_paths[col]
        apply_override(raw, path.split("."), value, label=f"parameter {col} ({path})")
    return validate_world(raw, file=ctx.world_file)


def execute(ctx: Context, run_id: int, seed: int, params: dict[str, Any]) -> dict[str, Any]:
    """Run one simulation; never raises for model errors (they are returned as status)."""
    from sim.experiments.outcomes import OutcomeError, compute_outcomes, kept_series
    from sim.model import SupplyChainModel
    from sim.results import build_timeseries

    outcomes, keep = _prepared(ctx)
    t0 = time.perf_counter()
    row: dict[str, Any] = {"run_id": run_id, "status": "ok", "error": ""}
    ts_keep: pd.DataFrame | None = None
    try:
        world = build_world(ctx, params)
        model = SupplyChainModel(world, rng=int(seed), start=ctx.start, end=ctx.end)
        model.run()
        # only the metrics the outcomes and kept series read (sim.metrics catalogue)
        ts = build_timeseries(model, {o.metric for o in outcomes} | {k.metric for k in keep})
        row.update(compute_outcomes(ts, outcomes))
        ts_keep = kept_series(ts, keep)
        if ts_keep is not None:
            ts_keep.insert(0, "run_id", run_id)
    except OutcomeError as exc:
        row.update(status="error", error=f"OutcomeError: {exc}", outcome_error=True)
    except Exception as exc:  # noqa: BLE001 - a failing run is data, the sweep goes on
        tb = traceback.extract_tb(exc.__traceback__)
        where = f" at {tb[-1].filename.rsplit('/', 1)[-1]}:{tb[-1].lineno}" if tb else ""
        row.update(status="error", error=f"{type(exc).__name__}: {exc}{where}")
    row["wall_seconds"] = time.perf_counter() - t0
    return {"row": row, "ts": ts_keep}


def quiet_worker() -> None:
    """Process-pool initializer: leave Ctrl-C to the parent."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
