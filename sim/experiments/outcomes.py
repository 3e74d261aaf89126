"""Outcomes: declared reductions of a run's tidy time series, computed in the worker.

An outcome selects rows (metric, product, region, sector; ``None`` = any; a list = any of),
combines them per month (sum or mean), restricts to a month window and reduces to one
number (sum, mean, first, last, max, min). ``share`` divides the windowed sum of the
selection by the windowed sum of the same selection with the ``share_of`` dimensions
released (e.g. China's share of world magnet production).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from sim.experiments.spec import OutcomeSpec, SeriesFilter


class OutcomeError(ValueError):
    """An outcome selects nothing: a spec problem, not a model failure."""


def _match(col: pd.Series, want: str | list[str] | None) -> np.ndarray | None:
    if want is None:
        return None
    if isinstance(want, str):
        return (col == want).to_numpy()
    return col.isin(want).to_numpy()


def select(ts: pd.DataFrame, f: SeriesFilter, *, release: tuple[str, ...] = ()) -> pd.DataFrame:
    """Rows of ``ts`` matching filter ``f`` (dimensions in ``release`` are not filtered)."""
    mask = np.array(ts["metric"] == f.metric, dtype=bool)
    for dim in ("product", "region", "sector"):
        if dim in release:
            continue
        m = _match(ts[dim], getattr(f, dim))
        if m is not None:
            mask &= m
    if f.start is not None:
        mask &= (ts["date"] >= pd.Timestamp(f.start + "-01")).to_numpy()
    if f.end is not None:
        mask &= (ts["date"] <= pd.Timestamp(f.end + "-01")).to_numpy()
    return ts[mask]


def _describe(f: SeriesFilter) -> str:
    parts = [f"metric={f.metric!r}"]
    for dim in ("product", "region", "sector"):
        v = getattr(f, dim)
        if v is not None:
            parts.append(f"{dim}={v!r}")
    if f.start or f.end:
        parts.append(f"window={f.start or '...'}..{f.end or '...'}")
    return ", ".join(parts)


def _available(ts: pd.DataFrame, f: SeriesFilter) -> str:
    metrics = sorted(ts["metric"].unique())
    if f.metric not in metrics:
        return f"metrics are {metrics}"
    sub = ts[ts["metric"] == f.metric]
    return "; ".join(f"{d}s: {sorted(sub[d].unique())}" for d in ("product", "region", "sector"))


def compute_outcome(ts: pd.DataFrame, o: OutcomeSpec) -> float:
    """One outcome of one run.

    Raises:
        OutcomeError: If the selection matches no rows.
    """
    sel = select(ts, o)
    if sel.empty:
        raise OutcomeError(
            f"outcome {o.name!r} selects no rows ({_describe(o)}); {_available(ts, o)}"
        )
    if o.reduce == "share":
        den = select(ts, o, release=tuple(o.share_of))["value"].sum()
        num = sel["value"].sum()
        return float(num / den) if den != 0 else float("nan")
    per_month = sel.groupby("date", sort=True)["value"]
    s = per_month.sum() if o.combine == "sum" else per_month.mean()
    v = s.to_numpy()
    match o.reduce:
        case "sum":
            return float(v.sum())
        case "mean":
            return float(v.mean())
        case "first":
            return float(v[0])
        case "last":
            return float(v[-1])
        case "max":
            return float(v.max())
        case _:
            return float(v.min())


def compute_outcomes(ts: pd.DataFrame, outcomes: list[OutcomeSpec]) -> dict[str, float]:
    """All outcomes of one run, keyed by name."""
    return {o.name: compute_outcome(ts, o) for o in outcomes}


def kept_series(ts: pd.DataFrame, keep: list[SeriesFilter]) -> pd.DataFrame | None:
    """The rows of ``ts`` that the spec keeps (deduplicated, in the timeseries' order)."""
    if not keep:
        return None
    mask = np.zeros(len(ts), bool)
    for f in keep:
        mask[ts.index.get_indexer(select(ts, f).index)] = True
    return ts[mask].reset_index(drop=True)
