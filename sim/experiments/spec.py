"""Sweep specs: the schema of ``experiments/sweep_*.toml`` files, loading and validation.

A spec is data. It names a base world (plus scenario overrides), the uncertain parameters
(any key path of the world), an experimental design, replicates, outcomes (reductions of
the tidy time series computed in the worker) and which time series to keep. Nothing here
runs a simulation. See ``docs/experiments.md`` for the reference.
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from sim.errors import UserError
from sim.scenario import Scenario
from sim.world import Month, format_validation_error, read_toml


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


Name = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]
Filter = str | list[str] | None


class BaseSpec(_Strict):
    """The scenario every run starts from: a world file, or a scenario of an experiment file."""

    world: str | None = Field(None, description="world TOML, relative to the spec file")
    experiment: str | None = Field(
        None, description="experiment TOML (relative to the spec file) holding `scenario`"
    )
    scenario: str | None = Field(None, description="name of a scenario of `experiment`")
    overrides: list[str] = Field(
        default_factory=list, description="key.path=value applied on top of the scenario"
    )
    start: Month | None = Field(None, description="first month (default: the scenario's)")
    end: Month | None = Field(None, description="last month (default: the scenario's)")

    @model_validator(mode="after")
    def _one_source(self) -> BaseSpec:
        if (self.world is None) == (self.experiment is None):
            raise ValueError(
                "give either 'world' (a world file) or 'experiment' and 'scenario' "
                "(a scenario of an experiment file)"
            )
        if self.experiment is not None and not self.scenario:
            raise ValueError("'experiment' needs 'scenario' (the name of one of its scenarios)")
        if self.world is not None and self.scenario is not None:
            raise ValueError("'scenario' names a scenario of an 'experiment', not of a world")
        return self


class ParameterSpec(_Strict):
    """An uncertain parameter: a key path of the world and its distribution."""

    path: str = Field(description="key path in the world, e.g. behaviour.price_sensitivity")
    name: Name | None = Field(None, description="column name (default: path with _ for .)")
    distribution: Literal["uniform", "triangular", "choice"] = Field(
        "uniform", description="how values are drawn between low and high, or from values"
    )
    low: float | None = Field(None, description="lowest value, in the world key's unit")
    high: float | None = Field(None, description="highest value, in the world key's unit")
    mode: float | None = Field(None, description="peak of a triangular distribution")
    values: list[Any] | None = Field(None, description="choices (distribution = 'choice')")
    integer: bool = Field(False, description="round sampled values to integers")
    levels: Annotated[int, Field(ge=2)] | None = Field(None, description="grid levels")

    @model_validator(mode="after")
    def _check(self) -> ParameterSpec:
        if not self.path or any(not p for p in self.path.split(".")):
            raise ValueError(f"path {self.path!r} is not a key path like 'a.b.c'")
        if self.distribution == "choice":
            if not self.values:
                raise ValueError("distribution 'choice' needs a non-empty 'values' list")
            kinds = {type(v).__name__ for v in self.values}
            if kinds - {"int", "float"} and len(kinds) > 1:
                raise ValueError(f"choice values must share one type (got {sorted(kinds)})")
            for k in ("low", "high", "mode"):
                if getattr(self, k) is not None:
                    raise ValueError(f"'{k}' is not used by distribution 'choice'; use 'values'")
            return self
        if self.values is not None:
            raise ValueError(
                f"'values' is only for distribution 'choice', not {self.distribution!r}"
            )
        if self.low is None or self.high is None:
            raise ValueError(f"distribution {self.distribution!r} needs 'low' and 'high'")
        if not self.low < self.high:
            raise ValueError(f"low ({self.low}) must be below high ({self.high})")
        if self.distribution == "triangular":
            if self.mode is None:
                raise ValueError("distribution 'triangular' needs 'mode'")
            if not self.low <= self.mode <= self.high:
                raise ValueError(f"mode ({self.mode}) must lie in [low, high]")
        elif self.mode is not None:
            raise ValueError("'mode' is only for distribution 'triangular'")
        return self

    @property
    def column(self) -> str:
        """The parameter's column name in ``runs.parquet``."""
        return self.name or self.path.replace(".", "__").replace("-", "_")


