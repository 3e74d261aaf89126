"""Running a sweep: backends, streaming Parquet output, retries and resume.

Output directory layout::

    sweep.json                 spec (resolved), fingerprint, counts, versions
    spec.toml                  copy of the spec file
    design.parquet             one row per design row: unit coordinates and values
    parts/runs-00000.parquet   finished runs, written in chunks (atomic renames)
    timeseries/metric=<m>/part-00000.parquet   kept series, hive-partitioned by metric
    runs.parquet               all runs sorted by run_id (written when the sweep completes)

A runs part is written after its time-series parts, so a run counts as done only once all
its rows are on disk; ``--resume`` reads the run ids in ``parts/`` and runs the rest,
deleting time-series parts left without a runs part by a crash.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from sim.errors import UserError
from sim.experiments.daskrun import MAX_ATTEMPTS, DaskStats, Report, Task, run_dask
from sim.experiments.daskrun import lost_result as _lost
from sim.experiments.design import Design, expected_rows, make_design, run_params
from sim.experiments.spec import SweepSpec, base_scenario, load_spec
from sim.experiments.stopping import (
    BackendError,
    close_all,
    interrupted,
    interrupts,
    resume_command,
)
from sim.experiments.worker import Context, build_world, execute, quiet_worker
from sim.world import read_toml


# ---------------------------------------------------------------------------------- output
def _atomic_write(table: pa.Table, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    pq.write_table(table, tmp, compression="zstd")
    os.replace(tmp, path)


class ResultSink:
    """Buffers finished runs and writes them as numbered Parquet parts."""

    def __init__(self, out: Path, spec: SweepSpec, design: Design, *, next_part: int):
        self.out = out
        self.spec = spec
        self.design = design
        self.part = next_part
        self.rows: list[dict[str, Any]] = []
        self.ts: list[pd.DataFrame] = []
        self.last_flush = time.monotonic()
        self.n_written = 0
        self.param_cols = [p.column for p in spec.parameters]
        self.outcome_cols = [o.name for o in spec.outcomes]

    def add(self, result: dict[str, Any], attempts: int) -> None:
        """Buffer one run's result; flush when the chunk is full or old enough."""
        row = dict(result["row"])
        row.pop("outcome_error", None)
        row["attempts"] = attempts
        self.rows.append(row)
        if result.get("ts") is not None:
            self.ts.append(result["ts"])
        due = time.monotonic() - self.last_flush > self.spec.output.flush_seconds
        if len(self.rows) >= self.spec.output.chunk_runs or due:
            self.flush()

    def runs_frame(self, rows: list[dict[str, Any]]) -> pd.DataFrame:
        """Rows as a DataFrame with the fixed column order and types of ``runs.parquet``."""
        df = pd.DataFrame(rows)
        ids = df["run_id"].to_numpy(np.int64)
        meta = self.design.runs.set_index("run_id").loc[ids]
        out = pd.DataFrame(
            {
                "run_id": ids,
                "row": meta["row"].to_numpy(np.int64),
                "replicate": meta["replicate"].to_numpy(np.int64),
                "seed": meta["seed"].to_numpy(np.int64),
            }
        )
        vals = self.design.values.iloc[out["row"].to_numpy()].reset_index(drop=True)
        for c in self.param_cols:
            out[c] = vals[c].to_numpy()
        for c in self.outcome_cols:
            out[c] = df[c].astype("float64").to_numpy() if c in df else np.full(len(df), np.nan)
        out["status"] = df["status"].astype(str).to_numpy()
        out["error"] = df["error"].fillna("").astype(str).to_numpy()
        out["wall_seconds"] = df["wall_seconds"].astype("float64").to_numpy()
        out["attempts"] = df["attempts"].astype("int64").to_numpy()
        return out

    def flush(self) -> None:
        """Write buffered runs: time-series parts first, then the runs part (the commit)."""
        self.last_flush = time.monotonic()
        if not self.rows:
            return
        name = f"part-{self.part:05d}.parquet"
        if self.ts:
            ts = pd.concat(self.ts, ignore_index=True)
            for metric, grp in ts.groupby("metric", sort=True):
                tbl = pa.Table.from_pandas(grp.drop(columns="metric"), preserve_index=False)
                _atomic_write(tbl, self.out / "timeseries" / f"metric={metric}" / name)
        runs = self.runs_frame(self.rows)
        _atomic_write(
            pa.Table.from_pandas(runs, preserve_index=False),
            self.out / "parts" / f"runs-{self.part:05d}.parquet",
        )
        self.n_written += len(self.rows)
        self.part += 1
        self.rows, self.ts = [], []


