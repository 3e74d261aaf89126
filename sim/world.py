"""World files: the schema (pydantic), loading from TOML, ``--set`` overrides and error reporting.

A world is data: components (mines, separators, ...) as tables with units in their names, plus
behavioural parameters with documented defaults. Nothing here runs a simulation.
"""

from __future__ import annotations

import copy
import difflib
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from sim.calendar import parse_month
from sim.errors import UserError

PRODUCTS: tuple[str, ...] = ("concentrate", "oxide", "metal", "magnet", "scrap")
"""Products, in index order. Units: concentrate t REO; scrap t NdPr contained; others t product."""

SECTORS: tuple[str, ...] = ("ev", "wind", "electronics", "industrial", "defence")

FIRM_ROLES: tuple[str, ...] = ("mine", "separator", "metal_maker", "magnet_plant", "recycler")
"""Roles of firms that make things (OEMs aside): the keys of every per-role table."""


def per_role(*values: float) -> Callable[[], dict[str, float]]:
    """Default factory of a per-role table: one value per :data:`FIRM_ROLES` role, in order."""
    table = dict(zip(FIRM_ROLES, values, strict=True))
    return lambda: dict(table)


def complete_roles(v: dict[str, float], default: dict[str, float]) -> dict[str, float]:
    """A per-role table given in a world file, completed from ``default``.

    Raises:
        ValueError: For a key that is not a role in :data:`FIRM_ROLES`.
    """
    bad = [k for k in v if k not in FIRM_ROLES]
    if bad:
        raise ValueError(f"unknown role(s) {bad}; roles are {list(FIRM_ROLES)}")
    return {**default, **v}


Region = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$", description="lowercase region name")]
Month = Annotated[str, Field(pattern=r"^\d{4}-(0[1-9]|1[0-2])$", description="month as YYYY-MM")]
Share = Annotated[float, Field(ge=0.0, le=1.0)]
NonNeg = Annotated[float, Field(ge=0.0)]
Pos = Annotated[float, Field(gt=0.0)]


def check_sector_keys(v: dict[str, Any]) -> dict[str, Any]:
    """Raise ValueError unless every key of ``v`` is a sector name."""
    bad = [k for k in v if k not in SECTORS]
    if bad:
        raise ValueError(f"unknown sector(s) {bad}; sectors are {list(SECTORS)}")
    return v


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=False, validate_assignment=False)


# ----------------------------------------------------------------------------------------------
# Components
# ----------------------------------------------------------------------------------------------
class FirmSpec(_Strict):
    """Fields shared by every producing firm. Capacity is in tonnes of the firm's output."""

    id: Annotated[str, Field(pattern=r"^[A-Za-z0-9_\-]+$")]
    name: str = ""
    region: Region
    capacity_t_per_yr: NonNeg
    unit_cost_usd_per_kg: NonNeg = Field(description="conversion or mining cost, excl. inputs")
    online: Month | None = Field(None, description="first month of operation (None: operating)")
    expandable: bool = Field(True, description="may add capacity in response to margins")
    source: str = Field("", description="citation id(s) in docs/sources.md")


class MineSpec(FirmSpec):
    """A mine producing mixed rare-earth concentrate, in tonnes of REO."""

    ndpr_share: Annotated[float, Field(gt=0.0, le=1.0)] = Field(
        description="NdPr oxide share of the REO in this deposit's concentrate"
    )


class SeparatorSpec(FirmSpec):
    """Concentrate (t REO) -> NdPr oxide; oxide out = NdPr content of feed x recovery."""

    recovery: Annotated[float, Field(gt=0.0, le=1.0)] = 0.92


class MetalMakerSpec(FirmSpec):
    """NdPr oxide -> NdPr metal/alloy."""

    input_t_per_t: Pos = Field(1.2, description="t oxide per t metal")


class MagnetPlantSpec(FirmSpec):
    """NdPr metal -> sintered NdFeB magnets, with swarf returned as scrap (t NdPr contained)."""

    input_t_per_t: Pos = Field(0.35, description="t NdPr metal per t magnet, incl. swarf")
    scrap_t_per_t: NonNeg = Field(0.06, description="t NdPr in swarf per t magnet")

    @model_validator(mode="after")
    def _scrap_below_input(self) -> MagnetPlantSpec:
        if self.scrap_t_per_t >= self.input_t_per_t:
            raise ValueError("scrap_t_per_t must be below input_t_per_t")
        return self


