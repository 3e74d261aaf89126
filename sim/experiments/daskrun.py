"""Running a sweep's tasks on Dask workers: a submission window that follows the workers.

The client keeps ``4 x`` the worker threads *currently connected* (at least 8) submitted, so
the window grows as cluster jobs start and every worker stays busy; a run whose worker is
lost is resubmitted (up to ``MAX_ATTEMPTS`` times). Each task reports when and where it ran,
which gives the peak number of runs in flight. An optional :class:`Watch` (the SLURM job
keeper) is consulted about once a second and may stop the sweep with a clear error.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from sim.experiments.stopping import BackendError
from sim.experiments.worker import Context, execute

MAX_ATTEMPTS = 3
REFRESH_S = 1.0  # how often the connected workers are looked up
IDLE_SLEEP_S = 0.1

Task = tuple[int, int, dict[str, Any]]  # run_id, seed, params
Report = Callable[[dict[str, Any], int], None]  # (result, attempts)


def lost_result(run_id: int, why: str) -> dict[str, Any]:
    """The result recorded for a run whose worker was lost ``MAX_ATTEMPTS`` times."""
    return {
        "row": {"run_id": run_id, "status": "error", "error": why, "wall_seconds": 0.0},
        "ts": None,
    }


class Watch(Protocol):
    """Something that looks after the workers while a sweep runs (e.g. SLURM jobs)."""

    def tick(self, workers: dict[str, int]) -> None:
        """Called about once a second with worker name -> threads of those connected."""

    def ran(self, worker: str) -> None:
        """Called when a worker finished a run."""


def execute_here(
    fn: Callable[..., dict[str, Any]] | None,
    ctx: Any,
    run_id: int,
    seed: int,
    params: dict[str, Any],
) -> dict[str, Any]:
    """Run ``fn`` on a Dask worker, adding ``span`` = (start, end, worker name).

    ``fn`` defaults to :func:`execute`, looked up on the worker.
    """
    from distributed import get_worker

    t0 = time.time()
    res = (fn or execute)(ctx, run_id, seed, params)
    res["span"] = (t0, time.time(), str(get_worker().name))
    return res


def peak_overlap(spans: list[tuple[float, float]]) -> int:
    """The largest number of (start, end) intervals open at one instant."""
    events = sorted([(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans])
    peak = cur = 0
    for _, step in events:  # at equal times ends (-1) sort first: touching spans don't overlap
        cur += step
        peak = max(peak, cur)
    return peak


@dataclass
class DaskStats:
    """What the workers did: peak workers connected and peak runs executing at once."""

    peak_workers: int = 0
    spans: list[tuple[float, float]] = field(default_factory=list)

    @property
    def peak_in_flight(self) -> int:
        """Most runs executing at the same time (from the tasks' own clocks)."""
        return peak_overlap(self.spans)


class _NoGatherNoise(logging.Filter):
    """Drops distributed's "Couldn't gather keys" errors: a lost worker's runs are redone."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "Couldn't gather" not in record.getMessage()


def _connected(client: Any) -> dict[str, int]:
    info = client.scheduler_info(n_workers=-1)["workers"]
    return {str(w.get("name", addr)): int(w.get("nthreads", 1)) for addr, w in info.items()}


def run_dask(
    ctx: Context,
    tasks: Iterator[Task],
    report: Report,
    client: Any,
    watch: Watch | None = None,
    fn: Callable[..., dict[str, Any]] | None = None,
) -> DaskStats:
    """Run every task on the client's workers; report each result once.

    Args:
        ctx: The worker context (shipped with every task).
        tasks: The runs to do.
        report: Called with each result and its attempt count.
        client: A ``distributed.Client``.
        watch: Consulted about once a second (may raise to stop the sweep).
        fn: What runs a task, ``fn(ctx, run_id, seed, params) -> result`` (default:
            :func:`execute`).

    Returns:
        Peak workers connected and the runs' execution spans.
    """
    from distributed import as_completed

    stats = DaskStats()
    attempts: dict[int, int] = {}
    failures: list[str] = []  # infrastructure errors before any run succeeded
    n_ok = 0
    pending: dict[Any, Task] = {}
    ac = as_completed()
    tasks = iter(tasks)
    retry: list[Task] = []
    threads = 0
    next_look = 0.0
    quiet = _NoGatherNoise()
    loggers = [logging.getLogger(n) for n in ("distributed.client", "distributed.scheduler")]
    for lg in loggers:
        lg.addFilter(quiet)

    def submit(task: Task) -> None:
        fut = client.submit(
            execute_here,
            fn,
            ctx,
            *task,
            key=f"ndsim-{ctx.key[:10]}-{task[0]}-{attempts.get(task[0], 0)}",
            pure=False,
        )
        pending[fut] = task
        ac.add(fut)

    def fill() -> None:
        window = max(4 * threads, 8)
        while len(pending) < window:
            nxt = retry.pop(0) if retry else next(tasks, None)
            if nxt is None:
                return
            submit(nxt)

    try:
        while True:
            now = time.monotonic()
            if now >= next_look:
                workers = _connected(client)
                threads = sum(workers.values())
                stats.peak_workers = max(stats.peak_workers, len(workers))
                if watch is not None:
                    watch.tick(workers)
                next_look = now + REFRESH_S
            fill()
            if not pending:
                return stats
            if not ac.has_ready():
                time.sleep(IDLE_SLEEP_S)
                continue
            for fut in ac.next_batch(block=False):
                task = pending.pop(fut)
                n = attempts.get(task[0], 0) + 1
                attempts[task[0]] = n
                try:
                    res = fut.result()
                except Exception as exc:  # noqa: BLE001 - KilledWorker, lost connections
                    why = f"{type(exc).__name__}: {exc}"
                    if not n_ok:
                        failures.append(why)
                        if len(failures) >= MAX_ATTEMPTS:
                            raise BackendError(
                                "the Dask workers cannot run ndsim",
                                problems=[
                                    f"{len(failures)} runs failed on the workers before any "
                                    f"finished; the last: {why}",
                                    "check that the workers' Python has the same ndsim "
                                    "installed (cluster.python, cluster.job_script_prologue)",
                                ],
                            ) from None
                    if n >= MAX_ATTEMPTS:
                        report(lost_result(task[0], why), n)
                    else:
                        retry.append(task)
                else:
                    n_ok += 1
                    start, end, worker = res.pop("span")
                    stats.spans.append((start, end))
                    if watch is not None:
                        watch.ran(worker)
                    report(res, n)
                fut.release()
    finally:
        for fut in pending:
            fut.cancel()
        for lg in loggers:
            lg.removeFilter(quiet)