def read_done(
    out: Path, data_parts: str = "timeseries/metric=*/part-*.parquet"
) -> tuple[set[int], int]:
    """Run ids already on disk and the next free part number; removes orphaned parts.

    Args:
        out: The output directory (``parts/runs-NNNNN.parquet`` commit each part).
        data_parts: Glob of the data parts written before their runs part; those without
            a runs part of the same number (a crash between the two) are deleted.
    """
    parts = sorted((out / "parts").glob("runs-*.parquet"))
    done: set[int] = set()
    numbers = set()
    for p in parts:
        numbers.add(int(p.stem.split("-")[1]))
        done.update(pq.read_table(p, columns=["run_id"]).column(0).to_pylist())
    for p in out.glob(data_parts):
        if int(p.stem.split("-")[1]) not in numbers:
            p.unlink()
    for p in out.rglob(".*.tmp"):
        p.unlink()
    return done, (max(numbers) + 1 if numbers else 0)


def consolidate(out: Path) -> pd.DataFrame:
    """Write ``runs.parquet``: every part's runs, sorted by run id, one row per run."""
    parts = sorted((out / "parts").glob("runs-*.parquet"))
    runs = pd.concat([pq.read_table(p).to_pandas() for p in parts], ignore_index=True)
    runs = runs.drop_duplicates("run_id", keep="first").sort_values("run_id", kind="stable")
    runs = runs.reset_index(drop=True)
    _atomic_write(pa.Table.from_pandas(runs, preserve_index=False), out / "runs.parquet")
    return runs


# ---------------------------------------------------------------------------------- prepare
@dataclass
class Prepared:
    """A loaded spec with its design and worker context."""

    spec: SweepSpec
    spec_path: Path
    design: Design
    ctx: Context


def prepare(spec_path: str | Path, design_n: int | None = None) -> Prepared:
    """Load the spec and base world, draw the design and check parameters against the world.

    ``design_n`` replaces the spec's ``design.n`` (validated like the spec's own value).
    """
    if design_n is None:
        spec, base_path = load_spec(spec_path)
    else:  # the spec with design.n replaced, validated as if written in it (``--n``)
        raw = read_toml(spec_path)
        raw.setdefault("design", {})["n"] = design_n
        spec, base_path = load_spec(spec_path, raw=raw)
    base = base_scenario(spec, base_path, spec_path=spec_path)
    base.world()  # validates, with the base's overrides
    design = make_design(spec)
    n = expected_rows(spec)
    if design.unit.shape[0] != n:  # pragma: no cover - guards SALib changes
        raise RuntimeError(f"design has {design.unit.shape[0]} rows, expected {n}")
    # the key covers the resolved base scenario too: editing the experiment file (or the world)
    # a spec refers to changes it, so --resume never mixes runs of two different bases
    key = hashlib.sha256((spec.fingerprint() + base.fingerprint()).encode()).hexdigest()
    ctx = Context(
        key=key,
        world_raw=base.world_raw,
        world_file=base.world_file,
        start=base.start,
        end=base.end,
        param_paths={p.column: p.path for p in spec.parameters},
        outcomes=[o.model_dump(mode="json") for o in spec.outcomes],
        keep=[k.model_dump(mode="json") for k in spec.keep],
    )
    problems = []
    for k, p in enumerate(spec.parameters):
        col = design.values[p.column]
        rows = sorted(
            set(col.drop_duplicates().index[:20])
            | (
                {int(col.to_numpy(float).argmin()), int(col.to_numpy(float).argmax())}
                if p.distribution != "choice"
                else set()
            )
        )
        for row in rows:
            try:
                build_world(ctx, {p.column: run_params(spec, design, row)[p.column]})
            except UserError as exc:
                detail = "; ".join(exc.problems) or str(exc)
                problems.append(f"parameters[{k}] ({p.path}): {detail}")
                break
    if problems:
        raise UserError(
            "parameters do not fit the base world", file=str(spec_path), problems=problems
        )
    return Prepared(spec=spec, spec_path=Path(spec_path), design=design, ctx=ctx)