class DesignSpec(_Strict):
    """The experimental design (how parameter rows are drawn)."""

    method: Literal["grid", "lhs", "sobol", "morris"] = Field(
        description="grid, Latin hypercube, Sobol' (SALib) or Morris (SALib) sample"
    )
    n: Annotated[int, Field(ge=1)] | None = Field(
        None, description="lhs: rows; sobol: base sample N (power of 2); morris: trajectories"
    )
    calc_second_order: bool = Field(True, description="sobol: N(2D+2) rows, else N(D+2)")
    num_levels: Annotated[int, Field(ge=2)] = Field(4, description="morris grid levels")
    levels: Annotated[int, Field(ge=2)] = Field(3, description="grid: default levels")
    seed: int = Field(0, description="seed of the sampler (the design, not the runs)")

    @model_validator(mode="after")
    def _check(self) -> DesignSpec:
        if self.method == "grid":
            if self.n is not None:
                raise ValueError("'n' is not used by a grid design; set 'levels'")
            return self
        if self.n is None:
            raise ValueError(f"design {self.method!r} needs a sample size 'n'")
        if self.method == "sobol" and self.n & (self.n - 1):
            lo = 2 ** int(math.log2(self.n))
            raise ValueError(f"sobol n must be a power of 2 (got {self.n}; try {lo} or {2 * lo})")
        return self


class SeriesFilter(_Strict):
    """A selection of tidy time-series rows (None: any)."""

    metric: str = Field(description="a metric of the catalogue (sim.metrics, docs/outputs.md)")
    product: Filter = Field(None, description="product(s) to select (None: all)")
    region: Filter = Field(None, description="region(s) to select (None: all)")
    sector: Filter = Field(None, description="sector(s) to select (None: all)")
    start: Month | None = Field(None, description="first month of the window (None: the run's)")
    end: Month | None = Field(None, description="last month of the window (None: the run's)")

    @field_validator("metric")
    @classmethod
    def _declared(cls, v: str) -> str:
        from sim.metrics import get

        try:
            get(v)
        except KeyError as exc:
            raise ValueError(f"{exc.args[0]} (metrics: docs/outputs.md)") from None
        return v


class OutcomeSpec(SeriesFilter):
    """A summary number per run: rows selected, combined per month, reduced over the window."""

    name: Name = Field(description="column name in runs.parquet")
    combine: Literal["sum", "mean"] = Field("sum", description="across selected rows per month")
    reduce: Literal["sum", "mean", "last", "first", "max", "min", "share"] = Field(
        "sum", description="over the window's months; 'share': selection / total over share_of"
    )
    share_of: list[Literal["product", "region", "sector"]] = Field(
        default_factory=lambda: ["region"],
        description="share: dimensions released for the denominator",
    )
    description: str = Field("", description="free text, shown in the report")


class KeepSpec(SeriesFilter):
    """Time series rows to keep for every run."""


class OutputSpec(_Strict):
    """How results are written."""

    chunk_runs: Annotated[int, Field(ge=1)] = Field(256, description="runs per Parquet part")
    flush_seconds: Annotated[float, Field(gt=0)] = Field(
        30.0, description="write a part at least this often"
    )


