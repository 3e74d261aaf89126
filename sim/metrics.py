"""The metric catalogue: every monthly metric of ``timeseries.parquet`` declared once.

Each :class:`Metric` says its unit, its kind (a ``stock`` at the end of the month, a ``flow``
during the month, a ``price``, a ``cumulative`` total since the start, a ``rate`` or share
in force, a ``count``), the dimensions it is labelled by and what it means. Everything else
reads this declaration: ``sim.results`` builds the model's metrics by name (and only those a
sweep asks for), sweep specs check outcome and keep metrics against it, figures take axis
labels from it, and ``docs/outputs.md`` shows it as a table (``make docs``).

Adding a metric: call :func:`declare` with a :class:`Metric` (in this file, or next to the
code that records it); a model metric also needs a builder in ``sim.results`` registered
with ``@builds("name")``. Instruments' series (``series()`` of a policy) need only the
declaration; ``tests/test_metrics.py`` fails when a run records an undeclared metric.

Prices are labelled by market, not by a hard-coded country: region ``<domestic>`` (the
world's ``market.domestic_region``, ``china`` in the shipped worlds) is the domestic market,
``ex_<domestic>`` (``ex_china``) the landed price paid outside it.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Literal

Kind = Literal["stock", "flow", "price", "cumulative", "rate", "count"]
Dim = Literal["product", "region", "sector"]


@dataclass(frozen=True)
class Metric:
    """One metric of the tidy time series.

    Attributes:
        name: The ``metric`` column's value (unit suffix in the name).
        unit: Unit of ``value`` (``t``, ``t/yr``, ``USD/kg``, ``USD``, ``share``, ``count``).
        kind: ``stock``, ``flow`` (per month), ``price``, ``cumulative``, ``rate``, ``count``.
        dims: Dimensions labelling the rows (the others are ``""``).
        meaning: What the value is, in one or two sentences.
        source: ``model`` (built by ``sim.results``) or ``policy`` (an instrument's series).
    """

    name: str
    unit: str
    kind: Kind
    dims: tuple[Dim, ...]
    meaning: str
    source: Literal["model", "policy"] = "model"

    def axis_label(self, what: str = "") -> str:
        """An axis label with the unit, e.g. ``magnet shortage (t/month)``."""
        unit = f"{self.unit}/month" if self.kind == "flow" and "/" not in self.unit else self.unit
        return f"{what or self.name} ({unit})"


CATALOGUE: dict[str, Metric] = {}


def declare(*metrics: Metric) -> None:
    """Add metrics to the catalogue.

    Raises:
        ValueError: If a name is declared twice (a table defined twice).
    """
    for m in metrics:
        if m.name in CATALOGUE and CATALOGUE[m.name] != m:
            raise ValueError(f"metric {m.name!r} is declared twice")
        CATALOGUE[m.name] = m


def get(name: str) -> Metric:
    """The declared metric ``name``.

    Raises:
        KeyError: With the nearest declared name, if any.
    """
    if name in CATALOGUE:
        return CATALOGUE[name]
    near = difflib.get_close_matches(name, list(CATALOGUE), n=1)
    hint = f"; did you mean {near[0]!r}?" if near else ""
    raise KeyError(f"unknown metric {name!r}{hint}")


def price_markets(domestic: str) -> tuple[str, str]:
    """Region labels of the two price series: the domestic market and ex-domestic."""
    return domestic, f"ex_{domestic}"


def markdown_table() -> str:
    """The catalogue as a Markdown table (docs/outputs.md)."""
    lines = ["| metric | unit | kind | dimensions | source | meaning |", "|---" * 6 + "|"]
    for m in CATALOGUE.values():
        dims = ", ".join(m.dims) or "-"
        lines.append(f"| `{m.name}` | {m.unit} | {m.kind} | {dims} | {m.source} | {m.meaning} |")
    return "\n".join(lines)


PR: tuple[Dim, ...] = ("product", "region")

declare(
    Metric(
        "price_usd_per_kg",
        "USD/kg",
        "price",
        PR,
        "Market price index of the buyers in region `<domestic>` (the world's "
        "`market.domestic_region`, e.g. `china`) and of those outside it (`ex_<domestic>`, "
        "e.g. `ex_china`): the average price they paid (seller's price incl. border rent, plus "
        "transport; before tariffs and duties), weighted by tonnes shipped (a unit value); in a "
        "month without trade, the quotes on their established open links; carried forward in a "
        "month without orders.",
    ),
    Metric(
        "production_t",
        "t",
        "flow",
        PR,
        "Output in the month by producers' region; `scrap` = magnet-plant swarf + end-of-life "
        "magnets collected by recyclers (t NdPr).",
    ),
    Metric("consumption_t", "t", "flow", PR, "Inputs used by the next stage; magnets by OEMs."),
    Metric(
        "inventory_t",
        "t",
        "stock",
        PR,
        "End-of-month stock: firms' input and output stocks (holder's region), goods in "
        "transit (region `transit`), strategic stockpiles (holder's region).",
    ),
    Metric("capacity_t_per_yr", "t/yr", "stock", PR, "Installed, online capacity."),
    Metric(
        "running_capacity_t_per_yr",
        "t/yr",
        "stock",
        PR,
        "Capacity running: online capacity x the share its short-run supply curve runs "
        "(ramping over `restart_months`) x outages. Restarts show as rises.",
    ),
    Metric(
        "buyer_stock_t",
        "t",
        "stock",
        PR,
        "Buyers' input stock at the end of the month, by input product and buyer region "
        "(OEMs: magnets).",
    ),
    Metric(
        "precautionary_target_t",
        "t",
        "stock",
        PR,
        "Stock buyers target above their normal cover because of perceived supply risk "
        "(ODD 7.5), by input product and buyer region: hoarding in a scare, 0 when calm.",
    ),
    Metric(
        "substituted_t",
        "t",
        "flow",
        ("product", "region", "sector"),
        "Magnet demand OEMs designed out (substitution and thrifting) in the month.",
    ),
    Metric(
        "border_rent_usd",
        "USD",
        "flow",
        PR,
        "Border (quota) rent earned on exports under a binding licence or quota in the month, "
        "by product and exporting region (paid by foreign buyers to the exporters).",
    ),
    Metric(
        "demand_t",
        "t",
        "flow",
        ("product", "region", "sector"),
        "OEMs' magnet demand of the month.",
    ),
    Metric(
        "shortage_t",
        "t",
        "flow",
        ("product", "region", "sector"),
        "OEMs' magnet demand not served from stock in the month; never dropped.",
    ),
)

_W: tuple[Dim, ...] = ("product", "region")
declare(
    Metric(
        "ndpr_mined_t",
        "t",
        "flow",
        _W,
        "NdPr contained in concentrate mined in the month (world, product `ndpr`).",
    ),
    Metric(
        "ndpr_recovered_t",
        "t",
        "flow",
        _W,
        "NdPr in end-of-life magnets collected and swarf returned to recyclers in the month.",
    ),
    Metric(
        "ndpr_lost_t",
        "t",
        "flow",
        _W,
        "NdPr lost in processing in the month (separation, metal making, magnet making, "
        "recycling).",
    ),
    Metric(
        "ndpr_to_products_t",
        "t",
        "flow",
        _W,
        "NdPr in the magnets OEMs used in the month (leaves the supply chain into products).",
    ),
    Metric(
        "ndpr_stock_t",
        "t",
        "stock",
        _W,
        "NdPr in every stock at the end of the month: firms, in transit, stockpiles. Its "
        "change equals mined + recovered - lost - to products.",
    ),
    Metric(
        "ndpr_lost_by_stage_t",
        "t",
        "flow",
        ("product", "region", "sector"),
        "`ndpr_lost_t` by stage (column `sector` holds the stage: separator, metal_maker, "
        "magnet_plant, recycler).",
    ),
)

_POLICY: list[tuple[str, str, Kind, tuple[Dim, ...], str]] = [
    ("licences_active", "count", "count", PR, "export licences in force (exporter region)"),
    (
        "licence_applications_pending",
        "count",
        "count",
        PR,
        "licence applications under review (exporter region)",
    ),
    ("licences_denied", "count", "flow", PR, "licence applications refused in the month"),
    ("stockpile_t", "t", "stock", PR, "strategic stockpile held (holder region)"),
    ("stockpile_bought_t", "t", "flow", PR, "stockpile purchases in the month"),
    ("stockpile_released_t", "t", "flow", PR, "stockpile releases in the month"),
    ("stockpile_spent_usd", "USD", "cumulative", PR, "money spent on stockpile purchases"),
    ("stockpile_revenue_usd", "USD", "cumulative", PR, "revenue from stockpile releases"),
    ("vault_committed_usd", "USD", "cumulative", ("region",), "Vault money committed"),
    ("vault_disbursed_usd", "USD", "cumulative", ("region",), "Vault money paid out"),
    ("vault_lost_usd", "USD", "cumulative", ("region",), "Vault money lost on failed projects"),
    ("vault_loans_usd", "USD", "cumulative", ("region",), "Vault gap loans (part of disbursed)"),
    ("vault_repaid_usd", "USD", "cumulative", ("region",), "Vault loans repaid by firms"),
    ("vault_budget_left_usd", "USD", "stock", ("region",), "Vault budget not yet paid out"),
    (
        "vault_additional_capacity_t_per_yr",
        "t/yr",
        "stock",
        ("region",),
        "Vault-financed capacity online that firms could not have financed alone",
    ),
    (
        "vault_nonadditional_capacity_t_per_yr",
        "t/yr",
        "stock",
        ("region",),
        "Vault-financed capacity online that firms could have financed alone",
    ),
    ("vault_exposure_usd", "USD", "stock", ("region",), "disbursed minus lost"),
    ("vault_projects_failed", "count", "count", ("region",), "Vault projects failed so far"),
    ("vault_capacity_t_per_yr", "t/yr", "stock", PR, "capacity financed by the Vault"),
    ("price_floor_paid_usd", "USD", "cumulative", PR, "price-floor payments to sellers"),
    ("subsidy_paid_usd", "USD", "cumulative", ("region",), "processing incentives paid"),
    ("subsidy_grants_usd", "USD", "cumulative", ("region",), "capital grants paid"),
    ("collection_rate_share", "share", "rate", PR, "end-of-life collection rate in force"),
    ("production_quota_t_per_yr", "t/yr", "rate", PR, "production quota in force"),
    ("production_quota_used_t", "t", "flow", PR, "output counted against the quota"),
]
declare(*(Metric(*row, source="policy") for row in _POLICY))