class RecyclerSpec(FirmSpec):
    """Scrap (swarf bought, end-of-life magnets collected) -> NdPr oxide."""

    input_t_per_t: Pos = Field(0.93, description="t NdPr in scrap per t oxide")
    collection_rate: Share = Field(0.0, description="share of end-of-life magnets collected")
    collects_from: list[Region] = Field(default_factory=list, description="EOL regions (own)")


class OEMSpec(_Strict):
    """A magnet-using industry in one region and sector (a demand aggregate)."""

    id: Annotated[str, Field(pattern=r"^[A-Za-z0-9_\-]+$")]
    name: str = ""
    region: Region
    sector: Literal["ev", "wind", "electronics", "industrial", "defence"]
    demand_t_per_yr: NonNeg = Field(description="magnet demand in the start year at ref. price")
    target_cover_months: NonNeg = 2.5
    source: str = ""


class SectorSpec(_Strict):
    """Behaviour of a demand sector."""

    growth: list[tuple[int, float]] = Field(
        description="[[from_year, growth_per_yr], ...]: step schedule of demand growth",
        json_schema_extra={"unit": "[year, 1/yr]"},
    )
    lifetime_years: Pos = Field(description="product lifetime before magnets reach end of life")
    price_elasticity: Annotated[float, Field(le=0.0)] = -0.1
    substitution_max: Share = Field(0.3, description="max share of demand thrifted/substituted")
    substitution_rate_per_month: NonNeg | None = Field(
        None, description="most demand share substituted per month (None: behaviour default)"
    )
    source: str = ""

    @field_validator("growth")
    @classmethod
    def _sorted(cls, v: list[tuple[int, float]]) -> list[tuple[int, float]]:
        if not v:
            raise ValueError("needs at least one [year, rate] pair")
        years = [y for y, _ in v]
        if years != sorted(years):
            raise ValueError("years must be increasing")
        if any(r <= -1.0 for _, r in v):
            raise ValueError("growth rates must be > -1")
        return v


class TariffSpec(_Strict):
    """An import tariff (ad valorem) held by the importing region's government."""

    product: Literal["concentrate", "oxide", "metal", "magnet", "scrap"]
    from_regions: list[Region] = Field(description="exporting regions, or ['*'] for all others")
    rate: NonNeg
    start: Month | None = None
    end: Month | None = None
    announced: Month | None = Field(
        None,
        description="month the rule (rate, start and end) became known to buyers, who then "
        "expect the changes it brings (sim/deferral.py); None: its start and end surprise them",
    )
    source: str = ""

    @field_validator("from_regions", mode="before")
    @classmethod
    def _star(cls, v: Any) -> Any:
        return ["any_region"] if v == ["*"] else v


class GovernmentSpec(_Strict):
    """A policy region's government and its instruments."""

    region: Region
    name: str = ""
    tariffs: list[TariffSpec] = Field(default_factory=list)


class ProjectSpec(_Strict):
    """A capacity change announced for a firm (positive: expansion, negative: closure)."""

    firm: str
    online: Month
    capacity_t_per_yr: float
    source: str = ""


class LinkRule(_Strict):
    """A rule removing links: product from source_region to target_region ('*' = any)."""

    product: Literal["concentrate", "oxide", "metal", "magnet", "scrap", "*"] = "*"
    source_region: str = "*"
    target_region: str = "*"
    reason: str = ""


class NetworkSpec(_Strict):
    """How links (permitted supplier -> buyer edges) are made and what they cost."""

    domestic_lead_time_months: Annotated[int, Field(ge=1, le=12)] = 1
    international_lead_time_months: Annotated[int, Field(ge=1, le=12)] = 2
    domestic_transport_usd_per_kg: NonNeg = 0.05
    international_transport_usd_per_kg: NonNeg = 0.4
    concentrate_transport_usd_per_kg: NonNeg = Field(0.15, description="per kg REO, international")
    suppliers_per_buyer: Annotated[int, Field(ge=0)] = Field(
        0, description="0: every seller of the product; k: k sellers drawn (seeded) per buyer"
    )
    exclude: list[LinkRule] = Field(default_factory=list)


