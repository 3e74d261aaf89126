"""Calibration specs: the schema of ``experiments/calibrate_*.toml``, loading and validation.

A spec is data. It names the base scenario (a world, or a scenario of an experiment file, as
in sweep specs), the free parameters (key paths of the world, like a sweep's) with priors
and a ``source`` each, the targets (a data file and the simulated series it is compared
with), the distance and the budget. Nothing here runs a simulation; see
``docs/calibration.md`` for the reference.
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from sim.errors import UserError
from sim.experiments.spec import BaseSpec, Name, _spec_hint, _Strict
from sim.world import Month, Region, format_validation_error, read_toml


class PriorSpec(_Strict):
    """A free parameter: a key path of the world, its prior and where the range comes from.

    ``uniform``: flat on ``[low, high]``. ``lognormal``: ``low`` and ``high`` are the 2.5 %
    and 97.5 % quantiles (a log-symmetric 95 % range around the geometric mean).
    """

    path: str = Field(description="key path in the world, e.g. behaviour.price_sensitivity")
    name: Name | None = Field(None, description="column name (default: path with __ for .)")
    prior: Literal["uniform", "lognormal"] = "uniform"
    low: float
    high: float
    source: str = Field(
        min_length=1,
        description="where the range comes from: a citation id, or 'wide prior, no source'",
    )

    @model_validator(mode="after")
    def _check(self) -> PriorSpec:
        if not self.path or any(not p for p in self.path.split(".")):
            raise ValueError(f"path {self.path!r} is not a key path like 'a.b.c'")
        if not self.low < self.high:
            raise ValueError(f"low ({self.low}) must be below high ({self.high})")
        if self.prior == "lognormal" and self.low <= 0:
            raise ValueError(f"a lognormal prior needs low > 0 (got {self.low})")
        return self

    @property
    def column(self) -> str:
        """The parameter's column name in ``runs.parquet`` and ``posterior.parquet``."""
        return self.name or self.path.replace(".", "__").replace("-", "_")

    def lognormal_mu_sigma(self) -> tuple[float, float]:
        """``(mu, sigma)`` of log(value) for a lognormal prior (95 % range = [low, high])."""
        lo, hi = math.log(self.low), math.log(self.high)
        return (lo + hi) / 2, (hi - lo) / (2 * 1.959963984540054)


class TargetSpec(_Strict):
    """A data series and the simulated series it is compared with.

    Rows of the data file with an annual period (``2021``) are compared with the year's
    ``aggregation`` of the monthly simulated series; monthly rows (``2024-05``) with the
    month's value. ``share`` divides the selection by the same selection over all regions.
    ``change = "yoy"`` compares the change on the same period a year before instead, in both
    the data (each row against the file's row a year earlier) and the model.
    """

    name: Name
    file: str = Field(description="CSV with period,value,low,high,unit,source (relative to spec)")
    metric: str = Field(
        description="a metric of the catalogue (docs/outputs.md), or 'exports_t' (shipments "
        "leaving `region`, to `to_region` when given)"
    )
    product: str = ""
    region: Region | None = Field(None, description="None: all regions summed")
    to_region: Region | None = Field(None, description="exports_t: destination region")
    aggregation: Literal["mean", "sum", "share"] = Field(
        "mean", description="how months make a year (monthly rows use the month's value)"
    )
    change: Literal["level", "yoy"] = Field(
        "level",
        description="level: the period's value; yoy: its change on the same period a year "
        "before (value / value a year earlier - 1; the file needs that row too)",
    )
    start: Month | None = Field(None, description="first period used (default: all)")
    end: Month | None = Field(None, description="last period used (default: all)")
    weight: Annotated[float, Field(gt=0)] = 1.0

    @field_validator("metric")
    @classmethod
    def _declared(cls, v: str) -> str:
        if v != "exports_t":
            from sim.metrics import get

            try:
                get(v)
            except KeyError as exc:
                raise ValueError(f"{exc.args[0]} (metrics: docs/outputs.md)") from None
        return v

    @model_validator(mode="after")
    def _check(self) -> TargetSpec:
        if self.metric != "exports_t":
            if self.to_region is not None:
                raise ValueError("'to_region' is only for metric 'exports_t'")
        elif self.region is None:
            raise ValueError("metric 'exports_t' needs 'region' (the exporting region)")
        elif self.aggregation == "share":
            raise ValueError("metric 'exports_t' takes aggregation 'sum' or 'mean', not 'share'")
        if self.change == "yoy" and self.aggregation == "share":
            raise ValueError("'change = \"yoy\"' takes aggregation 'sum' or 'mean', not 'share'")
        if self.aggregation == "share" and self.region is None:
            raise ValueError("aggregation 'share' needs 'region' (the share of which region)")
        return self


