"""Game roles, their levers and how the levers become the model's policy tables.

Every lever acts through an existing mechanism of the model: export controls, production
quotas, stockpiles, the Vault fund, subsidies, recycling targets (``[policies]`` tables),
import tariffs (a government's ``tariffs`` table), offtake contracts (the Vault's price floor,
held by a firm) and investment (capacity projects, as a world's ``projects`` table). A role's
levers write only that role's tables; firms' tables are keyed ``name@role`` so that their
money is theirs, not the government's (see :meth:`sim.app.live.LiveRun.apply_tables`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sim.app.controls import (
    STOCKPILE_BUDGET_USD,
    VAULT_CAPEX_USD_PER_T_PER_YR,
    VAULT_DEFAULT_PROJECT_T_PER_YR,
    VAULT_STAGE_TABLES,
)

PRIVATE_STOCK_BUDGET_USD = 5e8
EU_SUBSIDY_BUDGET_USD = 2e9
CONTRACT_BUDGET_USD = 1e10  # a contract's payments are limited by the tonnes sold, not this
TARIFF_PRODUCTS = ("magnet", "metal")
# The game's EU recycling plant where a world has none: dormant (collects nothing) until the
# EU's recycling lever sets a collection share. An assumption of the game, not a sourced plant.
EU_RECYCLER = {
    "id": "eu_recycler_game",
    "name": "EU recyclers (game)",
    "region": "eu",
    "capacity_t_per_yr": 3000.0,
    "unit_cost_usd_per_kg": 12.0,
    "collection_rate": 0.0,
}


@dataclass(frozen=True)
class Lever:
    """One lever: key, words, range and the value meaning "no decision"."""

    key: str
    label: str
    lo: float
    hi: float
    step: float
    neutral: float


@dataclass(frozen=True)
class Role:
    """A team's role: who it plays, its levers and its objective in words."""

    key: str
    name: str
    levers: tuple[Lever, ...]
    objective: str


ROLES: dict[str, Role] = {
    r.key: r
    for r in (
        Role(
            "china",
            "China's government",
            (
                Lever(
                    "approval",
                    "Magnet export licences approved (share; 1 = no licensing)",
                    0.0,
                    1.0,
                    0.05,
                    1.0,
                ),
                Lever(
                    "quota", "Separation quota (share of capacity; 1 = none)", 0.3, 1.0, 0.05, 1.0
                ),
            ),
            "Keep China's share of world magnet output high",
        ),
        Role(
            "usa",
            "US government",
            (
                Lever("stockpile_days", "Magnet stockpile (days of US use)", 0, 180, 15, 0),
                Lever("vault_busd", "Vault fund (billion USD)", 0.0, 5.0, 0.25, 0.0),
                Lever("tariff_pct", "Tariff on magnets and metal from China (%)", 0, 100, 5, 0),
            ),
            "Avoid US magnet shortage; money spent counts against you",
        ),
        Role(
            "eu",
            "European Union",
            (
                Lever("stockpile_days", "Magnet stockpile (days of EU use)", 0, 180, 15, 0),
                Lever(
                    "subsidy_usd_per_kg",
                    "Subsidy to EU magnet plants (USD per kg made)",
                    0.0,
                    30.0,
                    2.5,
                    0.0,
                ),
                Lever(
                    "recycling",
                    "EU recycling: collection share reached by December (share)",
                    0.0,
                    0.6,
                    0.05,
                    0.0,
                ),
            ),
            "Avoid EU magnet shortage; money spent counts against you",
        ),
        Role(
            "ev_maker",
            "EV maker (USA)",
            (
                Lever("stock_days", "Own magnet stock (days of US use)", 0, 120, 15, 0),
                Lever(
                    "contract_usd_per_kg",
                    "Offtake contract: price guaranteed to magnet plants outside China "
                    "(USD/kg; 0 = none)",
                    0,
                    150,
                    10,
                    0,
                ),
                Lever(
                    "invest_t_per_yr",
                    "Co-invest in US magnet plants this year (t/yr added)",
                    0,
                    3000,
                    250,
                    0,
                ),
            ),
            "Keep your cars built (your own magnet shortage) at low cost",
        ),
        Role(
            "magnet_maker",
            "Magnet maker outside China",
            (
                Lever("metal_stock_days", "Own metal stock (days of use)", 0, 120, 15, 0),
                Lever(
                    "contract_usd_per_kg",
                    "Metal contract: price guaranteed to metal makers outside China "
                    "(USD/kg; 0 = none)",
                    0,
                    150,
                    10,
                    0,
                ),
                Lever(
                    "invest_t_per_yr",
                    "Expand your plants this year (t/yr added)",
                    0,
                    3000,
                    250,
                    0,
                ),
            ),
            "Profit: margin on magnets made plus contract income, minus stock and investment",
        ),
    )
}


