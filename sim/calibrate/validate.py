"""Out-of-sample tests of a calibration: ``ndsim holdout SPEC`` (spec, runs, outputs).

A hold-out spec names a base world and period, the folder of a finished ``ndsim calibrate``
(its ``posterior.parquet``), optionally ``point.toml`` files whose values are fixed in every
run (e.g. licence parameters fitted separately), the number of posterior ``draws`` and the
held-out ``targets`` (same format as a calibration's). Draw ``i`` is a parameter set
resampled from the posterior by weight (:func:`sim.calibrate.posterior.draw`, seeded with
``SeedSequence(seed)``); it runs once with the model seed of ``SeedSequence(seed)``'s child
``i``, on the sweep backends (in process, local pool, Dask). Nothing is refitted.

Outputs (``sim.calibrate.validate_report``): ``predictions.parquet``, ``draws.csv``,
``errors.csv``, ``report.md`` and ``figures/holdout_<target>.png``; see
``docs/calibration.md``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import pandas as pd
from pydantic import Field, model_validator

from sim.calibrate.simulate import SimContext, nan_stats, simulate
from sim.calibrate.spec import CalibrationSpec, TargetSpec, load_target_spec
from sim.calibrate.targets import TargetData, check_window, load_target
from sim.errors import UserError
from sim.experiments.runner import progress_bar, run_tasks
from sim.experiments.spec import BaseSpec, Name, _Strict
from sim.experiments.worker import Context
from sim.world import Region

RATIO_SUFFIX = "__per_"  # hidden denominator targets of `relative_to` targets


class HoldoutTarget(TargetSpec):
    """A calibration target, optionally relative to another region's same series.

    With ``relative_to``, each simulated value is divided by the same metric, product and
    aggregation in that region: ``price_usd_per_kg``, ``oxide``, ``ex_china`` relative to
    ``china`` is the ex-China price premium (1.05 = 5 % above China).
    """

    relative_to: Region | None = Field(
        None, description="divide by the same series in this region (a ratio, e.g. a premium)"
    )

    @model_validator(mode="after")
    def _relative(self) -> HoldoutTarget:
        if self.relative_to is None:
            return self
        if self.metric == "exports_t" or self.aggregation == "share":
            raise ValueError("'relative_to' takes a catalogue metric with aggregation mean or sum")
        if self.region is None or self.region == self.relative_to:
            raise ValueError("'relative_to' needs 'region', and another region than it")
        return self


class HoldoutSpec(_Strict):
    """A complete hold-out (out-of-sample) spec."""

    name: Name
    description: str = ""
    base: BaseSpec
    seed: int = Field(0, description="root seed of the posterior draws and the run seeds")
    posterior: str = Field(
        description="output folder of `ndsim calibrate` (posterior.parquet, calibrate.json), "
        "relative to the spec"
    )
    fixed: list[str] = Field(
        default_factory=list,
        description="point.toml files (or their folders), relative to the spec, whose values "
        "are set in every run: parameters fitted elsewhere, not drawn",
    )
    draws: Annotated[int, Field(ge=1)] = Field(100, description="posterior draws, one run each")
    targets: list[HoldoutTarget]

    @model_validator(mode="after")
    def _cross(self) -> HoldoutSpec:
        if not self.targets:
            raise ValueError("a hold-out test needs at least one target")
        names = [t.name for t in self.targets]
        dup = sorted({k for k in names if names.count(k) > 1})
        if dup:
            raise ValueError(f"target name(s) used twice: {dup}")
        return self

    fingerprint = CalibrationSpec.fingerprint  # everything that decides the runs


# ----------------------------------------------------------------------------------- prepare
@dataclass(frozen=True)
class Draw:
    """One posterior draw: its index, model seed and values by key path."""

    index: int
    seed: int
    values: dict[str, float]


@dataclass
class Prepared:
    """A loaded hold-out spec: targets, draws and the worker context.

    Attributes:
        spec: The spec.
        spec_path: Its file.
        targets: The held-out data rows.
        draws: The posterior draws, in order.
        fixed: Values set in every run (key path -> value), from ``spec.fixed``.
        ctx: The worker context (targets include hidden denominators of ratios).
        posterior_dir: The calibration's output folder.
        calibration: The calibration's ``calibrate.json`` (spec, library, sessions).
    """

    spec: HoldoutSpec
    spec_path: Path
    targets: list[TargetData]
    draws: list[Draw]
    fixed: dict[str, Any]
    ctx: SimContext
    posterior_dir: Path
    calibration: dict[str, Any]


def load_holdout_spec(path: str | Path) -> tuple[HoldoutSpec, Path]:
    """Load and validate a hold-out spec; check its files and the calibration folder.

    Returns:
        The spec and the resolved path of its base file.

    Raises:
        UserError: One ``key.path: message`` line per problem (exit 2, nothing written).
    """
    spec, base_path = load_target_spec(path, HoldoutSpec, "hold-out spec")
    here = Path(path).parent
    problems = []
    post = here / spec.posterior
    missing = [f for f in ("posterior.parquet", "calibrate.json") if not (post / f).exists()]
    if missing:
        problems.append(
            f"posterior: no finished calibration in {spec.posterior!r} (looked at {post}; "
            f"{' and '.join(missing)} missing, written by `ndsim calibrate`)"
        )
    for k, ref in enumerate(spec.fixed):
        p = here / ref
        p = p / "point.toml" if p.is_dir() else p
        if not p.is_file():
            problems.append(f"fixed[{k}]: no file {ref!r} (looked at {p}); expected a point.toml")
    if problems:
        raise UserError("files not found", file=str(path), problems=problems)
    return spec, base_path


def model_seeds(seed: int, n: int) -> list[int]:
    """The model seed of each draw: the first word of ``SeedSequence(seed)``'s children."""
    return [int(c.generate_state(1)[0]) for c in np.random.SeedSequence(seed).spawn(n)]


