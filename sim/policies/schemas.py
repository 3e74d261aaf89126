"""Schemas of the policy instruments' ``[policies.<name>]`` tables (see docs/policies.md).

Every table is validated here with pydantic (unknown keys are errors, with a typo hint);
cross-references to the world (firm ids, regions) are checked by :func:`world_problems`.
Units are in key names: ``_t_per_yr``, ``_usd``, ``_usd_per_kg``, ``_months``, ``_days``,
``_share`` (0..1).
"""

from __future__ import annotations

import difflib
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from sim.calendar import parse_month

Month = Annotated[str, Field(pattern=r"^\d{4}-(0[1-9]|1[0-2])$", description="YYYY-MM")]
Share = Annotated[float, Field(ge=0.0, le=1.0)]
NonNeg = Annotated[float, Field(ge=0.0)]
Pos = Annotated[float, Field(gt=0.0)]
Product = Literal["concentrate", "oxide", "metal", "magnet", "scrap"]
Role = Literal["mine", "separator", "metal_maker", "magnet_plant", "recycler"]
STAGE_PRODUCT = {
    "mine": "concentrate",
    "separator": "oxide",
    "metal_maker": "metal",
    "magnet_plant": "magnet",
    "recycler": "oxide",
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Dated(_Strict):
    start: Month | None = Field(None, description="first month in force (None: from the start)")
    end: Month | None = Field(None, description="last month in force (None: to the end)")
    source: str = Field("", description="citation id(s) in docs/sources.md")

    @model_validator(mode="after")
    def _order(self) -> Any:
        if self.start and self.end and parse_month(self.end) < parse_month(self.start):
            raise ValueError(f"end {self.end} is before start {self.start}")
        return self

    def active(self, month_abs: int) -> bool:
        """Whether the instrument is in force in absolute month ``month_abs``."""
        lo = parse_month(self.start) if self.start else -(10**9)
        hi = parse_month(self.end) if self.end else 10**9
        return lo <= month_abs <= hi


# ------------------------------------------------------------------------- export controls
class ExportRule(_Dated):
    """One export-control rule: licensing, quota and duty on exports of ``products``."""

    name: str = ""
    exporter: str = "china"
    products: list[Product] = Field(default_factory=lambda: ["magnet"])
    to_regions: list[str] = Field(
        default_factory=lambda: ["*"], description="destination regions; '*' = every other region"
    )
    requires_licence: bool = True
    processing_days: NonNeg = Field(45.0, description="mean licence review, working days")
    working_days_per_month: Pos = 21.0
    processing_sd_log: NonNeg = Field(0.35, description="log-sd of the processing time")
    validity_months: Annotated[int, Field(ge=1)] = 6
    renew_ahead_months: Annotated[int, Field(ge=0)] = Field(
        2, description="a renewal is filed this many months before the licence expires"
    )
    reapply_after_months: Annotated[int, Field(ge=1)] = 1
    approval_probability: Share = 0.8
    approval_probability_by_region: dict[str, Share] = Field(default_factory=dict)
    defence_approval_probability: Share = 0.0
    licence_cap_share: NonNeg | None = Field(
        1.25,
        description="a licence covers contract volumes: at most this multiple of the "
        "link's pre-control monthly flow (None: unlimited)",
    )
    exempt_share: Share = Field(
        0.0, description="share of the pre-control flow per link that needs no licence"
    )
    exempt_share_by_sector: dict[str, Share] = Field(
        default_factory=dict,
        description="exempt share for links to OEMs of a sector (e.g. magnets without the "
        "controlled heavy rare earths); overrides exempt_share for those links",
    )
    customs_hold_months: Annotated[int, Field(ge=0)] = Field(
        0,
        description="months from the rule's start in which customs hold exempt shipments "
        "too: a link without a licence carries nothing (one customs code covers every magnet "
        "chemistry, so exempt magnets cannot be told apart at the border)",
    )
    customs_hold_share: Share = Field(
        1.0, description="share of exempt shipments customs hold during customs_hold_months"
    )

    @field_validator("exempt_share_by_sector")
    @classmethod
    def _sectors(cls, v: dict[str, float]) -> dict[str, float]:
        from sim.world import check_sector_keys

        return check_sector_keys(v)

    quota_t_per_yr: NonNeg | None = None
    leakage_share: Share = Field(
        0.0, description="share of quota-blocked pre-control flow that leaks out anyway"
    )
    export_duty_share: NonNeg = 0.0


_RULE_KEYS = set(ExportRule.model_fields)


class ExportControlsSpec(ExportRule):
    """Top-level keys are the defaults of every rule; ``rules`` entries override them.

    Without ``rules`` the table itself is the one rule.
    """

    rules: list[dict[str, Any]] = Field(default_factory=list)

    def rule_specs(self) -> list[ExportRule]:
        """The rules with the defaults filled in."""
        base = self.model_dump(exclude={"rules"}, exclude_unset=True)
        if not self.rules:
            return [ExportRule.model_validate(base)]
        return [ExportRule.model_validate({**base, **r}) for r in self.rules]

    @model_validator(mode="after")
    def _rules(self) -> ExportControlsSpec:
        for k, r in enumerate(self.rules):
            bad = [key for key in r if key not in _RULE_KEYS]
            if bad:
                near = difflib.get_close_matches(bad[0], sorted(_RULE_KEYS), n=1)
                hint = f"; did you mean {near[0]!r}?" if near else ""
                raise ValueError(f"rules[{k}].{bad[0]}: unknown key{hint}")
        try:
            self.rule_specs()
        except ValidationError as exc:
            raise ValueError(_first_error(exc, prefix="rules")) from None
        return self


# ------------------------------------------------------------------------------ stockpiles
class StockpileSpec(_Dated):
    """A strategic stockpile holder (``[policies.stockpiles.<holder>]``)."""

    region: str | None = Field(None, description="national market (default: the holder name)")
    product: Literal["oxide", "metal", "magnet"] = "magnet"
    budget_usd: NonNeg
    target_days: NonNeg = Field(60.0, description="days of national use of the product")
    build_months: Annotated[float, Field(ge=1.0)] = Field(
        6.0, description="at most target / build_months bought per month"
    )
    buy_below_usd_per_kg: Pos | None = Field(None, description="buy only at or below (None: any)")
    release_on_shortage: bool = True
    release_above_usd_per_kg: Pos | None = None
    release_cover_months: Pos = Field(1.0, description="release tops buyers up to this cover")
    rotation_share_per_yr: Share = 0.0
    initial_t: NonNeg = Field(0.0, description="stock held at the start (not paid from budget)")


# ----------------------------------------------------------------------------------- vault
MILESTONES = ("feasibility", "construction", "commissioning", "verified_output")


class VaultCandidate(_Strict):
    """A candidate project: capacity added to an existing firm node."""

    firm: str
    capacity_t_per_yr: Pos
    capex_usd_per_t_per_yr: Pos = Field(description="cost per t/yr of capacity (selection key)")
    failure_probability: list[Share] | None = Field(
        None, description="per milestone; default the fund's"
    )


class PriceFloorSpec(_Dated):
    """Offtake / price floor: pays covered firms the gap below the floor on what they sell."""

    product: Product = "oxide"
    floor_usd_per_kg: Pos
    firms: list[str] = Field(default_factory=list, description="covered firm ids")


class VaultSpec(_Dated):
    """A Project Vault-style fund (``[policies.vault]``)."""

    region: str = "usa"
    budget_usd: NonNeg
    stages: list[Literal["separator", "metal_maker", "magnet_plant", "recycler", "mine"]] = Field(
        default_factory=lambda: ["separator", "metal_maker", "magnet_plant"]
    )
    exclude_regions: list[str] = Field(default_factory=lambda: ["china"])
    max_capex_usd_per_t_per_yr: Pos | None = None
    milestone_share: list[Share] = Field(default_factory=lambda: [0.1, 0.4, 0.3, 0.2])
    milestone_months: list[Annotated[int, Field(ge=0)]] = Field(
        default_factory=lambda: [6, 18, 12, 6]
    )
    failure_probability: list[Share] = Field(default_factory=lambda: [0.1, 0.1, 0.05, 0.0])
    verified_output_share: Share = Field(0.5, description="utilisation needed to verify output")
    verify_grace_months: Annotated[int, Field(ge=0)] = 12
    candidates: list[VaultCandidate] = Field(default_factory=list)
    gap_loans: bool = Field(
        False,
        description="lend eligible firms the part of an expansion's capex they cannot "
        "finance themselves (sim/finance.py)",
    )
    price_floor: PriceFloorSpec | None = None

    @model_validator(mode="after")
    def _milestones(self) -> VaultSpec:
        n = len(MILESTONES)
        for key in ("milestone_share", "milestone_months", "failure_probability"):
            if len(getattr(self, key)) != n:
                raise ValueError(f"{key}: needs {n} values ({', '.join(MILESTONES)})")
        if abs(sum(self.milestone_share) - 1.0) > 1e-6:
            raise ValueError(f"milestone_share: must sum to 1 (got {sum(self.milestone_share)})")
        for k, c in enumerate(self.candidates):
            if c.failure_probability is not None and len(c.failure_probability) != n:
                raise ValueError(f"candidates[{k}].failure_probability: needs {n} values")
        return self


# ------------------------------------------------------------------------------- subsidies
class CapacityGrant(_Strict):
    """Capacity added to a firm at ``online`` (capital subsidy)."""

    firm: str
    capacity_t_per_yr: Pos
    online: Month
    grant_usd_per_t_per_yr: NonNeg = 0.0


class SubsidySpec(_Dated):
    """A production-linked incentive and/or capital grants (``[policies.subsidies.<name>]``)."""

    region: str
    roles: list[Role] = Field(default_factory=lambda: ["magnet_plant"])
    firms: list[str] = Field(
        default_factory=list, description="eligible ids (default: all firms of `roles` in `region`)"
    )
    incentive_usd_per_kg: NonNeg = 0.0
    max_output_t_per_yr: NonNeg | None = None
    budget_usd: NonNeg
    capacity: list[CapacityGrant] = Field(default_factory=list)


# ----------------------------------------------------------------------- recycling targets
class RecyclingTargetSpec(_Dated):
    """A collection-rate path (``[policies.recycling_targets.<region or all>]``)."""

    start_share: Share | None = Field(None, description="rate at start (None: recyclers' own)")
    target_share: Share
    target_month: Month


# ---------------------------------------------------------------------- production quotas
class ProductionQuotaSpec(_Dated):
    """A production quota for one role in one region (``[policies.production_quotas.<n>]``)."""

    region: str
    role: Role
    quota_t_per_yr: NonNeg
    by_year: list[tuple[int, NonNeg]] = Field(
        default_factory=list, description="[[year, t_per_yr], ...] steps"
    )
    basis: Literal["output", "input"] = Field(
        "output", description="'input': the quota counts input (e.g. t REO separated)"
    )


# ------------------------------------------------------------------------ substitution R&D
class SubstitutionRDSpec(_Dated):
    """Demand-side R&D (``[policies.substitution_rd]``)."""

    rate_multiplier: Annotated[float, Field(ge=0.0)] = 1.5
    extra_substitution_max_share: Share = 0.0
    sectors: list[str] = Field(default_factory=list, description="for the extra max (all: [])")
    budget_usd: NonNeg = 0.0
    region: str | None = Field(None, description="funding government (None: world-wide)")


# --------------------------------------------------------------------------------- helpers
def _loc(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else ("." if out else "") + str(part)
    return out


def _first_error(exc: ValidationError, prefix: str = "") -> str:
    e = exc.errors(include_url=False)[0]
    path = _loc(tuple(e["loc"]))
    path = f"{prefix}.{path}" if prefix and path else (prefix or path)
    if e["type"] == "extra_forbidden":
        return f"{path}: unknown key"
    if e["type"] == "missing":
        return f"{path}: required key is missing"
    got = e.get("input")
    got_s = "" if isinstance(got, dict | list) else f" (got {got!r})"
    return f"{path}: {e['msg'].replace('Value error, ', '')}{got_s}"


def parse(model: type[BaseModel], raw: Any, where: str) -> Any:
    """Validate ``raw`` against ``model``; raise ``ValueError('where.key: message')``."""
    if not isinstance(raw, dict):
        raise ValueError(f"{where}: expected a table, got {type(raw).__name__}")
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        msg = _first_error(exc)
        if msg.startswith(": ") or msg.startswith(":"):
            raise ValueError(f"{where}{msg}") from None
        if exc.errors()[0]["type"] == "extra_forbidden":
            key = str(exc.errors()[0]["loc"][-1])
            near = difflib.get_close_matches(key, list(model.model_fields), n=1)
            if near:
                msg += f"; did you mean {near[0]!r}?"
        raise ValueError(f"{where}.{msg}") from None


def parse_named(model: type[BaseModel], raw: Any, where: str) -> dict[str, Any]:
    """Validate a table of named sub-tables (``[policies.<where>.<name>]``)."""
    if not isinstance(raw, dict):
        raise ValueError(f"{where}: expected a table of named entries")
    return {name: parse(model, sub, f"{where}.{name}") for name, sub in raw.items()}
