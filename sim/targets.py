"""Target data for calibration: the observed series under ``data/targets/`` and their schema.

Every file is a CSV with exactly the columns ``period,value,low,high,unit,source``: ``period``
is a year (``2021``) or a month (``2024-05``), ``low``/``high`` bound the data's uncertainty
(``low <= value <= high``), ``unit`` is one unit for the whole file, and ``source`` holds one or
more citation ids of ``docs/sources.md`` separated by ``;``. Nothing here runs a model.
"""

from __future__ import annotations

import csv
import math
import re
from pathlib import Path

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from sim.errors import UserError

ROOT = Path(__file__).resolve().parents[1]
TARGETS_DIR = ROOT / "data" / "targets"
SOURCES_MD = ROOT / "docs" / "sources.md"
TARGET_COLUMNS: tuple[str, ...] = ("period", "value", "low", "high", "unit", "source")

_ID_ROW = re.compile(r"^\|\s*([A-Z][A-Z0-9]*(?:-[A-Za-z0-9]+)+)\s*\|")


class TargetRow(BaseModel):
    """One observation: a value for a year or a month, with its uncertainty band."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    period: str = Field(pattern=r"^\d{4}(-(0[1-9]|1[0-2]))?$", description="YYYY or YYYY-MM")
    value: float
    low: float
    high: float
    unit: str = Field(min_length=1)
    source: str = Field(min_length=1, description="docs/sources.md ids, ';'-separated")

    @model_validator(mode="after")
    def _band(self) -> TargetRow:
        if not all(math.isfinite(x) for x in (self.value, self.low, self.high)):
            raise ValueError("value, low and high must be finite numbers")
        if not self.low <= self.value <= self.high:
            got = f"{self.low}, {self.value}, {self.high}"
            raise ValueError(f"needs low <= value <= high (got {got})")
        return self

    @property
    def source_ids(self) -> list[str]:
        """The citation ids in ``source``."""
        return split_sources(self.source)


def split_sources(text: str) -> list[str]:
    """``"A-1; B-2"`` -> ``["A-1", "B-2"]``."""
    return [s.strip() for s in text.split(";") if s.strip()]


def target_files(root: Path = TARGETS_DIR) -> list[Path]:
    """The target CSV files, sorted by name."""
    return sorted(root.glob("*.csv"))


def load_target(path: str | Path) -> pd.DataFrame:
    """Read and validate one target file.

    Args:
        path: A CSV file with the columns of :data:`TARGET_COLUMNS`.

    Returns:
        The rows as a DataFrame (``period`` as text, ``value``/``low``/``high`` as floats),
        in file order.

    Raises:
        UserError: If the file is missing, its header differs from :data:`TARGET_COLUMNS`, a row
            breaks the schema, a period repeats or the file mixes units; every problem is listed.
    """
    p = Path(path)
    if not p.is_file():
        raise UserError("file not found", file=str(path))
    with p.open(newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh)
        header = next(reader, [])
        rows = list(reader)
    if tuple(header) != TARGET_COLUMNS:
        raise UserError(
            f"header {header} differs from the target columns {list(TARGET_COLUMNS)}", file=str(p)
        )
    problems: list[str] = []
    parsed: list[TargetRow] = []
    for k, cells in enumerate(rows, start=2):
        if len(cells) != len(TARGET_COLUMNS):
            problems.append(f"line {k}: {len(cells)} fields, expected {len(TARGET_COLUMNS)}")
            continue
        try:
            parsed.append(TargetRow.model_validate(dict(zip(TARGET_COLUMNS, cells, strict=True))))
        except ValidationError as exc:
            e = exc.errors(include_url=False)[0]
            where = ".".join(str(x) for x in e["loc"]) or "row"
            problems.append(f"line {k}: {where}: {e['msg'].replace('Value error, ', '')}")
    periods = [r.period for r in parsed]
    repeated = sorted(x for x in set(periods) if periods.count(x) > 1)
    problems += [f"period {x} appears more than once" for x in repeated]
    units = sorted({r.unit for r in parsed})
    if len(units) > 1:
        problems.append(f"one unit per file expected, got {units}")
    if not parsed and not problems:
        problems.append("no rows")
    if problems:
        n = len(problems)
        raise UserError(f"{n} problem(s) in target file", file=str(p), problems=problems)
    return pd.DataFrame([r.model_dump() for r in parsed], columns=list(TARGET_COLUMNS))


def source_ids(path: Path = SOURCES_MD) -> set[str]:
    """The citation ids defined in ``docs/sources.md`` (first cell of a table row)."""
    ids = set()
    for line in path.read_text(encoding="utf-8").splitlines():
        m = _ID_ROW.match(line)
        if m:
            ids.add(m.group(1))
    return ids


def yoy_label(name: str, month: str, root: Path = TARGETS_DIR) -> str:
    """The year-on-year change of a monthly target, as ``"-74 % (SOURCE-ID)"``.

    Args:
        name: Target file name without ``.csv`` (e.g. ``"china_magnet_exports_t"``).
        month: ``YYYY-MM``; the file must hold it and the same month a year earlier.
        root: The folder of the target files.

    Raises:
        UserError: If either month is missing from the file.
    """
    df = load_target(root / f"{name}.csv").set_index("period")
    before = f"{int(month[:4]) - 1:04d}{month[4:]}"
    missing = [p for p in (month, before) if p not in df.index]
    if missing:
        raise UserError(f"no rows for {missing}", file=str(root / f"{name}.csv"))
    change = df.loc[month, "value"] / df.loc[before, "value"] - 1.0
    return f"{100 * change:+.0f} % ({split_sources(df.loc[month, 'source'])[0]})"