def _fixed_values(spec: HoldoutSpec, here: Path, file: str) -> dict[str, Any]:
    from sim.world import calibrated_values

    out: dict[str, Any] = {}
    for k, ref in enumerate(spec.fixed):
        try:
            values = calibrated_values(ref, here, file=file)
        except UserError as exc:
            raise UserError(
                "fixed values", file=file, problems=[f"fixed[{k}]: {p}" for p in exc.problems]
            ) from None
        for key, v in values.items():
            if key in out and out[key] != v:
                raise UserError(
                    "fixed values disagree",
                    file=file,
                    problems=[f"fixed[{k}]: {key} = {v!r}, but an earlier file sets {out[key]!r}"],
                )
            out[key] = v
    return out


def _with_denominators(targets: list[TargetData]) -> list[TargetData]:
    """The targets and, for each ``relative_to`` one, its denominator (same rows, region)."""
    from dataclasses import replace

    out = list(targets)
    for t in targets:
        rel = getattr(t.spec, "relative_to", None)
        if rel is not None:
            den = t.spec.model_copy(update={"name": f"{t.name}{RATIO_SUFFIX}{rel}", "region": rel})
            out.append(replace(t, spec=den))
    return out


def prepare(spec_path: str | Path) -> Prepared:
    """Load the spec, its targets, base world, fixed values and posterior draws.

    Every draw is checked against the world before anything runs.

    Raises:
        UserError: For any problem with the spec, its files, the calibration or the world.
    """
    from sim.calendar import parse_month
    from sim.calibrate.posterior import draw
    from sim.experiments.spec import base_scenario
    from sim.experiments.worker import build_world

    spec, base_path = load_holdout_spec(spec_path)
    here = Path(spec_path).parent
    file = str(spec_path)
    targets = [load_target(t, here, where=f"targets[{k}]") for k, t in enumerate(spec.targets)]
    base = base_scenario(spec, base_path, spec_path=spec_path)  # type: ignore[arg-type]
    world = base.world()
    start = parse_month(base.start or world.calendar.start)
    end = parse_month(base.end or world.calendar.end)
    check_window(targets, start, end, file)
    post_dir = here / spec.posterior
    calibration = json.loads((post_dir / "calibrate.json").read_text())
    fixed = _fixed_values(spec, here, file)
    sets = draw(post_dir, spec.draws, spec.seed)
    draws = []
    for i, (s, seed) in enumerate(zip(sets, model_seeds(spec.seed, spec.draws), strict=True)):
        values = {k: float(v) for k, _, v in (x.partition("=") for x in s)}
        clash = sorted(set(values) & set(fixed))
        if clash:
            raise UserError(
                "fixed values clash with the posterior",
                file=file,
                problems=[f"fixed: {k} is a parameter of the calibration; drop it" for k in clash],
            )
        draws.append(Draw(i, seed, values))
    # the runs' identity (names their tasks on Dask): spec, world, draws and data
    text = json.dumps([[d.seed, d.values] for d in draws] + [fixed], sort_keys=True, default=str)
    text += repr([(t.periods, t.value.tolist()) for t in targets])
    key = spec.fingerprint() + base.fingerprint() + text
    key = hashlib.sha256(key.encode()).hexdigest()
    paths = {k: k for k in (*fixed, *draws[0].values)}
    wctx = Context(
        key=key,
        world_raw=base.world_raw,
        world_file=base.world_file,
        start=base.start,
        end=base.end,
        param_paths=paths,
    )
    try:
        build_world(wctx, {**fixed, **draws[0].values})
    except UserError as exc:
        raise UserError(
            "the posterior or fixed values do not fit the base world",
            file=file,
            problems=exc.problems or [str(exc)],
        ) from None
    ctx = SimContext(key=key, base=wctx, targets=tuple(_with_denominators(targets)))
    return Prepared(spec, Path(spec_path), targets, draws, fixed, ctx, post_dir, calibration)