def neutral_levers() -> dict[str, dict[str, float]]:
    """Every lever at its "no decision" value."""
    return {r: {lv.key: lv.neutral for lv in role.levers} for r, role in ROLES.items()}


def clamp(role: str, key: str, value: float) -> float:
    """The value within the lever's range; KeyError for an unknown role or lever."""
    lv = next((x for x in ROLES[role].levers if x.key == key), None) if role in ROLES else None
    if lv is None:
        raise KeyError(key)
    return float(min(max(float(value), lv.lo), lv.hi))


def _region_firms(raw: dict[str, Any], table: str, region: str) -> list[dict[str, Any]]:
    return sorted(
        [f for f in raw.get(table, []) if f.get("region") == region], key=lambda f: f["id"]
    )


def _has(raw: dict[str, Any], table: str, region: str) -> bool:
    return bool(_region_firms(raw, table, region))


def _outside_china(raw: dict[str, Any], table: str) -> list[str]:
    return sorted(f["id"] for f in raw.get(table, []) if f.get("region") != "china")


def game_firms(raw: dict[str, Any]) -> str:
    """Firms the game adds to a world (JSON for :class:`~sim.app.live.LiveRun`).

    An EU recycling plant (:data:`EU_RECYCLER`) where the world has none, so that the EU's
    recycling lever has a plant to act on.
    """
    return "" if _has(raw, "recyclers", "eu") else json.dumps({"recyclers": [EU_RECYCLER]})


def magnet_maker_plants(raw: dict[str, Any]) -> list[str]:
    """The magnet maker's plants: every magnet plant outside China."""
    return _outside_china(raw, "magnet_plants")


def ev_maker_oems(raw: dict[str, Any]) -> list[str]:
    """The EV maker: the US electric-vehicle makers (else every US magnet user)."""
    usa = [o for o in raw.get("oems", []) if o.get("region") == "usa"]
    ev = [o["id"] for o in usa if o.get("sector") == "ev"]
    return sorted(ev or [o["id"] for o in usa])


def _contract(firms: list[str], product: str, floor: float, start: str) -> dict[str, Any]:
    """An offtake contract as a price floor (the Vault's mechanism) with no projects."""
    return {
        "region": "usa",
        "start": start,
        "budget_usd": 0.0,
        "candidates": [],
        "price_floor": {
            "product": product,
            "floor_usd_per_kg": float(floor),
            "firms": firms,
            "start": start,
        },
    }


