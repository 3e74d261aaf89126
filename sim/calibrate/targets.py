"""Targets: data series (CSV) and the simulated numbers they are compared with.

A target file has the columns ``period,value,low,high,unit,source``; ``period`` is a year
(``2021``: compared with the year's aggregation of the monthly simulated series) or a month
(``2024-05``: compared with that month). ``low``/``high`` is the data's uncertainty band
(empty: none published). Values with unit ``%`` are read as shares (divided by 100).

The simulated side is computed in the worker from a finished model: a metric of the
catalogue (``sim.metrics``) selected by product and region (``None``: all regions), or
``exports_t``, the tonnes shipped over the network's links from ``region`` to other regions
(to ``to_region`` only, when given), which is what customs statistics count.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from sim.calendar import parse_month
from sim.calibrate.spec import TargetSpec
from sim.errors import UserError

if TYPE_CHECKING:
    from sim.model import SupplyChainModel

COLUMNS = ("period", "value", "low", "high", "unit", "source")


@dataclass(frozen=True)
class TargetData:
    """One target's data rows, in file order after the spec's window.

    Attributes:
        spec: The target's spec.
        periods: ``YYYY`` or ``YYYY-MM`` per row.
        value: Observed values (shares as fractions).
        low: Lower end of the band (NaN: none).
        high: Upper end of the band (NaN: none).
        unit: The data's unit (as written in the file).
        sources: Citation ids per row.
    """

    spec: TargetSpec
    periods: tuple[str, ...]
    value: np.ndarray
    low: np.ndarray
    high: np.ndarray
    unit: str
    sources: tuple[str, ...]

    @property
    def name(self) -> str:
        """The target's name."""
        return self.spec.name

    def month_span(self, k: int) -> tuple[int, int]:
        """First and last absolute month of row ``k`` (a year spans 12 months)."""
        p = self.periods[k]
        if len(p) == 4:
            return parse_month(f"{p}-01"), parse_month(f"{p}-12")
        m = parse_month(p)
        return m, m

    def simulated_span(self, k: int) -> tuple[int, int]:
        """Months the model must simulate for row ``k`` (a year more for a ``yoy`` change)."""
        a, b = self.month_span(k)
        return (a - 12 if self.spec.change == "yoy" else a), b


def _period_ok(p: str) -> bool:
    try:
        parse_month(p if len(p) == 7 else f"{p}-01")
    except ValueError:
        return False
    return len(p) in (4, 7)