# ----------------------------------------------------------------------------------- run
def _ratios(targets: list[TargetData], stats: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Each target's values, ``relative_to`` targets divided by their denominators."""
    out = {}
    for t in targets:
        v = np.asarray(stats[t.name], float)
        rel = getattr(t.spec, "relative_to", None)
        if rel is not None:
            den = np.asarray(stats[f"{t.name}{RATIO_SUFFIX}{rel}"], float)
            with np.errstate(divide="ignore", invalid="ignore"):
                v = np.where(den > 0, v / den, np.nan)
        out[t.name] = v
    return out


@dataclass
class HoldoutSummary:
    """What a hold-out test did."""

    out: Path
    n_runs: int
    n_errors: int
    wall_seconds: float
    backend: str
    errors: pd.DataFrame


def run_draws(
    prep: Prepared, *, workers: int, client: Any = None, progress: bool = True
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Run every draw once; return ``(predictions, draws)`` frames in draw order.

    Returns:
        ``predictions``: draw, seed, target, period, unit, value (one row per draw and data
        row); ``draws``: draw, seed, status, error, wall_seconds and one column per key path.
    """
    results: dict[int, dict[str, Any]] = {}
    bar = None
    if progress:
        bar = progress_bar(len(prep.draws), prep.spec.name)

    def report(res: dict[str, Any], attempts: int) -> None:  # noqa: ARG001
        results[int(res["row"]["run_id"])] = res
        if bar is not None:
            bar.update(1)

    tasks = ((d.index, d.seed, {**prep.fixed, **d.values}) for d in prep.draws)
    try:
        run_tasks(prep.ctx, tasks, report, workers=workers, client=client, fn=simulate)
    finally:
        if bar is not None:
            bar.close()
    preds, rows = [], []
    for d in prep.draws:
        res = results.get(d.index) or {"row": {"status": "error", "error": "lost"}}
        row = res["row"]
        stats = _ratios(prep.targets, res.get("stats") or nan_stats(prep.ctx.targets))
        rows.append(
            {
                "draw": d.index,
                "seed": d.seed,
                "status": str(row["status"]),
                "error": str(row.get("error") or ""),
                "wall_seconds": float(row.get("wall_seconds", 0.0)),
                **d.values,
            }
        )
        for t in prep.targets:
            for p, v in zip(t.periods, stats[t.name], strict=True):
                preds.append((d.index, d.seed, t.name, p, t.unit, float(v)))
    cols = ["draw", "seed", "target", "period", "unit", "value"]
    pred = pd.DataFrame(preds, columns=cols).astype({"draw": "int64", "seed": "int64"})
    return pred, pd.DataFrame(rows).astype({"seed": "int64"})


def holdout(
    spec_path: str | Path,
    *,
    out: str | Path | None = None,
    workers: int | None = None,
    scheduler: str | None = None,
    progress: bool = True,
    figures: bool = True,
) -> HoldoutSummary:
    """Run a hold-out test and write its outputs.

    Args:
        spec_path: The hold-out spec TOML.
        out: Output directory (default ``runs/holdout/<name>``); must be new or empty.
        workers: Local worker processes (default: CPU count; 1 runs in this process).
        scheduler: ``tcp://host:port`` of a Dask scheduler, or ``local`` for a Dask
            LocalCluster with ``workers`` workers; None for the local process pool.
        progress: Show a progress bar on stderr.
        figures: Draw one figure per target.

    Raises:
        UserError: Bad spec, data, calibration or output directory (nothing written).
        KeyboardInterrupt: Ctrl-C or SIGTERM (nothing written).
    """
    from sim.calibrate.validate_report import write_outputs
    from sim.experiments.runner import connect
    from sim.experiments.stopping import interrupts

    prep = prepare(spec_path)
    out = Path(out or f"runs/holdout/{prep.spec.name}")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UserError(f"{out} already holds files; choose another --out or remove it")
    n_workers = workers or os.cpu_count() or 1
    backend = "serial" if n_workers <= 1 else f"pool({n_workers})"
    client = cluster = None
    t0 = time.perf_counter()
    with interrupts():
        try:
            if scheduler is not None:
                client, cluster, backend = connect(scheduler, n_workers)
            pred, draws = run_draws(prep, workers=n_workers, client=client, progress=progress)
        finally:
            if client is not None:
                client.close()
            if cluster is not None:
                cluster.close()
    wall = time.perf_counter() - t0
    tmp = out.with_name(f".{out.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        errors = write_outputs(prep, tmp, pred, draws, wall=wall, backend=backend, figures=figures)
        if out.exists():
            out.rmdir()
        os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return HoldoutSummary(
        out=out,
        n_runs=len(draws),
        n_errors=int((draws["status"] != "ok").sum()),
        wall_seconds=wall,
        backend=backend,
        errors=errors,
    )


# ----------------------------------------------------------------------------------- CLI
def cmd_holdout(args: argparse.Namespace) -> int:
    """``ndsim holdout SPEC``."""
    from sim.calibrate.validate_report import summary_line
    from sim.experiments.cli import sigterm_as_interrupt

    sigterm_as_interrupt()
    try:
        s = holdout(
            args.spec,
            out=args.out,
            workers=args.workers,
            scheduler=args.scheduler,
            progress=not args.no_progress,
            figures=not args.no_figures,
        )
    except KeyboardInterrupt:
        print("interrupted: nothing written", file=sys.stderr)
        return 130
    print(
        f"{s.out}: {s.n_runs} posterior draws ({s.n_errors} failed), "
        f"{s.wall_seconds:.1f} s on {s.backend}"
    )
    print(summary_line(s.errors))
    print(f"report: {s.out / 'report.md'}; errors: {s.out / 'errors.csv'}")
    return 0


def add_command(sub: argparse._SubParsersAction) -> None:
    """Add ``holdout`` to the ``ndsim`` sub-command parser."""
    c = sub.add_parser(
        "holdout", help="test a calibration out of sample (experiments/validate_*.toml)"
    )
    c.add_argument("spec", help="hold-out spec TOML")
    c.add_argument("--out", help="output directory (default runs/holdout/<name>)")
    c.add_argument(
        "--workers",
        type=int,
        default=None,
        help="local worker processes (default: all cores; 1: in this process)",
    )
    c.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="tcp://host:port of a Dask scheduler, or 'local' for a Dask LocalCluster",
    )
    c.add_argument("--no-progress", action="store_true", help="no progress bar")
    c.add_argument("--no-figures", action="store_true", help="no figures")
    c.set_defaults(func=cmd_holdout)