def _write_header(prep: Prepared, out: Path) -> None:
    from sim.api import versions

    spec = prep.spec
    info = {
        "name": spec.name,
        "fingerprint": prep.ctx.key,
        "spec": spec.model_dump(mode="json"),
        "spec_file": str(prep.spec_path),
        "world_file": prep.ctx.world_file,
        "n_rows": int(prep.design.unit.shape[0]),
        "n_runs": int(len(prep.design.runs)),
        "parameters": [p.column for p in spec.parameters],
        "outcomes": [o.name for o in spec.outcomes],
        "versions": versions(),
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / "sweep.json").write_text(json.dumps(info, indent=2, default=str))
    shutil.copyfile(prep.spec_path, out / "spec.toml")
    unit = pd.DataFrame(prep.design.unit, columns=[f"u_{p.column}" for p in spec.parameters])
    des = pd.concat([pd.DataFrame({"row": np.arange(len(unit))}), unit, prep.design.values], axis=1)
    _atomic_write(pa.Table.from_pandas(des, preserve_index=False), out / "design.parquet")


# ---------------------------------------------------------------------------------- backends
Execute = Callable[..., dict[str, Any]]  # fn(ctx, run_id, seed, params) -> result


def _run_serial(ctx: Any, tasks: Iterator[Task], report: Report, fn: Execute = execute) -> None:
    for run_id, seed, params in tasks:
        report(fn(ctx, run_id, seed, params), 1)


def _run_pool(
    ctx: Any, tasks: Iterator[Task], report: Report, workers: int, fn: Execute = execute
) -> None:
    """A local process pool; a pool broken by a lost worker is restarted and its runs retried."""
    method = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
    mp = multiprocessing.get_context(method)
    if method == "forkserver":
        mp.set_forkserver_preload(["sim.experiments.worker", "sim.model", "sim.results"])
    retry: list[Task] = []
    attempts: dict[int, int] = {}
    window = 4 * workers
    tasks = iter(tasks)
    barren = 0  # pools in a row that broke before returning any result
    while True:
        if barren >= MAX_ATTEMPTS:
            raise RuntimeError(
                "worker processes keep dying before finishing a run (out of "
                "memory? a main module without `if __name__ == '__main__'`?)"
            )
        pool = ProcessPoolExecutor(workers, mp_context=mp, initializer=quiet_worker)
        pending: dict[Any, Task] = {}
        n_results = 0
        try:
            broken = False
            while True:
                while len(pending) < window:
                    task = retry.pop(0) if retry else next(tasks, None)
                    if task is None:
                        break
                    pending[pool.submit(fn, ctx, *task)] = task
                if not pending:
                    return
                done, _ = wait(list(pending), return_when=FIRST_COMPLETED)
                for fut in done:
                    task = pending.pop(fut)
                    n = attempts.get(task[0], 0) + 1
                    try:
                        res = fut.result()
                    except BrokenProcessPool:
                        broken = True
                        attempts[task[0]] = n
                        if n >= MAX_ATTEMPTS:
                            report(_lost(task[0], f"worker lost {n} times"), n)
                        else:
                            retry.append(task)
                        continue
                    n_results += 1
                    report(res, n)
                if broken:
                    barren = 0 if n_results else barren + 1
                    for task in pending.values():  # all in flight died with the pool
                        attempts[task[0]] = attempts.get(task[0], 0) + 1
                        retry.append(task)
                    pending.clear()
                    retry.sort()
                    break
        finally:
            _stop_pool(pool)