def load_target(spec: TargetSpec, base_dir: Path, *, where: str) -> TargetData:
    """Read and check one target file; keep the rows inside the spec's window.

    Raises:
        UserError: With the file and row of every problem.
    """
    path = base_dir / spec.file
    try:
        df = pd.read_csv(path, dtype={"period": str, "unit": str, "source": str})
    except (OSError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise UserError(f"{where}.file: cannot read CSV ({exc})", file=str(path)) from None
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise UserError(
            f"{where}.file: missing column(s) {missing}; expected {','.join(COLUMNS)}",
            file=str(path),
        )
    problems = []
    for i, row in df.iterrows():
        line = int(str(i)) + 2  # header is line 1
        if not _period_ok(str(row["period"]).strip()):
            problems.append(f"line {line}: period {row['period']!r}: expected YYYY or YYYY-MM")
        for col in ("value", "low", "high"):
            v = row[col]
            if col == "value" and pd.isna(v):
                problems.append(f"line {line}: value is empty")
            elif not pd.isna(v) and not isinstance(v, int | float | np.number):
                problems.append(f"line {line}: {col} {v!r}: expected a number")
    units = sorted(set(df["unit"].dropna().astype(str).str.strip()))
    if len(units) > 1:
        problems.append(f"column unit: one unit per file expected (got {units})")
    if problems:
        raise UserError(
            f"{where}.file: {len(problems)} problem(s)", file=str(path), problems=problems
        )
    df["period"] = df["period"].astype(str).str.strip()
    full = df.copy()
    lo = spec.start or "0000-01"
    hi = spec.end or "9999-12"
    keep = [
        (p if len(p) == 7 else f"{p}-01") >= lo and (p if len(p) == 7 else f"{p}-12") <= hi
        for p in df["period"]
    ]
    df = df[keep].reset_index(drop=True)
    if df.empty:
        raise UserError(
            f"{where}: no data rows inside the window {spec.start or '...'}..{spec.end or '...'}",
            file=str(path),
        )
    unit = units[0] if units else ""
    if spec.change == "yoy":
        return _year_on_year(spec, df, full, unit, path, where)
    scale = 0.01 if unit == "%" else 1.0
    num = lambda c: pd.to_numeric(df[c], errors="coerce").to_numpy(float) * scale  # noqa: E731
    return TargetData(
        spec=spec,
        periods=tuple(df["period"]),
        value=num("value"),
        low=num("low"),
        high=num("high"),
        unit="share" if unit == "%" else unit,
        sources=tuple(df["source"].fillna("").astype(str)),
    )


def _year_before(period: str) -> str:
    """The same period a year earlier (``2025-05`` -> ``2024-05``, ``2025`` -> ``2024``)."""
    return f"{int(period[:4]) - 1}{period[4:]}"


def _year_on_year(
    spec: TargetSpec, df: pd.DataFrame, full: pd.DataFrame, unit: str, path: Path, where: str
) -> TargetData:
    """A ``yoy`` target's data: each kept row against the file's row a year earlier.

    The band is the widest change the two rows' bands allow (low over the earlier high, high
    over the earlier low); a row without a band keeps none.

    Raises:
        UserError: When the unit is a share (``%``: a change of a share is not a customs
            figure) or a row has no row a year earlier in the file.
    """
    if unit == "%":
        raise UserError(
            f"{where}.change: 'yoy' needs levels (tonnes, USD), not shares in %", file=str(path)
        )
    rows = full.set_index("period")
    missing = [p for p in df["period"] if _year_before(p) not in rows.index]
    if missing:
        raise UserError(
            f"{where}.change: 'yoy' compares each row with the same period a year earlier; "
            f"the file has no row for {', '.join(_year_before(p) for p in missing)}",
            file=str(path),
        )
    f = lambda d, c: pd.to_numeric(d[c], errors="coerce").to_numpy(float)  # noqa: E731
    prev = rows.loc[[_year_before(p) for p in df["period"]]]
    return TargetData(
        spec=spec,
        periods=tuple(df["period"]),
        value=f(df, "value") / f(prev, "value") - 1,
        low=f(df, "low") / f(prev, "high") - 1,
        high=f(df, "high") / f(prev, "low") - 1,
        unit="share",
        sources=tuple(
            "; ".join(dict.fromkeys(f"{a}; {b}".split("; ")))
            for a, b in zip(df["source"].fillna(""), prev["source"].fillna(""), strict=True)
        ),
    )


def check_window(targets: list[TargetData], start_abs: int, end_abs: int, file: str) -> None:
    """Every data row must lie inside the simulated months.

    Raises:
        UserError: Naming the target, the period and the simulated window.
    """
    from sim.calendar import format_month

    problems = []
    for k, t in enumerate(targets):
        for j, p in enumerate(t.periods):
            a, b = t.simulated_span(j)
            if a < start_abs or b > end_abs:
                problems.append(
                    f"targets[{k}] ({t.name}): period {p} is outside the simulated months "
                    f"{format_month(start_abs)}..{format_month(end_abs)}; set "
                    f"targets[{k}].start/end or the base period"
                )
    if problems:
        raise UserError("targets outside the simulated period", file=file, problems=problems)


# ------------------------------------------------------------------------- simulated side
def _exports(model: SupplyChainModel, spec: TargetSpec) -> np.ndarray:
    """Monthly tonnes of ``spec.product`` shipped over links out of ``spec.region``."""
    from sim.world import PRODUCTS

    rec, links, nodes = model.recorder, model.links, model.nodes
    assert rec is not None
    regions = np.array(nodes.regions, dtype=object)
    src = regions[nodes.region[links.src]]
    dst = regions[nodes.region[links.dst]]
    sel = (src == spec.region) & (dst != spec.region)
    if spec.product:
        sel &= links.product == PRODUCTS.index(spec.product)
    if spec.to_region is not None:
        sel &= dst == spec.to_region
    return rec.shipped[: rec.t][:, sel].sum(axis=1)


def _monthly(ts: pd.DataFrame, spec: TargetSpec, region: str | None, T: int) -> np.ndarray:
    sel = (ts["metric"] == spec.metric) & (ts["product"] == spec.product)
    if region is not None:
        sel &= ts["region"] == region
    g = ts[sel].groupby("date", sort=True)["value"].sum()
    dates = sorted(ts["date"].unique())
    return g.reindex(dates, fill_value=0.0).to_numpy(float)[:T]


def simulated(model: SupplyChainModel, targets: list[TargetData]) -> dict[str, np.ndarray]:
    """Each target's simulated values, one per data row, from a finished model."""
    from sim.results import build_timeseries

    rec = model.recorder
    assert rec is not None
    T = rec.t
    metrics = {t.spec.metric for t in targets} - {"exports_t"}
    ts = build_timeseries(model, metrics) if metrics else None
    out: dict[str, np.ndarray] = {}
    for t in targets:
        s = t.spec
        if s.metric == "exports_t":
            num = _exports(model, s)
            den = None
        else:
            assert ts is not None
            num = _monthly(ts, s, s.region, T)
            den = _monthly(ts, s, None, T) if s.aggregation == "share" else None
        vals = np.empty(len(t.periods))
        for j in range(len(t.periods)):
            a, b = t.month_span(j)
            i0, i1 = a - model.start_abs, b - model.start_abs + 1
            vals[j] = _aggregate(num, den, i0, i1, s.aggregation)
            if s.change == "yoy":
                before = _aggregate(num, den, i0 - 12, i1 - 12, s.aggregation)
                vals[j] = vals[j] / before - 1 if before > 0 else np.nan
        out[t.name] = vals
    return out


def _aggregate(num: np.ndarray, den: np.ndarray | None, i0: int, i1: int, how: str) -> float:
    """Months ``i0:i1`` of a monthly series made one value (a year's sum, mean or share)."""
    if den is not None:
        d = den[i0:i1].sum()
        return float(num[i0:i1].sum() / d) if d > 0 else np.nan
    if how == "sum" or i1 - i0 == 1:
        return float(num[i0:i1].sum())
    return float(num[i0:i1].mean())
