"""Running a calibration: pyabc's ABC-SMC fed in batches over the sweep backends, resumable.

pyabc decides which parameter sets to try and which to accept; ndsim runs the simulations.
pyabc hands a sampler a ``simulate_one`` function that proposes a parameter set, simulates
and judges it. :class:`BatchSampler` calls it twice per run, in this process: once to
*propose* (the model only records the parameters), then, after the batch's simulations
came back from the backend (serial, the sweep's process pool, or Dask), once more with the
same random state to *evaluate* (the model returns the run's stored target values). So the
simulations run wherever the sweep's runs run, and pyabc's state never leaves this process.

Determinism: run ``k`` of generation ``t`` has key ``(t, k)``; its proposal draws use
``SeedSequence(seed, spawn_key=(t, k, 0))`` and its simulation the model seed from
``SeedSequence(seed, spawn_key=(t, k, 1))``. pyabc draws from NumPy's global generator, so
the sampler seeds it per run and restores the previous state afterwards. A generation takes
its runs in key order up to the ``population_size``-th accepted one, whatever the backend
or the number of workers: same seed, same posterior.

Output directory::

    calibrate.json           spec, fingerprint, versions, sessions (wall time, runs)
    spec.toml                copy of the spec file
    parts/runs-NNNNN.parquet every finished simulation, appended (atomic renames)
    abc.db                   pyabc's history (SQLite): populations, thresholds, weights
    runs.parquet, posterior.parquet, point.toml, figures/, report.md   (sim.calibrate.report)

Resume: pyabc continues from its last complete generation; the runs of the interrupted one
are read back from ``parts/`` (keyed by ``(t, k)``, parameters checked) instead of being
simulated again, so a killed process loses at most the runs in flight.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from sim.calibrate.distance import BandDistance
from sim.calibrate.simulate import SimContext, nan_stats, simulate
from sim.calibrate.spec import CalibrationSpec, load_calibration_spec
from sim.calibrate.targets import TargetData, check_window, load_target
from sim.errors import UserError
from sim.experiments.runner import _atomic_write, connect, progress_bar, run_tasks
from sim.experiments.stopping import (
    BackendError,
    close_all,
    interrupted,
    interrupts,
    resume_command,
)
from sim.experiments.worker import Context

Key = tuple[int, int]  # (generation, index within the generation)


# ----------------------------------------------------------------------------------- seeds
def run_seeds(seed: int, key: Key) -> tuple[int, int]:
    """(proposal seed for pyabc's draws, model seed) of run ``key``."""
    t, k = key
    words = [
        int(np.random.SeedSequence(seed, spawn_key=(t, k, j)).generate_state(1)[0]) for j in (0, 1)
    ]
    return words[0], words[1]


@contextmanager
def seeded_global(seed: int) -> Iterator[None]:
    """NumPy's (and ``random``'s) global generator seeded within, restored after.

    pyabc draws proposals from the global generator; nothing in ndsim does.
    """
    np_state, py_state = np.random.get_state(), random.getstate()
    np.random.seed(seed)
    random.seed(seed)
    try:
        yield
    finally:
        np.random.set_state(np_state)
        random.setstate(py_state)


# ----------------------------------------------------------------------------------- store
class RunStore:
    """Every finished simulation, appended as Parquet parts (``parts/runs-NNNNN.parquet``).

    Rows hold the key, seed, parameter values, status, distance and each target value
    (``sim__<target>__<period>``). Parts are written atomically, so a part on disk is whole.
    """

    def __init__(self, out: Path, params: list[str], targets: list[TargetData]):
        self.dir = out / "parts"
        self.params = params
        self.targets = targets
        self.rows: dict[Key, dict[str, Any]] = {}
        parts = sorted(self.dir.glob("runs-*.parquet"))
        for p in parts:
            for r in pq.read_table(p).to_pylist():
                self.rows[(int(r["generation"]), int(r["index"]))] = r
        for p in self.dir.glob(".*.tmp") if self.dir.exists() else []:
            p.unlink()
        self.next_part = max((int(p.stem.split("-")[1]) for p in parts), default=-1) + 1
        self.n_loaded = len(self.rows)

    def stat_columns(self) -> list[str]:
        """Column names of the target values."""
        return [f"sim__{t.name}__{p}" for t in self.targets for p in t.periods]

    def stats(self, key: Key) -> dict[str, np.ndarray]:
        """The stored target values of run ``key``."""
        r = self.rows[key]
        return {
            t.name: np.array([r[f"sim__{t.name}__{p}"] for p in t.periods], float)
            for t in self.targets
        }

    def add(self, rows: list[dict[str, Any]]) -> None:
        """Append finished runs as one part."""
        if not rows:
            return
        table = pa.Table.from_pylist(rows)
        _atomic_write(table, self.dir / f"runs-{self.next_part:05d}.parquet")
        self.next_part += 1
        for r in rows:
            self.rows[(int(r["generation"]), int(r["index"]))] = r

    def frame(self) -> pd.DataFrame:
        """All runs, in the order they were stored (``run_id``)."""
        if not self.rows:
            return pd.DataFrame()
        df = pd.DataFrame(list(self.rows.values()))
        return df.sort_values("run_id", kind="stable").reset_index(drop=True)


# ----------------------------------------------------------------------------------- driver
@dataclass
class Session:
    """What this invocation did."""

    n_simulated: int = 0
    n_reused: int = 0
    n_errors: int = 0
    wall_seconds: float = 0.0
    backend: str = "serial"
    stopped_by: str = ""
    epsilons: list[float] = field(default_factory=list)


class Driver:
    """Runs batches of simulations on a backend and keeps the store."""

    def __init__(
        self,
        spec: CalibrationSpec,
        ctx: SimContext,
        store: RunStore,
        distance: BandDistance,
        x0: dict[str, np.ndarray],
        *,
        workers: int,
        client: Any,
        bar: Any,
    ):
        self.spec = spec
        self.ctx = ctx
        self.store = store
        self.distance = distance
        self.x0 = x0
        self.workers = workers
        self.client = client
        self.bar = bar
        self.session = Session()
        self.model: Any = None  # pyabc's model (a LookupModel), set by _run_abc
        self.columns = [p.column for p in spec.parameters]

    def used(self) -> int:
        """Simulations on disk (this session and before)."""
        return len(self.store.rows)

    def run_batch(self, t: int, keys: list[Key], thetas: list[dict[str, float]]) -> None:
        """Make sure every key has a stored run: reuse stored ones, simulate the rest."""
        todo = []
        for key, theta in zip(keys, thetas, strict=True):
            if key in self.store.rows:
                self._check_same(key, theta)
                self.session.n_reused += 1
                continue
            todo.append((key, theta))
        if not todo:
            return
        first_id = len(self.store.rows)
        meta: dict[int, tuple[Key, dict[str, float], int]] = {}
        tasks = []
        for j, (key, theta) in enumerate(todo):
            _, model_seed = run_seeds(self.spec.seed, key)
            rid = first_id + j
            meta[rid] = (key, theta, model_seed)
            tasks.append((rid, model_seed, {c: float(theta[c]) for c in self.columns}))
        done: list[dict[str, Any]] = []

        def report(res: dict[str, Any], attempts: int) -> None:  # noqa: ARG001
            row = res["row"]
            key, theta, model_seed = meta[int(row["run_id"])]
            stats = res.get("stats") or nan_stats(self.ctx.targets)
            out: dict[str, Any] = {
                "run_id": int(row["run_id"]),
                "generation": key[0],
                "index": key[1],
                "seed": model_seed,
                **{c: float(theta[c]) for c in self.columns},
                "status": str(row["status"]),
                "error": str(row.get("error") or ""),
                "wall_seconds": float(row.get("wall_seconds", 0.0)),
                "distance": self.distance(stats, self.x0),
            }
            for tg in self.ctx.targets:
                for p, v in zip(tg.periods, stats[tg.name], strict=True):
                    out[f"sim__{tg.name}__{p}"] = float(v)
            done.append(out)
            self.session.n_simulated += 1
            self.session.n_errors += out["status"] != "ok"
            if self.bar is not None:
                self.bar.update(1)

        try:
            run_tasks(
                self.ctx, iter(tasks), report, workers=self.workers, client=self.client, fn=simulate
            )
        finally:  # runs that finished are kept, even when interrupted
            done.sort(key=lambda r: r["run_id"])
            for j, r in enumerate(done):  # ids stay dense in store order
                r["run_id"] = first_id + j
            self.store.add(done)

    def _check_same(self, key: Key, theta: dict[str, float]) -> None:
        r = self.store.rows[key]
        for c in self.columns:
            if float(r[c]) != float(theta[c]):
                raise UserError(
                    f"--resume: stored run {key} has {c} = {r[c]!r} but the calibration now "
                    f"proposes {theta[c]!r}; the output directory holds another calibration "
                    "(use a new --out)"
                )


def _make_sampler(driver: Driver) -> Any:
    """A pyabc sampler that proposes in batches and simulates them through ``driver``."""
    from pyabc.sampler import Sampler

    class BatchSampler(Sampler):
        """Proposes ``batch_size`` runs, simulates them on the backend, then evaluates."""

        def sample_until_n_accepted(
            self, n, simulate_one, t, *, max_eval=np.inf, all_accepted=False, ana_vars=None
        ):  # noqa: ARG002 - pyabc's signature
            sample = self._create_empty_sample()
            model = driver.model
            spec = driver.spec
            B = spec.budget.batch_size
            n_acc = n_eval = k0 = 0
            while n_acc < n:
                if n_eval >= max_eval:
                    driver.session.stopped_by = "acceptance rate below min_acceptance_rate"
                    sample.ok = False
                    break
                room = spec.budget.max_simulations - driver.used()
                keys: list[Key] = []
                for key in ((t, k0 + i) for i in range(B)):
                    if key not in driver.store.rows:
                        if room <= 0:
                            break
                        room -= 1
                    keys.append(key)
                if not keys:
                    driver.session.stopped_by = "budget.max_simulations reached"
                    sample.ok = False
                    break
                thetas = []
                for key in keys:  # propose: the model records the parameters only
                    model.slot = None
                    with seeded_global(run_seeds(spec.seed, key)[0]):
                        simulate_one()
                    thetas.append(dict(model.seen))
                driver.run_batch(t, keys, thetas)
                for key, theta in zip(keys, thetas, strict=True):  # evaluate, same draws
                    model.slot = driver.store.stats(key)
                    with seeded_global(run_seeds(spec.seed, key)[0]):
                        particle = simulate_one()
                    if dict(model.seen) != theta:  # pragma: no cover - pyabc changed
                        raise RuntimeError("pyabc proposed differently on the second call")
                    sample.append(particle)
                    n_eval += 1
                    n_acc += bool(particle.accepted)
                    if n_acc >= n:
                        break
                k0 += B
                if driver.bar is not None:
                    driver.bar.set_postfix(generation=t, accepted=f"{n_acc}/{n}", refresh=False)
            model.slot = None
            self.nr_evaluations_ = n_eval
            return sample

    return BatchSampler()


def _make_model() -> Any:
    from pyabc import Model

    class LookupModel(Model):
        """Records the proposed parameters; returns the run's stored values when set."""

        def __init__(self, placeholder: dict[str, np.ndarray]):
            super().__init__(name="ndsim")
            self.placeholder = placeholder
            self.slot: dict[str, np.ndarray] | None = None
            self.seen: dict[str, float] = {}

        def sample(self, pars):
            self.seen = {k: float(v) for k, v in dict(pars).items()}
            return self.placeholder if self.slot is None else self.slot

    return LookupModel


def priors(spec: CalibrationSpec) -> Any:
    """Pyabc's prior distribution of the spec's parameters."""
    from pyabc import RV, Distribution

    rvs = {}
    for p in spec.parameters:
        if p.prior == "uniform":
            rvs[p.column] = RV("uniform", p.low, p.high - p.low)
        else:
            mu, sigma = p.lognormal_mu_sigma()
            rvs[p.column] = RV("lognorm", s=sigma, scale=float(np.exp(mu)))
    return Distribution(**rvs)


# ----------------------------------------------------------------------------------- prepare
@dataclass
class Prepared:
    """A loaded spec, its targets and the worker context."""

    spec: CalibrationSpec
    spec_path: Path
    targets: list[TargetData]
    ctx: SimContext
    x0: dict[str, np.ndarray]
    distance: BandDistance


def prepare(spec_path: str | Path) -> Prepared:
    """Load the spec, its targets and base scenario; check every parameter against the world.

    Raises:
        UserError: For any problem with the spec, a target file or the base world.
    """
    from sim.calendar import parse_month
    from sim.experiments.spec import base_scenario
    from sim.experiments.worker import build_world

    spec, base_path = load_calibration_spec(spec_path)
    here = Path(spec_path).parent
    targets = [load_target(t, here, where=f"targets[{k}]") for k, t in enumerate(spec.targets)]
    base = base_scenario(spec, base_path, spec_path=spec_path)  # type: ignore[arg-type]
    world = base.world()
    start = parse_month(base.start or world.calendar.start)
    end = parse_month(base.end or world.calendar.end)
    check_window(targets, start, end, str(spec_path))
    key = hashlib.sha256((spec.fingerprint() + base.fingerprint()).encode()).hexdigest()
    for t in targets:  # the data are part of what decides the result
        key = hashlib.sha256((key + repr((t.periods, t.value.tolist()))).encode()).hexdigest()
    cols = {p.column: p.path for p in spec.parameters}
    wctx = Context(
        key=key,
        world_raw=base.world_raw,
        world_file=base.world_file,
        start=base.start,
        end=base.end,
        param_paths=cols,
    )
    problems = []
    for k, p in enumerate(spec.parameters):
        for v in (p.low, p.high):
            try:
                build_world(wctx, {p.column: v})
            except UserError as exc:
                detail = "; ".join(exc.problems) or str(exc)
                problems.append(f"parameters[{k}] ({p.path}) = {v}: {detail}")
                break
    if problems:
        raise UserError(
            "parameters do not fit the base world", file=str(spec_path), problems=problems
        )
    ctx = SimContext(key=key, base=wctx, targets=tuple(targets), replicates=spec.replicates)
    x0 = {t.name: t.value for t in targets}
    return Prepared(
        spec, Path(spec_path), targets, ctx, x0, BandDistance.build(targets, spec.distance)
    )


# ----------------------------------------------------------------------------------- run
@dataclass
class CalibrationSummary:
    """What a calibration did (this invocation and before)."""

    out: Path
    n_runs: int
    session: Session
    generations: int
    epsilon: float
    wall_seconds_total: float


def calibrate(
    spec_path: str | Path,
    *,
    out: str | Path | None = None,
    workers: int | None = None,
    scheduler: str | None = None,
    resume: bool = False,
    progress: bool = True,
    figures: bool = True,
) -> CalibrationSummary:
    """Run (or resume) a calibration and write its outputs.

    Args:
        spec_path: The calibration spec TOML.
        out: Output directory (default ``runs/calibrations/<name>``).
        workers: Local worker processes (default: CPU count; 1 runs in this process).
        scheduler: ``tcp://host:port`` of a Dask scheduler, or ``local`` for a Dask
            LocalCluster with ``workers`` workers; None for the local process pool.
        resume: Continue an interrupted calibration in ``out``.
        progress: Show a progress bar on stderr.
        figures: Draw the fit figures.

    Raises:
        UserError: Bad spec, targets or output directory (nothing written).
        SweepInterrupted: Ctrl-C or SIGTERM (finished runs are on disk).
    """
    from sim.api import versions
    from sim.calibrate.report import write_outputs

    prep = prepare(spec_path)
    spec = prep.spec
    out = Path(out or f"runs/calibrations/{spec.name}")
    info_path = out / "calibrate.json"
    if resume:
        if not info_path.exists():
            raise UserError(f"--resume: {out} holds no calibration (no calibrate.json)")
        info = json.loads(info_path.read_text())
        if info.get("fingerprint") != prep.ctx.key:
            raise UserError(
                f"--resume: {out} holds a different calibration (the spec, its world or its "
                "data changed since); use a new --out"
            )
    else:
        if out.exists() and any(out.iterdir()):
            raise UserError(
                f"{out} already holds files; use --resume to continue a calibration there "
                "or choose another --out"
            )
        import pyabc

        info = {
            "name": spec.name,
            "fingerprint": prep.ctx.key,
            "spec": spec.model_dump(mode="json"),
            "spec_file": str(spec_path),
            "world_file": prep.ctx.base.world_file,
            "library": {"name": "pyabc", "version": pyabc.__version__},
            "versions": versions(),
            "sessions": [],
        }
    fresh = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    if not resume:
        shutil.copyfile(spec_path, out / "spec.toml")
    info_path.write_text(json.dumps(info, indent=2, default=str))
    store = RunStore(out, [p.column for p in spec.parameters], prep.targets)
    hint = resume_command(
        Path(spec_path), out, scheduler=scheduler, workers=workers, command="calibrate"
    )
    n_workers = workers or os.cpu_count() or 1
    bar = None
    if progress:
        bar = progress_bar(spec.budget.max_simulations, spec.name, initial=len(store.rows))
    client = cluster = None
    t0 = time.perf_counter()
    driver = Driver(
        spec, prep.ctx, store, prep.distance, prep.x0, workers=n_workers, client=None, bar=bar
    )
    stopped: BaseException | None = None
    history = None
    with interrupts():
        try:
            if scheduler is not None:
                client, cluster, driver.session.backend = connect(scheduler, n_workers)
                driver.client = client
            elif n_workers > 1:
                driver.session.backend = f"pool({n_workers})"
            history = _run_abc(driver, out)
        except KeyboardInterrupt:
            stopped = interrupted(hint, bar)
        except BackendError as exc:
            exc.problems.append(f"{len(store.rows)} runs are saved in {out}; go on with: {hint}")
            stopped = exc
        except BaseException:
            if fresh and not store.rows:
                shutil.rmtree(out, ignore_errors=True)
            raise
        finally:
            close_all(bar, client, cluster)
            s = driver.session
            s.wall_seconds = time.perf_counter() - t0
            info["sessions"].append(
                {
                    "simulated": s.n_simulated,
                    "reused": s.n_reused,
                    "errors": s.n_errors,
                    "wall_seconds": round(s.wall_seconds, 3),
                    "backend": s.backend,
                    "interrupted": stopped is not None,
                }
            )
            if out.exists():
                info_path.write_text(json.dumps(info, indent=2, default=str))
    if stopped is not None:
        raise stopped
    assert history is not None
    total_wall = sum(float(x["wall_seconds"]) for x in info["sessions"])
    pops = history.get_all_populations()
    pops = pops[pops["t"] >= 0]
    write_outputs(prep, out, store, history, info, figures=figures)
    return CalibrationSummary(
        out=out,
        n_runs=len(store.rows),
        session=driver.session,
        generations=int(len(pops)),
        epsilon=float(pops["epsilon"].iloc[-1]) if len(pops) else float("nan"),
        wall_seconds_total=total_wall,
    )


def _run_abc(driver: Driver, out: Path) -> Any:
    """Start or continue pyabc's ABC-SMC with the batch sampler; return its history."""
    import pyabc

    logging.getLogger("ABC").setLevel(logging.WARNING)  # set on import; the report says it all
    spec = driver.spec
    b = spec.budget
    driver.model = _make_model()(nan_stats(driver.ctx.targets))
    db_path = out / "abc.db"
    db = f"sqlite:///{db_path.resolve()}"
    done = 0
    if db_path.exists():
        h = pyabc.History(db)
        done = int(h.max_t) + 1 if h.n_populations else 0
        del h
        if done == 0:  # nothing complete in it: start afresh (the runs are in parts/)
            db_path.unlink()
    abc = pyabc.ABCSMC(
        models=driver.model,
        parameter_priors=priors(spec),
        distance_function=driver.distance,
        population_size=b.population_size,
        sampler=_make_sampler(driver),
        transitions=(
            pyabc.LocalTransition()
            if b.transition == "local"
            else pyabc.MultivariateNormalTransition()
        ),
        # generation 0 accepts every prior draw; each later threshold is the quantile of the
        # previous generation's distances, which on resume pyabc reads back from abc.db
        eps=pyabc.QuantileEpsilon(
            initial_epsilon=np.inf if done == 0 else "from_sample", alpha=b.epsilon_quantile
        ),
    )
    if done:
        abc.load(db, abc_id=1)
    else:
        abc.new(db, driver.x0)
    left = b.generations - done
    if left > 0:
        # pyabc's own draws outside the sampler, if any, are seeded too; its first threshold
        # is inf, which its epsilon-difference check subtracts (a harmless NaN warning)
        with seeded_global(spec.seed), np.errstate(invalid="ignore"):
            abc.run(
                minimum_epsilon=b.min_epsilon,
                max_nr_populations=left,
                min_acceptance_rate=b.min_acceptance_rate,
                max_total_nr_simulations=b.max_simulations,
            )
    return abc.history