def _stop_pool(pool: ProcessPoolExecutor) -> None:
    procs = list((getattr(pool, "_processes", None) or {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for p in procs:
        if p.is_alive():
            p.terminate()
    for p in procs:
        p.join(timeout=5)


def run_tasks(
    ctx: Any,
    tasks: Iterator[Task],
    report: Report,
    *,
    workers: int,
    client: Any = None,
    fn: Execute = execute,
    watch: Any = None,
) -> DaskStats | None:
    """Run ``tasks`` with ``fn`` on the backend given; ``report`` each result as it arrives.

    Args:
        ctx: The worker context (shipped with every task).
        tasks: ``(run_id, seed, params)`` of the runs to do.
        report: Called with each result and its attempt count.
        workers: Local processes when there is no ``client`` (1 or less: in this process).
        client: A ``distributed.Client``: run on its workers (see
            :func:`sim.experiments.daskrun.run_dask`).
        fn: What runs a task, ``fn(ctx, run_id, seed, params) -> result``.
        watch: With ``client``: consulted about once a second (may raise to stop).

    Returns:
        The Dask statistics when run on ``client``, else None.
    """
    if client is not None:
        return run_dask(ctx, tasks, report, client, watch=watch, fn=None if fn is execute else fn)
    if workers <= 1:
        _run_serial(ctx, tasks, report, fn=fn)
    else:
        _run_pool(ctx, tasks, report, workers, fn=fn)
    return None


def progress_bar(total: int, desc: str, *, initial: int = 0) -> Any:
    """A progress bar with ETA on stderr, counting runs (``tqdm``)."""
    from tqdm import tqdm

    return tqdm(
        total=total,
        initial=initial,
        desc=desc,
        unit="run",
        file=sys.stderr,
        dynamic_ncols=True,
        smoothing=0.05,
    )


def connect(scheduler: str, workers: int) -> tuple[Any, Any, str]:
    """A Dask client for ``--scheduler`` (``local``: a LocalCluster of ``workers`` workers).

    Returns:
        ``(client, cluster or None, backend label)``.

    Raises:
        UserError: If the scheduler cannot be reached.
    """
    from distributed import Client

    if scheduler == "local":
        from distributed import LocalCluster

        cluster = LocalCluster(
            n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None
        )
        return Client(cluster), cluster, f"dask-local({workers})"
    try:
        client = Client(scheduler, timeout="20s")
    except OSError as exc:
        raise UserError(f"--scheduler {scheduler}: cannot connect ({exc})") from None
    return client, None, f"dask({scheduler})"


def make_slurm_cluster(spec: SweepSpec, out: str | Path | None = None) -> Any:
    """A ``dask_jobqueue.SLURMCluster`` from the spec's ``[cluster]`` table (not scaled).

    Kept for checking a spec (``.job_script()``); sweeps use
    :class:`sim.experiments.slurm.SlurmWorkers`. Its scheduler listens on loopback only.
    """
    from sim.experiments.slurm import import_jobqueue, plan_jobs

    assert spec.cluster is not None
    plan = plan_jobs(spec.cluster, Path(out or f"runs/sweeps/{spec.name}"))
    sched = {"host": "127.0.0.1", "dashboard_address": "127.0.0.1:0"}
    return import_jobqueue().SLURMCluster(scheduler_options=sched, **plan.kwargs)


# ---------------------------------------------------------------------------------- sweep
@dataclass
class SweepSummary:
    """What a sweep did."""

    out: Path
    n_runs: int
    n_skipped: int
    n_ran: int
    n_errors: int
    wall_seconds: float
    backend: str
    peak_workers: int | None = None  # Dask backends: most workers connected at once
    peak_in_flight: int | None = None  # Dask backends: most runs executing at once
    jobs: str = ""  # SLURM: jobs submitted and ended


def sweep(
    spec_path: str | Path,
    *,
    out: str | Path | None = None,
    workers: int | None = None,
    scheduler: str | None = None,
    resume: bool = False,
    progress: bool = True,
    on_result: Callable[[dict[str, Any]], None] | None = None,
    limit: int | None = None,
    design_n: int | None = None,
) -> SweepSummary:
    """Run (or resume) a sweep.

    Args:
        spec_path: The sweep spec TOML.
        out: Output directory (default ``runs/sweeps/<name>``).
        workers: Local worker processes (default: CPU count; 1 runs in this process).
        scheduler: ``tcp://host:port`` of a Dask scheduler, ``local`` for a Dask
            LocalCluster with ``workers`` workers, or None for the local process pool (or
            the spec's ``[cluster]`` when it has one and ``workers`` is not given).
        resume: Complete an interrupted sweep in ``out``.
        progress: Show a progress bar with ETA on stderr.
        on_result: Called with each run's result row as it arrives (tests, monitoring).
        limit: Run at most this many of the remaining runs (for trying a spec out).
        design_n: The design's ``n`` instead of the spec's (a smaller study of the same
            design, e.g. Sobol N = 64 on a workstation; the runs differ from the spec's).

    Returns:
        A :class:`SweepSummary`.
    """
    prep = prepare(spec_path, design_n)
    spec, design = prep.spec, prep.design
    out = Path(out or f"runs/sweeps/{spec.name}")
    has_parts = (out / "parts").exists() and any((out / "parts").glob("runs-*.parquet"))
    if resume:
        info_path = out / "sweep.json"
        if not info_path.exists():
            raise UserError(f"--resume: {out} holds no sweep (no sweep.json)")
        old = json.loads(info_path.read_text()).get("fingerprint")
        if old != prep.ctx.key:
            raise UserError(
                f"--resume: {out} holds a different sweep (the spec changed since); use a new --out"
            )
    elif has_parts or (out / "runs.parquet").exists():
        raise UserError(
            f"{out} already holds sweep results; use --resume to complete them "
            "or choose another --out"
        )
    fresh = not out.exists()  # a failure before any run finished leaves nothing behind
    _write_header(prep, out)
    done, next_part = read_done(out)
    todo = [int(r) for r in design.runs["run_id"] if int(r) not in done]
    if limit is not None:
        todo = todo[:limit]
    seeds = design.runs["seed"].to_numpy()
    R = spec.replicates

    def tasks() -> Iterator[Task]:
        for rid in todo:
            yield rid, int(seeds[rid]), run_params(spec, design, rid // R)

    sink = ResultSink(out, spec, design, next_part=next_part)
    n_err = 0
    bar = progress_bar(len(todo), spec.name) if progress else None

    def report(res: dict[str, Any], attempts: int) -> None:
        nonlocal n_err
        if res["row"].get("outcome_error") and sink.n_written == 0 and not sink.rows:
            raise UserError(
                "an outcome selects no data",
                file=str(spec_path),
                problems=[res["row"]["error"].removeprefix("OutcomeError: ")],
            )
        n_err += res["row"]["status"] != "ok"
        sink.add(res, attempts)
        if bar is not None:
            bar.update(1)
            bar.set_postfix(errors=n_err, refresh=False)
        if on_result is not None:
            on_result(res["row"])

    use_slurm = scheduler is None and spec.cluster is not None and workers is None
    hint = resume_command(spec_path, out, scheduler=scheduler, workers=workers)
    workers = workers or os.cpu_count() or 1
    t0 = time.perf_counter()
    backend = "serial"
    client = cluster = slurm = None
    stats: DaskStats | None = None
    stopped: BaseException | None = None
    with interrupts():
        try:
            if use_slurm:
                from sim.experiments.slurm import SlurmWorkers

                assert spec.cluster is not None
                slurm = SlurmWorkers(spec.cluster, out, say=lambda m: _say(bar, f"slurm: {m}"))
                client = slurm.start()
                backend = "dask-slurm"
            elif scheduler is not None:
                client, cluster, backend = connect(scheduler, workers)
            task_iter = tasks()
            if todo and not resume and not done:
                # pilot run in this process: a spec whose outcomes select nothing fails fast
                first = next(task_iter)
                report(execute(prep.ctx, *first), 1)
            if client is None and workers > 1:
                backend = f"pool({workers})"
            stats = run_tasks(
                prep.ctx, task_iter, report, workers=workers, client=client, watch=slurm
            )
        except KeyboardInterrupt:
            stopped = interrupted(hint, bar)
        except BackendError as exc:
            stopped = exc
        except BaseException:
            sink.flush()
            if fresh and sink.n_written == 0:  # failed before any run: leave nothing behind
                shutil.rmtree(out, ignore_errors=True)
            raise
        finally:
            sink.flush()
            # SLURM's client is its own to close
            close_all(bar, *((slurm,) if slurm is not None else (client, cluster)))
    n_done = len(done) + sink.n_written
    if isinstance(stopped, BackendError):  # kept: --resume picks up what is there
        stopped.problems.append(
            f"{n_done} of {len(design.runs)} runs are saved in {out}; once fixed, go on with: "
            f"{hint}"
        )
    if stopped is not None:
        raise stopped
    if n_done >= len(design.runs):
        consolidate(out)
    return SweepSummary(
        out=out,
        n_runs=len(design.runs),
        n_skipped=len(done),
        n_ran=sink.n_written,
        n_errors=n_err,
        wall_seconds=time.perf_counter() - t0,
        backend=backend,
        peak_workers=stats.peak_workers if stats else None,
        peak_in_flight=stats.peak_in_flight if stats else None,
        jobs=slurm.describe() if slurm is not None else "",
    )


def _say(bar: Any, msg: str) -> None:
    """A progress line on stderr that keeps the progress bar intact."""
    if bar is not None:
        bar.write(msg, file=sys.stderr)
    else:
        print(msg, file=sys.stderr, flush=True)


def load_runs(out: str | Path) -> pd.DataFrame:
    """The runs of a sweep directory (``runs.parquet``, or the parts of an unfinished one)."""
    out = Path(out)
    if (out / "runs.parquet").exists():
        return pq.read_table(out / "runs.parquet").to_pandas()
    parts = sorted((out / "parts").glob("runs-*.parquet"))
    if not parts:
        raise UserError(f"{out}: no sweep results (runs.parquet or parts/)")
    runs = pd.concat([pq.read_table(p).to_pandas() for p in parts], ignore_index=True)
    return runs.sort_values("run_id").reset_index(drop=True)


def load_timeseries(out: str | Path, metric: str | None = None) -> pd.DataFrame:
    """Kept time series of a sweep (optionally one metric), sorted by run id and key."""
    import pyarrow.dataset as ds

    root = Path(out) / "timeseries"
    if not root.exists():
        return pd.DataFrame(
            columns=["run_id", "date", "metric", "product", "region", "sector", "value"]
        )
    d = ds.dataset(root, format="parquet", partitioning="hive")
    flt = ds.field("metric") == metric if metric is not None else None
    df = d.to_table(filter=flt).to_pandas()
    df["metric"] = df["metric"].astype(str)
    cols = ["run_id", "date", "metric", "product", "region", "sector", "value"]
    return (
        df[cols]
        .sort_values(["run_id", "metric", "product", "region", "sector", "date"], kind="stable")
        .reset_index(drop=True)
    )