def policy_tables(
    levers: dict[str, dict[str, float]], raw: dict[str, Any], start: str, year_end: str
) -> dict[str, Any]:
    """All teams' levers as ``[policies]`` tables in force from ``start`` (``YYYY-MM``)."""
    out: dict[str, Any] = {}
    china, usa, eu = levers["china"], levers["usa"], levers["eu"]
    ev, mm = levers["ev_maker"], levers["magnet_maker"]
    if china["approval"] < 1.0:
        out["export_controls"] = {
            "start": start,
            "exporter": "china",
            "products": ["magnet"],
            "approval_probability": float(china["approval"]),
        }
    if china["quota"] < 1.0 and _has(raw, "separators", "china"):
        cap = sum(
            f.get("capacity_t_per_yr", 0.0) for f in _region_firms(raw, "separators", "china")
        )
        out["production_quotas"] = {
            "china_separation": {
                "start": start,
                "region": "china",
                "role": "separator",
                "quota_t_per_yr": float(china["quota"] * cap),
            }
        }
    stock: dict[str, Any] = {}
    for region, lv in (("usa", usa), ("eu", eu)):
        if lv["stockpile_days"] > 0:
            stock[region] = {
                "product": "magnet",
                "budget_usd": STOCKPILE_BUDGET_USD,
                "target_days": float(lv["stockpile_days"]),
                "build_months": 12.0,
                "start": start,
            }
    if stock:
        out["stockpiles"] = stock
    if ev["stock_days"] > 0:
        out["stockpiles@ev_maker"] = {
            "ev_maker": {
                "region": "usa",
                "product": "magnet",
                "budget_usd": PRIVATE_STOCK_BUDGET_USD,
                "target_days": float(ev["stock_days"]),
                "build_months": 6.0,
                "start": start,
            }
        }
    if mm["metal_stock_days"] > 0:
        region = "eu" if _has(raw, "magnet_plants", "eu") else "usa"
        out["stockpiles@magnet_maker"] = {
            "magnet_maker": {
                "region": region,
                "product": "metal",
                "budget_usd": PRIVATE_STOCK_BUDGET_USD,
                "target_days": float(mm["metal_stock_days"]),
                "build_months": 6.0,
                "start": start,
            }
        }
    if ev["contract_usd_per_kg"] > 0 and magnet_maker_plants(raw):
        out["vault@ev_maker"] = _contract(
            magnet_maker_plants(raw), "magnet", ev["contract_usd_per_kg"], start
        )
    metal_makers = _outside_china(raw, "metal_makers")
    if mm["contract_usd_per_kg"] > 0 and metal_makers:
        out["vault@magnet_maker"] = _contract(
            metal_makers, "metal", mm["contract_usd_per_kg"], start
        )
    if usa["vault_busd"] > 0:
        cands = [
            {
                "firm": f["id"],
                "capacity_t_per_yr": float(f.get("capacity_t_per_yr") or 0.0)
                or VAULT_DEFAULT_PROJECT_T_PER_YR,
                "capex_usd_per_t_per_yr": VAULT_CAPEX_USD_PER_T_PER_YR[role],
            }
            for role, table in VAULT_STAGE_TABLES.items()
            for f in sorted(raw.get(table, []), key=lambda f: f["id"])
            if f.get("region") != "china"
        ]
        if cands:
            out["vault"] = {
                "region": "usa",
                "start": start,
                "budget_usd": float(usa["vault_busd"]) * 1e9,
                "exclude_regions": ["china"],
                "candidates": cands,
            }
    if eu["subsidy_usd_per_kg"] > 0 and _has(raw, "magnet_plants", "eu"):
        out["subsidies"] = {
            "eu_magnets": {
                "region": "eu",
                "roles": ["magnet_plant"],
                "incentive_usd_per_kg": float(eu["subsidy_usd_per_kg"]),
                "budget_usd": EU_SUBSIDY_BUDGET_USD,
                "start": start,
            }
        }
    if eu["recycling"] > 0 and _has(raw, "recyclers", "eu"):
        out["recycling_targets"] = {
            "eu": {"start": start, "target_share": float(eu["recycling"]), "target_month": year_end}
        }
    return out


def tariff_specs(levers: dict[str, dict[str, float]], start: str, end: str) -> list[Any]:
    """The US tariff on Chinese magnets and metal for one turn (a government's tariff table)."""
    from sim.world import TariffSpec

    rate = float(levers["usa"]["tariff_pct"]) / 100.0
    if rate <= 0:
        return []
    return [
        TariffSpec(product=p, from_regions=["china"], rate=rate, start=start, end=end)
        for p in TARIFF_PRODUCTS
    ]


@dataclass(frozen=True)
class Investment:
    """Capacity a firm team adds this turn: firm ids, t/yr each and its cost (USD)."""

    role: str
    firms: tuple[tuple[str, float], ...]
    cost_usd: float


def investments(levers: dict[str, dict[str, float]], raw: dict[str, Any]) -> list[Investment]:
    """This turn's investments, split over the team's plants by their capacity.

    The EV maker co-invests in US magnet plants, the magnet maker in its own plants; each t/yr
    costs the magnet-plant capital cost assumed for the Vault
    (:data:`~sim.app.controls.VAULT_CAPEX_USD_PER_T_PER_YR`).
    """
    capex = VAULT_CAPEX_USD_PER_T_PER_YR["magnet_plant"]
    plants = {f["id"]: f for f in raw.get("magnet_plants", [])}
    out = []
    for role, ids in (
        ("ev_maker", [f["id"] for f in _region_firms(raw, "magnet_plants", "usa")]),
        ("magnet_maker", magnet_maker_plants(raw)),
    ):
        add = float(levers[role]["invest_t_per_yr"])
        if add <= 0 or not ids:
            continue
        caps = [float(plants[i].get("capacity_t_per_yr") or 1.0) for i in ids]
        split = tuple((i, add * c / sum(caps)) for i, c in zip(ids, caps, strict=True))
        out.append(Investment(role, split, add * capex))
    return out