class MarketSpec(_Strict):
    """Initial prices and where the domestic (China) market is."""

    domestic_region: Region = "china"
    initial_price_usd_per_kg: dict[str, Pos]

    @field_validator("initial_price_usd_per_kg")
    @classmethod
    def _all_products(cls, v: dict[str, float]) -> dict[str, float]:
        missing = [p for p in PRODUCTS if p not in v]
        extra = [p for p in v if p not in PRODUCTS]
        if extra:
            raise ValueError(f"unknown product(s) {extra}; products are {list(PRODUCTS)}")
        if missing:
            raise ValueError(f"missing price(s) for {missing}")
        return v


class BehaviourSpec(_Strict):
    """Behavioural parameters (dimensionless unless the name has a unit).

    Defaults are documented in docs/ODD.md, section 'Submodels'.
    """

    price_sensitivity: Pos = Field(
        6.0, description="buyers' logit weight on landed cost / reference price"
    )
    price_discovery_months: Annotated[float, Field(ge=1.0)] = Field(
        4.0,
        description="months over which sellers close an excess demand by price: each month a "
        "price moves 1/price_discovery_months of the way to the price that would clear its "
        "market at the perceived elasticities (ODD 7.4)",
    )
    perceived_demand_elasticity: Pos = Field(
        2.0,
        description="the demand elasticity sellers act on when a whole market is short or "
        "long: larger than the sectors' own, since orders respond to prices with lags of "
        "months and a step at the true elasticity overshoots (ODD 7.4)",
    )
    seller_target_cover_months: Pos = 1.5
    buyer_target_cover_months: Pos = 2.0
    inventory_adjust_months: Annotated[float, Field(ge=1.0)] = 6.0
    expectation_smoothing: Annotated[float, Field(gt=0.0, le=1.0)] = 0.25
    restart_months: Annotated[float, Field(ge=1.0)] = Field(
        3.0,
        description="months for idle capacity to ramp to the rate its supply curve wants (ODD 7.1)",
    )
    variable_cost_share: Share = Field(
        0.6,
        description="share of a firm's conversion (or mining) cost paid per tonne made "
        "(reagents, energy, variable labour); the rest is paid on its capacity each month "
        "whether it runs or not. A firm stops below input cost plus this share (its "
        "shutdown point, ODD 7.1)",
    )
    price_floor_cost_share: Share = Field(
        0.6,
        description="sellers' reservation price: they hold stock rather than sell below this "
        "x unit cost",
    )
    markup: dict[str, float] = Field(
        default_factory=per_role(0.2, 0.1, 0.03, 0.1, 0.1),
        description="price above unit cost at which a firm not yet operating would run at "
        "reference_utilisation, by role (its supply curve's start point)",
    )
    scrap_payable_share: Share = Field(0.78, description="scrap price / China oxide price")
    scrap_price_anchor_rate: Share = Field(
        0.25, description="monthly pull of scrap asks toward the payable price (an index contract)"
    )
    supply_elasticity: dict[str, float] = Field(
        default_factory=per_role(1.0, 2.0, 2.0, 2.0, 2.0),
        description="short-run price elasticity of spare capacity (spare capacity shrinks as "
        "the price rises), by role (ODD 7.1)",
    )
    order_fill_utilisation: dict[str, Share] = Field(
        default_factory=per_role(0.0, 0.0, 0.0, 0.0, 0.0),
        description="share of capacity a firm runs to fill its orders whenever its price "
        "covers variable cost, by role (0: output follows the supply curve alone). A plant "
        "idle for want of orders makes more at about the same cost a tonne; its supply curve "
        "then sets the price it asks as its idle capacity fills, not how much it makes "
        "(ODD 7.1)",
    )
    reference_utilisation: Share = Field(
        0.8,
        description="share of capacity a firm not yet operating runs at unit cost x (1 + markup)",
    )
    precaution_unfilled_weight: NonNeg = Field(
        2.0,
        description="extra cover (x normal) per unit share of orders left unfilled above "
        "what the buyer is used to (ODD 7.5)",
    )
    precaution_momentum_weight: NonNeg = Field(
        1.0,
        description="extra cover (x normal) per unit rise in the log input price over its "
        "slow average (ODD 7.5)",
    )
    precaution_max_extra_cover: NonNeg = Field(
        2.0,
        description="most extra cover a scare adds, x normal cover (risk saturates there; ODD 7.5)",
    )
    deferral_safety_cover_months: NonNeg = Field(
        0.5,
        description="months of use a buyer keeps (beyond its supply line) while it postpones "
        "purchases expected to cost less next month (sim/deferral.py; ODD 7.2)",
    )
    precaution_controls_weight: NonNeg = Field(
        0.5,
        description="extra cover (x normal) when all supply comes over links under an export "
        "licence or quota (ODD 7.5)",
    )
    investment_hurdle_margin: float = Field(
        0.1, description="margin above the role's normal markup that triggers expansion"
    )
    investment_utilisation_trigger: Share = 0.85
    expansion_step: Annotated[float, Field(gt=0.0, le=2.0)] = 0.2
    closure_margin: float = -0.3
    closure_step: Share = 0.15
    lead_time_years: dict[str, Pos] = Field(default_factory=per_role(7.0, 4.0, 2.0, 1.5, 2.0))
    lead_time_sd_log: NonNeg = 0.25
    outage_probability_per_month: Share = 0.01
    outage_capacity_loss: Share = 0.5
    outage_mean_months: Annotated[float, Field(ge=1.0)] = 2.0
    shipping_delay_probability: Share = 0.03
    new_supplier_share: Share = Field(
        0.1,
        description="share of a buyer's monthly orders a link may take beyond its "
        "established share (supplier qualification)",
    )
    relationship_smoothing: Annotated[float, Field(gt=0.0, le=1.0)] = Field(
        0.1, description="monthly smoothing of each link's share of the buyer's purchases"
    )
    substitution_price_threshold: Pos = Field(
        1.5, description="NdPr cost in a magnet, x its start value, above which OEMs redesign"
    )
    substitution_risk_weight: NonNeg = Field(
        1.0, description="weight of perceived supply risk in the redesign driver (ODD 7.6)"
    )
    substitution_lag_months: Annotated[float, Field(ge=1.0)] = Field(
        12.0, description="mean lag from a redesign decision to its effect (design cycle)"
    )
    substitution_rate_per_month: NonNeg = Field(
        0.01, description="most demand share substituted per month (default for sectors)"
    )
    substitution_decay_per_month: NonNeg = 0.002
    choke_price_multiple: Annotated[float, Field(gt=1.0)] = Field(
        50.0,
        description="price paid, x the reference price, at which magnet demand is destroyed: "
        "demand x (1 - (price/reference / choke)^4) on top of the sector elasticity, so that "
        "a shortage no market can close does not drive prices without bound (ODD 7.5)",
    )
    demand_growth_multiplier: NonNeg = 1.0
    magnet_ndpr_share: Share = Field(0.28, description="t NdPr per t magnet in end-of-life scrap")

    @field_validator("lead_time_years", "markup", "supply_elasticity", "order_fill_utilisation")
    @classmethod
    def _roles(cls, v: dict[str, float], info: Any) -> dict[str, float]:
        return complete_roles(v, cls.model_fields[info.field_name].default_factory())


