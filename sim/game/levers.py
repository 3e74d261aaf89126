"""Game roles, their levers and how the levers become world ``[policies]`` tables.

Every lever acts through an existing policy instrument (export controls, production quotas,
stockpiles, the Vault fund, recycling targets); a role's levers write only that role's tables.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sim.app.controls import (
    STOCKPILE_BUDGET_USD,
    VAULT_CAPEX_USD_PER_T_PER_YR,
    VAULT_DEFAULT_PROJECT_T_PER_YR,
    VAULT_STAGE_TABLES,
)

PRIVATE_STOCK_BUDGET_USD = 5e8


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
            ),
            "Avoid US magnet shortage; money spent counts against you",
        ),
        Role(
            "eu",
            "European Union",
            (
                Lever("stockpile_days", "Magnet stockpile (days of EU use)", 0, 180, 15, 0),
                Lever(
                    "recycling",
                    "Recycling collection by the end of next year (share)",
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
            (Lever("stock_days", "Own magnet stock (days of US use)", 0, 120, 15, 0),),
            "Keep your cars built: avoid US magnet shortage at low stock cost",
        ),
        Role(
            "magnet_maker",
            "Magnet maker outside China",
            (Lever("metal_stock_days", "Own metal stock (days of use)", 0, 120, 15, 0),),
            "Make magnets: your plants' output",
        ),
    )
}


def neutral_levers() -> dict[str, dict[str, float]]:
    """Every lever at its "no decision" value."""
    return {r: {lv.key: lv.neutral for lv in role.levers} for r, role in ROLES.items()}


def clamp(role: str, key: str, value: float) -> float:
    """The value within the lever's range; KeyError for an unknown role or lever."""
    lv = next(x for x in ROLES[role].levers if x.key == key) if role in ROLES else None
    if lv is None:
        raise KeyError(key)
    return float(min(max(float(value), lv.lo), lv.hi))


def _region_firms(raw: dict[str, Any], table: str, region: str) -> list[dict[str, Any]]:
    return sorted(
        [f for f in raw.get(table, []) if f.get("region") == region], key=lambda f: f["id"]
    )


def _has(raw: dict[str, Any], table: str, region: str) -> bool:
    return bool(_region_firms(raw, table, region))


def policy_tables(
    levers: dict[str, dict[str, float]], raw: dict[str, Any], start: str, year_end: str
) -> dict[str, Any]:
    """All teams' levers as ``[policies]`` tables in force from ``start`` (``YYYY-MM``)."""
    out: dict[str, Any] = {}
    china, usa, eu = levers["china"], levers["usa"], levers["eu"]
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
    if levers["ev_maker"]["stock_days"] > 0:
        stock["ev_maker"] = {
            "region": "usa",
            "product": "magnet",
            "budget_usd": PRIVATE_STOCK_BUDGET_USD,
            "target_days": float(levers["ev_maker"]["stock_days"]),
            "build_months": 6.0,
            "start": start,
        }
    if levers["magnet_maker"]["metal_stock_days"] > 0:
        region = "eu" if _has(raw, "magnet_plants", "eu") else "usa"
        stock["magnet_maker"] = {
            "region": region,
            "product": "metal",
            "budget_usd": PRIVATE_STOCK_BUDGET_USD,
            "target_days": float(levers["magnet_maker"]["metal_stock_days"]),
            "build_months": 6.0,
            "start": start,
        }
    if stock:
        out["stockpiles"] = stock
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
    if eu["recycling"] > 0 and _has(raw, "recyclers", "eu"):
        out["recycling_targets"] = {
            "eu": {"start": start, "target_share": float(eu["recycling"]), "target_month": year_end}
        }
    return out