class ClusterSpec(_Strict):
    """SLURM worker jobs started for the sweep through dask-jobqueue (when no --scheduler).

    A key left out takes the site's dask-jobqueue configuration (``jobqueue.slurm.<key>`` in
    ``~/.config/dask/jobqueue.yaml``, ``/etc/dask/`` or ``DASK_CONFIG``), then dask-jobqueue's
    own default; see ``docs/cluster.md``.
    """

    type: Literal["slurm"] = Field("slurm", description="scheduler kind (only SLURM)")
    jobs: Annotated[int, Field(ge=1)] = Field(1, description="worker jobs kept running")
    cores: Annotated[int, Field(ge=1)] | None = Field(None, description="cores per job")
    processes: Annotated[int, Field(ge=1)] | None = Field(
        None, description="Dask worker processes per job (default: site, else = cores)"
    )
    memory: str | None = Field(None, description="memory per job, e.g. '32GB'")
    walltime: str | None = Field(None, description="per job, e.g. '02:00:00'")
    partition: str | None = Field(
        None, validation_alias=AliasChoices("partition", "queue"), description="sbatch -p"
    )
    account: str | None = Field(None, description="sbatch -A")
    python: str | None = Field(
        None,
        description="Python on the compute nodes (default: site; else 'python3' when a "
        "prologue is set, else this client's interpreter)",
    )
    interface: str | None = Field(
        None, description="network interface of the scheduler and workers, e.g. 'ib0'"
    )
    log_directory: str | None = Field(
        None, description="job scripts and logs (default: site, else <out>/slurm)"
    )
    job_name: str | None = Field(None, description="sbatch -J (default: site, 'dask-worker')")
    scheduler_options: dict[str, Any] | None = Field(
        None, description="distributed.Scheduler options, over the site's"
    )
    job_extra_directives: list[str] | None = Field(None, description="extra #SBATCH lines")
    job_script_prologue: list[str] | None = Field(
        None, description="shell lines run before the worker starts (e.g. module load)"
    )
    local_directory: str | None = Field(None, description="workers' scratch directory")
    max_failed_jobs: Annotated[int, Field(ge=1)] = Field(
        3, description="jobs in a row that end without finishing a run before the sweep stops"
    )
    check_seconds: Annotated[float, Field(gt=0)] = Field(
        15.0, description="at most this long between squeue checks of the jobs"
    )

    @field_validator("memory")
    @classmethod
    def _memory(cls, v: str | None) -> str | None:
        if v is not None:
            from dask.utils import parse_bytes

            try:
                parse_bytes(v)
            except ValueError:
                raise ValueError(f"{v!r} is not an amount of memory like '32GB'") from None
        return v


class AnalysisSpec(_Strict):
    """Defaults for ``ndsim analyze``."""

    prim_outcome: str | None = Field(None, description="outcome PRIM explains (a name)")
    prim_threshold: float | None = Field(None, description="cases of interest start here")
    prim_above: bool = Field(True, description="cases of interest: outcome above threshold")
    log_outcomes: list[str] = Field(
        default_factory=list,
        description="outcomes whose sensitivity indices are computed on log(outcome): "
        "positive, heavy-tailed outcomes such as prices, whose indices on the linear scale "
        "a few runaway runs decide",
    )


class SweepSpec(_Strict):
    """A complete sweep spec."""

    name: Name = Field(description="sweep name; default output runs/sweeps/<name>")
    description: str = Field("", description="free text, shown in the report")
    base: BaseSpec
    seed: int = Field(0, description="root seed: run seeds are SeedSequence(seed).spawn(...)")
    replicates: Annotated[int, Field(ge=1)] = Field(1, description="runs per design row")
    common_random_numbers: bool = Field(
        False, description="replicate r uses the same seed in every design row"
    )
    design: DesignSpec
    parameters: list[ParameterSpec]
    outcomes: list[OutcomeSpec] = Field(default_factory=list)
    keep: list[KeepSpec] = Field(default_factory=list)
    output: OutputSpec = Field(default_factory=OutputSpec)
    cluster: ClusterSpec | None = None
    analysis: AnalysisSpec = Field(default_factory=AnalysisSpec)

    @field_validator("parameters")
    @classmethod
    def _params(cls, v: list[ParameterSpec]) -> list[ParameterSpec]:
        if not v:
            raise ValueError("a sweep needs at least one parameter")
        seen: dict[str, int] = {}
        for k, p in enumerate(v):
            for key in (p.column, p.path):
                if key in seen and seen[key] != k:
                    raise ValueError(f"parameters[{k}]: {key!r} is used twice")
                seen[key] = k
        return v

    @model_validator(mode="after")
    def _cross(self) -> SweepSpec:
        names = [o.name for o in self.outcomes]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"outcome name(s) used twice: {dup}")
        cols = {p.column for p in self.parameters}
        clash = sorted(cols & set(names) | (set(names) & RESERVED) | (cols & RESERVED))
        if clash:
            raise ValueError(f"name(s) {clash} clash with parameters or reserved columns")
        if self.design.method in ("sobol", "morris"):
            bad = [p.column for p in self.parameters if p.distribution == "choice"]
            if bad and self.design.method == "sobol":
                pass  # choices are mapped from [0, 1) bins; allowed
        if self.analysis.prim_outcome is not None and self.analysis.prim_outcome not in names:
            raise ValueError(f"analysis.prim_outcome {self.analysis.prim_outcome!r} is no outcome")
        unknown = sorted(set(self.analysis.log_outcomes) - set(names))
        if unknown:
            raise ValueError(f"analysis.log_outcomes: {unknown} are no outcomes")
        return self

    def fingerprint(self) -> str:
        """A hash of everything that decides the runs (not output or cluster settings)."""
        d = self.model_dump(mode="json", exclude={"output", "cluster", "analysis", "description"})
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()