class DistanceSpec(_Strict):
    """How far a run is from the data.

    Each data point's residual is divided by its scale: half the data's ``high - low`` band,
    but at least ``relative_floor`` x |value| (a band of zero width would make one point
    decide everything). Per target the squared scaled residuals are averaged; the distance
    is the square root of the weight-averaged target means (an RMS in units of the bands).
    """

    kind: Literal["band_rms"] = "band_rms"
    relative_floor: Annotated[float, Field(gt=0)] = Field(
        0.05, description="smallest scale, as a share of |value|"
    )


class BudgetSpec(_Strict):
    """How much to run (pyabc's ABC-SMC settings)."""

    population_size: Annotated[int, Field(ge=2)] = Field(
        100, description="accepted parameter sets per generation"
    )
    generations: Annotated[int, Field(ge=1)] = Field(
        5, description="most generations (populations) after the prior calibration sample"
    )
    max_simulations: Annotated[int, Field(ge=1)] = Field(
        5000, description="stop after this many simulations in all"
    )
    batch_size: Annotated[int, Field(ge=1)] = Field(
        32, description="runs handed to the backend at once (does not change the result)"
    )
    min_epsilon: Annotated[float, Field(ge=0)] = Field(
        0.0, description="stop once the acceptance threshold is this small"
    )
    epsilon_quantile: Annotated[float, Field(gt=0, lt=1)] = Field(
        0.5, description="next threshold: this weighted quantile of the last distances"
    )
    min_acceptance_rate: Annotated[float, Field(ge=0, lt=1)] = Field(
        0.01, description="stop when a generation accepts fewer than this share of its runs"
    )
    transition: Literal["multivariate_normal", "local"] = Field(
        "multivariate_normal",
        description="pyabc's proposal kernel: one Gaussian fitted to the whole population, "
        "or a Gaussian per particle from its nearest neighbours",
    )


class CalibrationSpec(_Strict):
    """A complete calibration spec."""

    name: Name
    description: str = ""
    base: BaseSpec
    seed: int = Field(0, description="root seed: run seeds are SeedSequence(seed) children")
    replicates: Annotated[int, Field(ge=1)] = Field(
        1,
        description="runs per parameter set, each with its own seed (children of the run's "
        "seed); the distance compares the mean of their target values, so that a set is not "
        "accepted on one lucky seed",
    )
    parameters: list[PriorSpec]
    targets: list[TargetSpec]
    distance: DistanceSpec = Field(default_factory=DistanceSpec)
    budget: BudgetSpec = Field(default_factory=BudgetSpec)

    @model_validator(mode="after")
    def _cross(self) -> CalibrationSpec:
        if not self.parameters:
            raise ValueError("a calibration needs at least one parameter")
        if not self.targets:
            raise ValueError("a calibration needs at least one target")
        for what, keys in (
            ("parameter column", [p.column for p in self.parameters]),
            ("parameter path", [p.path for p in self.parameters]),
            ("target name", [t.name for t in self.targets]),
        ):
            dup = sorted({k for k in keys if keys.count(k) > 1})
            if dup:
                raise ValueError(f"{what}(s) used twice: {dup}")
        return self

    def fingerprint(self) -> str:
        """A hash of everything that decides the runs (not the description)."""
        d = self.model_dump(mode="json", exclude={"description"})
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()


def load_calibration_spec(path: str | Path) -> tuple[CalibrationSpec, Path]:
    """Load and validate a calibration spec.

    Returns:
        The spec and the resolved path of its base file (world or experiment).

    Raises:
        UserError: With one ``key.path: message`` line per problem (file, key, expectation).
    """
    return load_target_spec(path, CalibrationSpec, "calibration spec")


def load_target_spec[S: _Strict](path: str | Path, schema: type[S], what: str) -> tuple[S, Path]:
    """Load and validate a spec with ``base`` and ``targets`` (calibration, hold-out test).

    Args:
        path: The spec TOML.
        schema: Its pydantic model (with ``base: BaseSpec`` and ``targets``).
        what: How error messages name the spec.

    Returns:
        The spec and the resolved path of its base file (world or experiment).

    Raises:
        UserError: With one ``key.path: message`` line per problem; missing target and base
            files too.
    """
    data: dict[str, Any] = read_toml(path)
    try:
        spec = schema.model_validate(data)
    except ValidationError as exc:
        problems = [_spec_hint(p, schema) for p in format_validation_error(exc, data)]
        n = len(problems)
        raise UserError(
            f"{n} problem{'s' if n > 1 else ''} in {what}",
            file=str(path),
            problems=problems,
        ) from None
    here = Path(path).parent
    problems = []
    for k, t in enumerate(spec.targets):  # type: ignore[attr-defined]
        if not (here / t.file).exists():
            problems.append(f"targets[{k}].file: no file {t.file!r} (looked at {here / t.file})")
    base: BaseSpec = spec.base  # type: ignore[attr-defined]
    key = "world" if base.world is not None else "experiment"
    ref = str(getattr(base, key))
    base_path = (here / ref).resolve()
    if not base_path.exists():
        problems.append(f"base.{key}: no file {ref!r} (looked at {base_path})")
    if problems:
        raise UserError("files not found", file=str(path), problems=problems)
    return spec, base_path
