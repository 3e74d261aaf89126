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


def write_parquet(df: Any, path: Path) -> None:
    """Write a DataFrame to Parquet deterministically (no pandas index, zstd)."""
    table = pa.Table.from_pandas(df, preserve_index=False)
    pq.write_table(table, path, compression="zstd")


def write_results(results: Results, out_dir: str | Path, *, figures: bool = True) -> Path:
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