RESERVED = {"run_id", "row", "replicate", "seed", "status", "error", "wall_seconds", "attempts"}


def load_spec(path: str | Path, *, raw: dict[str, Any] | None = None) -> tuple[SweepSpec, Path]:
    """Load and validate a sweep spec.

    Args:
        path: The spec TOML file.
        raw: An already-parsed dict to validate instead of reading ``path``.

    Returns:
        The validated spec and the resolved path of its base file (a world or an
        experiment file; :func:`base_scenario` resolves it).

    Raises:
        UserError: With one ``key.path: message`` line per problem.
    """
    data = raw if raw is not None else read_toml(path)
    try:
        spec = SweepSpec.model_validate(data)
    except ValidationError as exc:
        problems = [_spec_hint(p) for p in format_validation_error(exc, data)]
        n = len(problems)
        raise UserError(
            f"{n} problem{'s' if n > 1 else ''} in sweep spec", file=str(path), problems=problems
        ) from None
    key = "world" if spec.base.world is not None else "experiment"
    ref = str(getattr(spec.base, key))
    world_path = (Path(path).parent / ref).resolve()
    if not world_path.exists():
        raise UserError(
            f"base {key} not found",
            file=str(path),
            problems=[f"base.{key}: no file {ref!r} (looked at {world_path})"],
        )
    return spec, world_path


def base_scenario(spec: SweepSpec, base_path: Path, *, spec_path: str | Path = "") -> Scenario:
    """The scenario every run of ``spec`` starts from (``base.overrides`` and period applied).

    Raises:
        UserError: If the scenario does not exist or an override does not apply.
    """
    from sim.scenario import load_scenario

    ref = str(base_path) if spec.base.world else f"{base_path}#{spec.base.scenario}"
    try:
        sc = load_scenario(ref)
        sc = sc.with_overrides(spec.base.overrides).with_period(spec.base.start, spec.base.end)
    except UserError as exc:
        raise UserError("base scenario", file=str(spec_path), problems=[f"base: {exc}"]) from None
    return sc


def _spec_hint(line: str, root: type[BaseModel] | None = None) -> str:
    """``format_validation_error`` looks keys up in the world schema; redo hints for specs.

    Args:
        line: One ``key.path: message`` line.
        root: The spec's schema (default: :class:`SweepSpec`).
    """
    path, _, msg = line.partition(": ")
    if not msg.startswith("unknown key"):
        return line
    import difflib

    model = _spec_model_at(path, root or SweepSpec)
    key = path.rsplit(".", 1)[-1]
    if model is None:
        return f"{path}: unknown key"
    near = difflib.get_close_matches(key, list(model.model_fields), n=1)
    if near:
        parent = path.rsplit(".", 1)[0] if "." in path else ""
        return f"{path}: unknown key; did you mean {(parent + '.' if parent else '') + near[0]!r}?"
    return f"{path}: unknown key; valid keys: {', '.join(model.model_fields)}"


def _spec_model_at(path: str, root: type[BaseModel]) -> type[BaseModel] | None:
    import re

    parts = [p for p in re.split(r"\.|\[\d+\]", path) if p][:-1]
    model: Any = root
    for part in parts:
        field = model.model_fields.get(part)
        if field is None:
            return None
        model = _inner(field.annotation)
        if model is None:
            return None
    return model


def _inner(annotation: Any) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for a in getattr(annotation, "__args__", ()):
        found = _inner(a)
        if found is not None:
            return found
    return None