# t NdPr element per t NdPr oxide: 0.75 x 288.48/336.48 (Nd2O3) + 0.25 x 845.46/1021.44
# (Pr6O11), IUPAC atomic weights (docs/sources.md, NDPR-STOICH).
OXIDE_NDPR = 0.85


class FinanceSpec(_Strict):
    """Firms' balance sheets and the cost of capital (docs/ODD.md 7.7; sources in docs/sources.md).

    Figures marked "calibration" in docs/sources.md are assumptions awaiting calibration.
    """

    risk_free_rate_per_yr: NonNeg = Field(0.04, description="US 10-year yield 2024 (UST-10Y)")
    base_risk_premium_per_yr: NonNeg = Field(
        0.05, description="premium of a mining/metals firm at zero price risk (DAMODARAN-WACC)"
    )
    price_risk_premium: NonNeg = Field(
        0.15, description="extra cost of capital per unit annualised price volatility (calibration)"
    )
    volatility_smoothing: Annotated[float, Field(gt=0.0, le=1.0)] = Field(
        0.1, description="monthly EWMA weight of squared log price changes (RiskMetrics-style)"
    )
    project_life_years: Pos = 20.0
    capex_usd_per_t_per_yr: dict[str, Pos] = Field(
        default_factory=per_role(20000.0, 150000.0, 60000.0, 100000.0, 40000.0),
        description="capital cost per t/yr of output capacity, by role (calibration; MP-10X)",
    )
    initial_cash_months: NonNeg = Field(
        3.0, description="cash at the start, in months of revenue (calibration)"
    )
    initial_debt_share: Share = Field(
        0.3, description="debt at the start, share of capacity's replacement capex (calibration)"
    )
    min_cash_months: NonNeg = Field(
        1.0, description="cash a firm keeps before it borrows or invests, months of revenue"
    )
    max_cash_months: NonNeg = Field(
        6.0, description="cash above this many months of revenue is paid out (calibration)"
    )
    max_debt_to_ebitda: NonNeg = Field(
        3.0, description="lenders' limit on debt / annual EBITDA (common covenant; calibration)"
    )
    project_failure_probability: Share = Field(
        0.05, description="chance an expansion fails before commissioning (calibration)"
    )

    @field_validator("capex_usd_per_t_per_yr")
    @classmethod
    def _roles(cls, v: dict[str, float], info: Any) -> dict[str, float]:
        return complete_roles(v, cls.model_fields[info.field_name].default_factory())


