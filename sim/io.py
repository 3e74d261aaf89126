"""Writing a run's results to disk atomically: all files or none."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from sim.results import Results


def shown_path(path: str | Path) -> str:
    """``path`` as a report shows it: relative to the working directory when inside it.

    Reports are committed and read on other machines, where this machine's absolute paths
    mean nothing; runs keep absolute paths in their machine-read records.
    """
    p = Path(path)
    try:
        return str(p.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def write_parquet(df: Any, path: Path) -> None:
    """Write a DataFrame to Parquet deterministically (no pandas index, zstd)."""
    table = pa.Table.from_pandas(df, preserve_index=False)
    pq.write_table(table, path, compression="zstd")


def read_results(run_dir: str | Path) -> Results:
    """Load a run directory written by ``ndsim run WORLD`` (the results contract).

    Raises:
        UserError: If ``run_dir`` is not a run directory.
    """
    import pandas as pd

    from sim.errors import UserError

    d = Path(run_dir)
    missing = [
        f
        for f in ("timeseries.parquet", "flows.parquet", "agents.parquet", "manifest.json")
        if not (d / f).exists()
    ]
    if missing:
        raise UserError(f"{d}: not a run directory (missing {', '.join(missing)})")
    extra = {}
    if (d / "transfers.parquet").exists():
        extra["transfers"] = pd.read_parquet(d / "transfers.parquet")
    return Results(
        timeseries=pd.read_parquet(d / "timeseries.parquet"),
        flows=pd.read_parquet(d / "flows.parquet"),
        agents=pd.read_parquet(d / "agents.parquet"),
        manifest=json.loads((d / "manifest.json").read_text()),
        **extra,
    )


def write_csv(tables: dict[str, Any], out_dir: str | Path) -> list[Path]:
    """Write DataFrames as ``<name>.csv`` into ``out_dir`` (atomically per file)."""
    out = Path(out_dir)
    paths = []
    for name, df in tables.items():
        path = out / f"{name}.csv"
        tmp = path.with_name(f".{path.name}.tmp")
        df.to_csv(tmp, index=False)
        tmp.replace(path)
        paths.append(path)
    return paths


def write_results(
    results: Results, out_dir: str | Path, *, figures: bool = True, csv: bool = False
) -> Path:
    """Write ``manifest.json``, the Parquet tables and figures into ``out_dir``.

    Files are written to a temporary sibling directory that replaces ``out_dir`` only once
    everything succeeded, so an interrupted or failed write leaves nothing half-written.
    """
    out = Path(out_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        write_parquet(results.timeseries, tmp / "timeseries.parquet")
        write_parquet(results.flows, tmp / "flows.parquet")
        write_parquet(results.agents, tmp / "agents.parquet")
        write_parquet(results.transfers, tmp / "transfers.parquet")
        if csv:
            tables = {"timeseries": results.timeseries, "flows": results.flows}
            write_csv({**tables, "agents": results.agents, "transfers": results.transfers}, tmp)
        if figures:
            from sim.figures import write_figures

            write_figures(results, tmp / "figures")
        with (tmp / "manifest.json").open("w") as fh:
            json.dump(results.manifest, fh, indent=2, sort_keys=True, default=str)
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out
