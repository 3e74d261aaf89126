"""Seed ensembles of an experiment file: every scenario on N seeds, common random numbers.

Replicate ``r`` of every scenario runs with seed ``seed + r`` (the experiment's ``seed``,
default 0), so scenarios are compared on the same random draws and ``--seeds 1`` is the
single seed-0 run. Runs go through the sweep backends (``sim.experiments.runner``: this
process, a local process pool, or Dask) and are written as they finish into
``DIR.partial/``, so an interrupted ensemble resumes with ``--resume``. When every run is
done, ``DIR`` is assembled (replacing any previous one) and ``DIR.partial`` removed::

    DIR/metrics.parquet    scenario, metric, seed, value (one row per run and metric)
    DIR/summary.parquet    scenario, metric, mean, p05, p50, p95, n_seeds
    DIR/effects.parquet    paired differences vs the reference scenario, same columns
    DIR/series.parquet     scenario, seed, series, date, value (the figures' series)
    DIR/runs.parquet       run_id, scenario, replicate, seed, status, error, wall_seconds
    DIR/<scenario>/        replicate 0's full results (the results contract, figures/)
    DIR/figures/           scenario comparisons with 5-95 % bands across seeds
    DIR/report.md          means with 5-95 % ranges, and paired effects
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa

from sim.errors import UserError
from sim.scenario import Scenario

QUANTILES = {"p05": 0.05, "p50": 0.50, "p95": 0.95}
SUMMARY_COLUMNS = ["scenario", "metric", "mean", "p05", "p50", "p95", "n_seeds"]


@dataclass(frozen=True)
class EnsembleContext:
    """What a worker needs to run any replicate of any scenario of one experiment."""

    key: str
    scenarios: dict[str, Scenario]
    report: dict[str, Any]
    full_results_replicate: int = 0
    draws: tuple[tuple[str, ...], ...] = ()  # per replicate: posterior draw as overrides


def execute_replicate(
    ctx: EnsembleContext, run_id: int, seed: int, params: dict[str, Any]
) -> dict[str, Any]:
    """Run one replicate of one scenario; a failure is returned as data, never raised."""
    from sim.scenarios import figure_series, scenario_metrics

    name, rep = params["scenario"], int(params["replicate"])
    row: dict[str, Any] = {
        "run_id": run_id,
        "scenario": name,
        "replicate": rep,
        "seed": int(seed),
        "status": "ok",
        "error": "",
    }
    out: dict[str, Any] = {"row": row, "metrics": {}, "series": None, "results": None}
    t0 = time.perf_counter()
    try:
        sc = ctx.scenarios[name]
        res = (sc.with_overrides(ctx.draws[rep]) if ctx.draws else sc).run(seed)
        res.manifest["replicate"] = rep
        out["metrics"] = scenario_metrics(res, ctx.report)
        out["series"] = figure_series(res, ctx.report)
        if rep == ctx.full_results_replicate:
            out["results"] = res
    except Exception as exc:  # noqa: BLE001 - a failing run is data, the ensemble goes on
        tb = traceback.extract_tb(exc.__traceback__)
        where = f" at {tb[-1].filename.rsplit('/', 1)[-1]}:{tb[-1].lineno}" if tb else ""
        row.update(status="error", error=f"{type(exc).__name__}: {exc}{where}")
    row["wall_seconds"] = time.perf_counter() - t0
    return out


# ------------------------------------------------------------------------------------ tables
def summarize(metrics: pd.DataFrame, by: list[str] | None = None) -> pd.DataFrame:
    """Mean, 5th/50th/95th percentiles and count of ``value`` per scenario and metric.

    Percentiles are across seeds (numpy's linear interpolation); NaN values are left out.
    """
    by = by or ["scenario", "metric"]
    ok = metrics.dropna(subset=["value"])
    g = ok.groupby(by, sort=False)["value"]
    out = g.mean().rename("mean").to_frame()
    for col, q in QUANTILES.items():
        out[col] = g.quantile(q)
    out["n_seeds"] = g.count().astype("int64")
    return out.reset_index()


def paired_effects(metrics: pd.DataFrame, reference: str) -> pd.DataFrame:
    """Per seed differences ``scenario - reference`` (same seed), summarised like the means.

    Only seeds where both runs have a finite value count; the reference itself is left out.
    """
    ref = metrics[metrics["scenario"] == reference][["metric", "seed", "value"]]
    other = metrics[metrics["scenario"] != reference]
    if other.empty:
        return pd.DataFrame(columns=SUMMARY_COLUMNS)
    both = other.merge(ref, on=["metric", "seed"], suffixes=("", "_ref"))
    both = both.assign(value=both["value"] - both["value_ref"])
    return summarize(both[["scenario", "metric", "seed", "value"]])


# ------------------------------------------------------------------------------------ output
def _write(df: pd.DataFrame, path: Path) -> None:
    from sim.experiments.runner import _atomic_write

    _atomic_write(pa.Table.from_pandas(df, preserve_index=False), path)


class EnsembleSink:
    """Writes finished replicates into ``partial/parts`` (runs part last: the commit)."""

    def __init__(self, partial: Path, next_part: int, chunk: int = 16, seconds: float = 20.0):
        self.partial = partial
        self.part = next_part
        self.chunk = chunk
        self.seconds = seconds
        self.buffer: list[dict[str, Any]] = []
        self.last = time.monotonic()
        self.n_written = 0

    def add(self, res: dict[str, Any]) -> None:
        """Buffer one result (writing its full results folder at once); flush when due."""
        if res.get("results") is not None:
            from sim.io import write_results

            write_results(res["results"], self.partial / "scenarios" / res["row"]["scenario"])
        self.buffer.append(res)
        if len(self.buffer) >= self.chunk or time.monotonic() - self.last > self.seconds:
            self.flush()

    def flush(self) -> None:
        """Write the buffered results as one numbered part of each table."""
        self.last = time.monotonic()
        if not self.buffer:
            return
        name = f"{self.part:05d}.parquet"
        rows = [r["row"] for r in self.buffer]
        keys = ["run_id", "scenario", "replicate", "seed"]
        met = [
            {**{k: r["row"][k] for k in keys}, "metric": m, "value": float(v)}
            for r in self.buffer
            for m, v in r.get("metrics", {}).items()
        ]
        ser = [
            r["series"].assign(**{k: r["row"][k] for k in keys})
            for r in self.buffer
            if r.get("series") is not None
        ]
        if met:
            _write(pd.DataFrame(met), self.partial / "parts" / f"metrics-{name}")
        if ser:
            _write(pd.concat(ser, ignore_index=True), self.partial / "parts" / f"series-{name}")
        runs = pd.DataFrame(rows)
        runs["error"] = runs.get("error", "").fillna("").astype(str)
        _write(runs, self.partial / "parts" / f"runs-{name}")
        self.n_written += len(rows)
        self.part += 1
        self.buffer = []


def _read_parts(partial: Path, kind: str) -> pd.DataFrame:
    parts = sorted((partial / "parts").glob(f"{kind}-*.parquet"))
    if not parts:
        return pd.DataFrame()
    return pd.concat([pd.read_parquet(p) for p in parts], ignore_index=True)


def _committed(partial: Path) -> tuple[set[int], int]:
    """Run ids whose runs part is on disk, and the next part number (orphans removed)."""
    from sim.experiments.runner import read_done

    return read_done(partial, "parts/*-*.parquet")


# ------------------------------------------------------------------------------------ running
@dataclass
class EnsembleSummary:
    """What an ensemble run did."""

    out: Path
    n_runs: int
    n_skipped: int
    n_errors: int
    wall_seconds: float
    backend: str
    report: str


def fingerprint(exp: Any, n_seeds: int, seed0: int, draws: Any = ()) -> str:
    """Hash of everything that decides the runs (scenarios, period, seeds, report, draws)."""
    parts = [[sc.name, sc.fingerprint()] for sc in exp.scenarios]
    extra = [list(d) for d in draws]
    text = json.dumps([parts, n_seeds, seed0, exp.report, *([extra] if extra else [])],
                      sort_keys=True, default=str)  # fmt: skip
    return hashlib.sha256(text.encode()).hexdigest()


def run_ensemble(
    exp: Any,
    out: str | Path,
    *,
    seeds: int | None = None,
    workers: int | None = None,
    scheduler: str | None = None,
    resume: bool = False,
    progress: bool = True,
    csv: bool = False,
    draws: list[list[str]] | None = None,
) -> EnsembleSummary:
    """Run every scenario of ``exp`` on ``seeds`` seeds and write tables, figures and report.

    Args:
        exp: A loaded :class:`sim.scenarios.Experiment`.
        out: Output directory (replaced when the ensemble completes).
        seeds: Replicates per scenario (default: the experiment's ``seeds``).
        workers: Local worker processes (default: CPU count; 1 runs in this process).
        scheduler: A Dask scheduler address, or ``local`` (see ``ndsim sweep``).
        resume: Continue an interrupted ensemble from ``out.partial``.
        progress: Show a progress bar on stderr.
        csv: Also write ``metrics.csv``, ``summary.csv`` and ``effects.csv``.
        draws: Per replicate, ``key.path=value`` overrides (a posterior draw,
            :func:`sim.calibrate.posterior.draw`); replicate ``r`` of every scenario uses
            draw ``r``.

    Raises:
        UserError: If ``out.partial`` holds another ensemble, or ``--resume`` finds none.
    """
    from sim.experiments import runner
    from sim.experiments.stopping import close_all

    n_seeds = exp.seeds if seeds is None else int(seeds)
    if n_seeds < 1:
        raise UserError(f"--seeds {n_seeds}: expected a positive number of seeds")
    out = Path(out)
    partial = out.with_name(out.name + ".partial")
    draws_t = tuple(tuple(d) for d in draws or ())
    if draws_t and len(draws_t) != n_seeds:
        raise UserError(f"{len(draws_t)} posterior draws for {n_seeds} seeds: expected one each")
    key = fingerprint(exp, n_seeds, exp.seed, draws_t)
    info_path = partial / "ensemble.json"
    if partial.exists():
        old = json.loads(info_path.read_text()).get("fingerprint") if info_path.exists() else None
        if not resume:
            raise UserError(
                f"{partial} holds an unfinished run of an experiment: complete it with "
                f"--resume, or delete it"
            )
        if old != key:
            raise UserError(
                f"--resume: {partial} holds a different ensemble (the experiment or --seeds "
                "changed since); delete it to start afresh"
            )
    elif resume:
        raise UserError(f"--resume: nothing to resume ({partial} does not exist)")
    fresh = not partial.exists()
    partial.mkdir(parents=True, exist_ok=True)
    info = {"experiment": exp.name, "file": str(exp.path), "fingerprint": key, "seeds": n_seeds}
    info_path.write_text(json.dumps(info, indent=2))
    done, next_part = _committed(partial)
    names = [sc.name for sc in exp.scenarios]
    S = len(names)
    # run_id = replicate * S + scenario index: replicate 0 of every scenario comes first
    todo = [rid for rid in range(n_seeds * S) if rid not in done]
    ctx = EnsembleContext(
        key=key, scenarios={sc.name: sc for sc in exp.scenarios}, report=exp.report, draws=draws_t
    )

    def tasks() -> Iterator[tuple[int, int, dict[str, Any]]]:
        for rid in todo:
            rep, k = divmod(rid, S)
            yield rid, exp.seed + rep, {"scenario": names[k], "replicate": rep}

    sink = EnsembleSink(partial, next_part)
    n_err = 0
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(todo), desc=exp.name, unit="run", file=sys.stderr, disable=None)

    def report(res: dict[str, Any], attempts: int) -> None:  # noqa: ARG001
        nonlocal n_err
        n_err += res["row"]["status"] != "ok"
        sink.add(res)
        if bar is not None:
            bar.update(1)

    workers = workers or min(os.cpu_count() or 1, len(todo) or 1)
    backend, client, cluster = "serial", None, None
    t0 = time.perf_counter()
    try:
        if scheduler is not None:
            client, cluster, backend = runner.connect(scheduler, workers)
        elif len(todo) <= 1:
            workers = 1
        elif workers > 1:
            backend = f"pool({workers})"
        runner.run_tasks(ctx, tasks(), report, workers=workers, client=client, fn=execute_replicate)
        sink.flush()
    except BaseException:
        sink.flush()
        if fresh and sink.n_written == 0:
            shutil.rmtree(partial, ignore_errors=True)
        else:
            print(
                f"stopped: {len(done) + sink.n_written} of {n_seeds * S} runs kept in "
                f"{partial}/; complete them with `ndsim run {exp.path} --resume --out {out}`",
                file=sys.stderr,
            )
        raise
    finally:
        close_all(bar, client, cluster)
    text = finish(exp, partial, out, n_seeds, csv=csv)
    return EnsembleSummary(
        out=out,
        n_runs=n_seeds * S,
        n_skipped=len(done),
        n_errors=n_err,
        wall_seconds=time.perf_counter() - t0,
        backend=backend,
        report=text,
    )


def finish(exp: Any, partial: Path, out: Path, n_seeds: int, *, csv: bool = False) -> str:
    """Assemble ``out`` from a complete ``partial`` directory; returns the report text."""
    from sim.experiments.report import experiment_report, write_band_figures

    runs = _read_parts(partial, "runs").sort_values("run_id").reset_index(drop=True)
    metrics = _read_parts(partial, "metrics")
    series = _read_parts(partial, "series")
    tmp = partial / "assemble"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    cols = ["scenario", "metric", "seed", "value"]
    metrics = (
        metrics.sort_values(["run_id", "metric"])[cols].reset_index(drop=True)
        if not metrics.empty
        else pd.DataFrame(columns=cols)
    )
    summary = summarize(metrics)
    effects = paired_effects(metrics, exp.reference)
    _write(runs, tmp / "runs.parquet")
    _write(metrics, tmp / "metrics.parquet")
    _write(summary, tmp / "summary.parquet")
    _write(effects, tmp / "effects.parquet")
    if csv:
        from sim.io import write_csv

        write_csv({"metrics": metrics, "summary": summary, "effects": effects}, tmp)
    if not series.empty:
        series = series.sort_values(["run_id", "series", "date"]).reset_index(drop=True)
        _write(series.drop(columns=["run_id", "replicate"]), tmp / "series.parquet")
    for d in sorted((partial / "scenarios").glob("*")):
        d.rename(tmp / d.name)
    write_band_figures(exp, series, tmp / "figures")
    text = experiment_report(exp, summary, effects, runs, n_seeds)
    (tmp / "report.md").write_text(text)
    if out.exists():
        shutil.rmtree(out)
    tmp.rename(out)
    shutil.rmtree(partial)
    return text


def load_ensemble(out: str | Path) -> dict[str, pd.DataFrame]:
    """The tables of a finished ensemble directory (metrics, summary, effects, runs, series)."""
    out = Path(out)
    if not (out / "summary.parquet").exists():
        raise UserError(f"{out}: not an experiment ensemble (no summary.parquet)")
    return {
        name: pd.read_parquet(out / f"{name}.parquet")
        for name in ("metrics", "summary", "effects", "runs", "series")
        if (out / f"{name}.parquet").exists()
    }