class CalendarSpec(_Strict):
    """Simulated period."""

    start: Month = "2024-01"
    end: Month = "2040-12"
    spinup_months: Annotated[int, Field(ge=0, le=120)] = Field(
        36,
        description="months run at start conditions (not recorded, no random shocks) to "
        "settle inventories (ODD 5)",
    )

    @model_validator(mode="after")
    def _order(self) -> CalendarSpec:
        if parse_month(self.end) < parse_month(self.start):
            raise ValueError(f"end {self.end} is before start {self.start}")
        return self


class MetaSpec(_Strict):
    """Descriptive metadata."""

    name: str
    description: str = ""


class World(_Strict):
    """A complete world: everything a simulation needs, validated."""

    meta: MetaSpec
    calibration: str | None = Field(
        None,
        description="point.toml of `ndsim calibrate` (or its output folder), relative to the "
        "world file; its values are applied over this file's (sim/calibrate/posterior.py)",
    )
    calendar: CalendarSpec = Field(default_factory=CalendarSpec)
    market: MarketSpec
    network: NetworkSpec = Field(default_factory=NetworkSpec)
    behaviour: BehaviourSpec = Field(default_factory=BehaviourSpec)
    finance: FinanceSpec = Field(default_factory=FinanceSpec)
    sectors: dict[str, SectorSpec]
    mines: list[MineSpec] = Field(default_factory=list)
    separators: list[SeparatorSpec] = Field(default_factory=list)
    metal_makers: list[MetalMakerSpec] = Field(default_factory=list)
    magnet_plants: list[MagnetPlantSpec] = Field(default_factory=list)
    recyclers: list[RecyclerSpec] = Field(default_factory=list)
    oems: list[OEMSpec] = Field(default_factory=list)
    governments: list[GovernmentSpec] = Field(default_factory=list)
    projects: list[ProjectSpec] = Field(default_factory=list)
    policies: dict[str, Any] = Field(
        default_factory=dict, description="policy instruments (see docs/policies.md)"
    )

    @field_validator("policies")
    @classmethod
    def _policies(cls, v: dict[str, Any]) -> dict[str, Any]:
        from sim.policies.registry import validate_policies

        validate_policies(v)
        return v

    @field_validator("sectors")
    @classmethod
    def _sector_names(cls, v: dict[str, SectorSpec]) -> dict[str, SectorSpec]:
        return check_sector_keys(v)

    @model_validator(mode="after")
    def _cross_checks(self) -> World:
        ids: dict[str, str] = {}
        for table in ("mines", "separators", "metal_makers", "magnet_plants", "recyclers", "oems"):
            for item in getattr(self, table):
                if item.id in ids:
                    raise ValueError(f"duplicate id {item.id!r} (in {ids[item.id]} and {table})")
                ids[item.id] = table
        for oem in self.oems:
            if oem.sector not in self.sectors:
                raise ValueError(f"oem {oem.id!r} uses sector {oem.sector!r} not in [sectors]")
        firms = {i for i, t in ids.items() if t != "oems"}
        for k, proj in enumerate(self.projects):
            if proj.firm not in firms:
                near = difflib.get_close_matches(proj.firm, sorted(firms), n=1)
                hint = f"; did you mean {near[0]!r}?" if near else ""
                raise ValueError(f"projects[{k}].firm {proj.firm!r} is no firm id{hint}")
        if not self.oems:
            raise ValueError("a world needs at least one OEM (demand)")
        self._recipes_conserve_ndpr()
        return self

    def _recipes_conserve_ndpr(self) -> None:
        """No recipe may put out more NdPr than it takes in (contents: sim/ledger.py)."""
        m = self.behaviour.magnet_ndpr_share
        for k, f in enumerate(self.metal_makers):
            if f.input_t_per_t * OXIDE_NDPR < 1.0 - 1e-12:
                raise ValueError(
                    f"metal_makers[{k}].input_t_per_t: {f.input_t_per_t} t oxide holds "
                    f"{f.input_t_per_t * OXIDE_NDPR:.3f} t NdPr, less than the 1 t of metal made "
                    f"(needs >= {1 / OXIDE_NDPR:.3f})"
                )
        for k, f in enumerate(self.magnet_plants):
            if f.input_t_per_t < m + f.scrap_t_per_t - 1e-12:
                raise ValueError(
                    f"magnet_plants[{k}].input_t_per_t: {f.input_t_per_t} t NdPr metal is less "
                    f"than the NdPr in the magnet (behaviour.magnet_ndpr_share {m}) plus swarf "
                    f"(scrap_t_per_t {f.scrap_t_per_t})"
                )
        for k, f in enumerate(self.recyclers):
            if f.input_t_per_t < OXIDE_NDPR - 1e-12:
                raise ValueError(
                    f"recyclers[{k}].input_t_per_t: {f.input_t_per_t} t NdPr scrap is less than "
                    f"the {OXIDE_NDPR} t NdPr in a tonne of oxide"
                )

    def firm_tables(self) -> dict[str, list[FirmSpec]]:
        """Return the producing-firm tables keyed by role name."""
        return {
            "mine": list(self.mines),
            "separator": list(self.separators),
            "metal_maker": list(self.metal_makers),
            "magnet_plant": list(self.magnet_plants),
            "recycler": list(self.recyclers),
        }


# ----------------------------------------------------------------------------------------------
# Loading, overrides, errors
# ----------------------------------------------------------------------------------------------
_PATTERN_HELP = {
    r"^\d{4}-(0[1-9]|1[0-2])$": "expected a month as YYYY-MM",
    r"^[a-z][a-z0-9_]*$": "expected a lowercase region name (letters, digits, _)",
    r"^[A-Za-z0-9_\-]+$": "expected an id of letters, digits, '_' or '-'",
}


def _loc_str(loc: tuple[Any, ...], raw: dict[str, Any] | None = None) -> str:
    """``a.b[3].c``, with the ids of the list items on the way when ``raw`` is given.

    Example: ``mines[3].capacity_t_per_yr (id 'mp_mountain_pass')``.
    """
    out = ""
    ids = []
    node: Any = raw
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
            ok = isinstance(node, list) and -len(node) <= part < len(node)
            node = node[part] if ok else None
            if isinstance(node, dict) and isinstance(node.get("id"), str):
                ids.append(repr(node["id"]))
        else:
            out += ("." if out else "") + str(part)
            node = node.get(part) if isinstance(node, dict) else None
    if ids:
        out += f" (id {', '.join(ids)})"
    return out or "(top level)"


def _model_at(loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """Walk the schema along ``loc`` and return the model class found there, if any."""
    model: Any = World
    skip_key = False
    for part in loc:
        if isinstance(part, int):
            continue
        if skip_key:  # a key of a dict-valued field (e.g. sectors.<name>)
            skip_key = False
            continue
        fields = getattr(model, "model_fields", None)
        if fields is None or part not in fields:
            return None
        annotation = fields[part].annotation
        skip_key = getattr(annotation, "__origin__", None) is dict
        model = _inner_model(annotation)
    return model if isinstance(model, type) and issubclass(model, BaseModel) else None


def _inner_model(annotation: Any) -> Any:
    args = getattr(annotation, "__args__", ())
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for a in args:
        found = _inner_model(a)
        if found is not None:
            return found
    return None


def _misspelt(loc: tuple[Any, ...], raw: dict[str, Any]) -> str:
    """``; is 'x' a misspelling of it?`` when the table holds a near-miss of the key."""
    node: Any = raw
    for part in loc[:-1]:
        if isinstance(node, dict):
            node = node.get(part)
        elif isinstance(node, list) and isinstance(part, int) and -len(node) <= part < len(node):
            node = node[part]
        else:
            return ""
    if not isinstance(node, dict):
        return ""
    near = difflib.get_close_matches(str(loc[-1]), [str(k) for k in node], n=1)
    return f" (is {near[0]!r} a misspelling of {str(loc[-1])!r}?)" if near else ""


def format_validation_error(err: ValidationError, raw: dict[str, Any]) -> list[str]:
    """Turn a pydantic ValidationError into ``key.path: message`` lines with typo hints."""
    lines = []
    for e in err.errors(include_url=False):
        loc = tuple(e["loc"])
        # pydantic appends the tagged member of unions etc.; strip function-validator noise
        loc = tuple(p for p in loc if not (isinstance(p, str) and p.startswith("function-")))
        path = _loc_str(loc, raw)
        msg = e["msg"]
        if e["type"] == "extra_forbidden":
            parent = _model_at(loc[:-1])
            hint = ""
            if parent is not None:
                near = difflib.get_close_matches(str(loc[-1]), list(parent.model_fields), n=1)
                if near:
                    hint = f"; did you mean {_loc_str(loc[:-1] + (near[0],))!r}?"
                else:
                    hint = f"; valid keys: {', '.join(parent.model_fields)}"
            lines.append(f"{path}: unknown key{hint}")
            continue
        if path == "policies" and e["type"] == "value_error":
            # instrument validators report "name.key.path: message"
            head, sep, rest = msg.replace("Value error, ", "").partition(": ")
            if sep and " " not in head:
                lines.append(f"policies.{head}: {rest}")
                continue
        if e["type"] == "missing":
            lines.append(f"{path}: required key is missing{_misspelt(loc, raw)}")
            continue
        if e["type"] == "string_pattern_mismatch":
            pattern = str(e.get("ctx", {}).get("pattern", ""))
            msg = _PATTERN_HELP.get(pattern, msg)
        got = e.get("input")
        got_s = "" if isinstance(got, dict | list) else f" (got {got!r})"
        msg = msg.replace("Value error, ", "")
        lines.append(f"{path}: {msg}{got_s}")
    return lines


def read_toml(path: str | Path) -> dict[str, Any]:
    """Read a TOML file, turning I/O and syntax errors into :class:`UserError`."""
    p = Path(path)
    if not p.exists():
        raise UserError("file not found", file=str(path))
    if p.is_dir():
        raise UserError("is a directory, expected a TOML file", file=str(path))
    try:
        with p.open("rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"not valid TOML: {exc}", file=str(path)) from None
    except UnicodeDecodeError:
        raise UserError("not a text (UTF-8) TOML file", file=str(path)) from None


def parse_override(text: str) -> tuple[list[str], Any]:
    """Parse ``key.path=value`` (value in TOML syntax; bare words are strings)."""
    if "=" not in text:
        raise UserError(f"--set {text!r}: expected key.path=value")
    key, _, value = text.partition("=")
    key = key.strip()
    if not key or any(not p for p in key.split(".")):
        raise UserError(f"--set {text!r}: empty key path")
    try:
        parsed = tomllib.loads(f"v = {value.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        parsed = value.strip()
    return key.split("."), parsed


def apply_override(raw: dict[str, Any], path: list[str], value: Any, *, label: str) -> None:
    """Set ``value`` at ``path`` in the raw world dict.

    List elements are addressed by index (``mines.0.capacity_t_per_yr``) or by id
    (``mines.mp_mountain_pass.capacity_t_per_yr``). Unknown keys are caught by validation.

    Raises:
        UserError: If a list element or intermediate table does not exist.
    """
    node: Any = raw
    for i, part in enumerate(path[:-1]):
        where = ".".join(path[: i + 1])
        if isinstance(node, list):
            node = _list_item(node, part, where, label)
        elif isinstance(node, dict):
            if part not in node:
                node[part] = {}
            node = node[part]
        else:
            raise UserError(f"{label}: {where} is a value, not a table")
    last = path[-1]
    if isinstance(node, list):
        idx = _list_index(node, last, ".".join(path), label)
        node[idx] = value
    elif isinstance(node, dict):
        node[last] = value
    else:
        raise UserError(f"{label}: {'.'.join(path[:-1])} is a value, not a table")


def _list_index(items: list[Any], part: str, where: str, label: str) -> int:
    if part.lstrip("-").isdigit():
        k = int(part)
        if -len(items) <= k < len(items):
            return k
        raise UserError(f"{label}: {where}: index {k} out of range (list has {len(items)})")
    ids = [it.get("id") or it.get("region") for it in items if isinstance(it, dict)]
    for k, it in enumerate(items):
        if isinstance(it, dict) and part in (it.get("id"), it.get("region")):
            return k
    near = difflib.get_close_matches(part, [str(i) for i in ids if i], n=1)
    hint = f"; did you mean {near[0]!r}?" if near else ""
    raise UserError(f"{label}: {where}: no element with id {part!r}{hint}")


def _list_item(items: list[Any], part: str, where: str, label: str) -> Any:
    return items[_list_index(items, part, where, label)]


# ----------------------------------------------------------------------------------------------
# Calibrated values by reference: calibration = "path/to/point.toml" (or its folder)
# ----------------------------------------------------------------------------------------------
def _point_file(ref: str, base_dir: Path) -> Path:
    p = Path(ref)
    p = p if p.is_absolute() else base_dir / p
    return p / "point.toml" if p.is_dir() else p


def calibrated_values(ref: str, base_dir: Path, *, file: str) -> dict[str, Any]:
    """The ``[values]`` of a calibration's ``point.toml`` (key path -> value).

    Raises:
        UserError: Naming the world file and the ``calibration`` key when the file is
            missing or malformed.
    """
    path = _point_file(ref, base_dir)
    if not path.exists():
        raise UserError(
            "calibration not found",
            file=file,
            problems=[f"calibration: no file {ref!r} (looked at {path}); expected a point.toml "
                      "written by `ndsim calibrate`, or its output folder"],
        )  # fmt: skip
    values = read_toml(path).get("values")
    if not isinstance(values, dict) or not values:
        raise UserError(
            "calibration has no values",
            file=file,
            problems=[f'calibration: {path} has no [values] table of "key.path" = value'],
        )
    return values


def apply_calibration(raw: dict[str, Any], base_dir: Path, *, file: str) -> dict[str, Any]:
    """Apply the world's ``calibration`` (if any) to ``raw`` in place and return it.

    ``point.toml`` (written by ``ndsim calibrate``) holds ``"key.path" = value`` lines under
    ``[values]``; they are set like ``--set`` overrides, over the world file's own values and
    before any ``--set``.
    """
    ref = raw.get("calibration")
    if not isinstance(ref, str) or not ref:
        return raw  # absent; a non-string is reported by validation
    return set_calibrated(raw, ref, base_dir, file=file, label=f"calibration {ref}")


def set_calibrated(
    raw: dict[str, Any], ref: str, base_dir: Path, *, file: str, label: str
) -> dict[str, Any]:
    """Set the values of the calibration ``ref`` (a point.toml or its folder) in ``raw``.

    Raises:
        UserError: When the calibration is missing or malformed, or a key is not the world's.
    """
    for key, value in calibrated_values(ref, base_dir, file=file).items():
        apply_override(raw, key.split("."), value, label=f"{label} ({key})")
    return raw


def validate_world(raw: dict[str, Any], *, file: str = "<world>") -> World:
    """Validate a raw world dict, raising :class:`UserError` with every problem listed."""
    try:
        return World.model_validate(raw)
    except ValidationError as exc:
        problems = format_validation_error(exc, raw)
        n = len(problems)
        raise UserError(
            f"{n} problem{'s' if n > 1 else ''} in world", file=file, problems=problems
        ) from None


def load_world(
    path: str | Path, overrides: list[str] | None = None, *, raw: dict[str, Any] | None = None
) -> tuple[World, dict[str, Any]]:
    """Load and validate a world file, applying ``--set`` overrides first.

    Args:
        path: The TOML file.
        overrides: ``key.path=value`` strings.
        raw: An already-parsed dict to use instead of reading ``path``.

    Returns:
        The validated world and the resolved raw dict (after overrides).
    """
    data = copy.deepcopy(raw) if raw is not None else read_toml(path)
    if Path(path).is_file():  # a world file: its `calibration`, if any, comes before --set
        apply_calibration(data, Path(path).parent, file=str(path))
    for text in overrides or []:
        keys, value = parse_override(text)
        apply_override(data, keys, value, label=f"--set {text}")
    return validate_world(data, file=str(path)), data
