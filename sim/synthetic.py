"""Synthetic worlds of any size (benchmarks, property tests), generated from a seeded Generator.

A synthetic world keeps the baseline's stage proportions and balance: each stage's capacity
exceeds what the stage below needs by a margin, so that a run stays near equilibrium.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from sim.world import SECTORS

REGIONS = ("china", "usa", "eu", "japan", "korea", "australia", "row")
# share of agents per role
MIX = {
    "mine": 0.04,
    "separator": 0.05,
    "metal_maker": 0.05,
    "magnet_plant": 0.12,
    "recycler": 0.04,
    "oem": 0.70,
}


def synthetic_world(
    n_agents: int,
    seed: int = 0,
    *,
    suppliers_per_buyer: int = 3,
    months: int = 24,
    slack: float = 1.3,
) -> dict[str, Any]:
    """A raw world dict with about ``n_agents`` trading agents.

    Args:
        n_agents: Approximate number of trading agents (at least one per role).
        seed: Seed of the generator that draws sizes and regions.
        suppliers_per_buyer: Links per buyer (0: every seller; keep small for big worlds).
        months: Simulated months from 2024-01.
        slack: Capacity of each stage relative to the need of the stage below.
    """
    rng = np.random.default_rng(seed)
    counts = {r: max(1, int(round(n_agents * s))) for r, s in MIX.items()}
    oem_demand = rng.lognormal(np.log(2000.0), 0.8, counts["oem"])
    total_magnets = float(oem_demand.sum())
    need = {
        "magnet_plant": total_magnets,
        "metal_maker": total_magnets * 0.36,
        "recycler": total_magnets * 0.10 / 0.93 * 0.9,
    }
    need["separator"] = need["metal_maker"] * 1.19
    need["mine"] = need["separator"] / (0.2 * 0.93)

    def split(total: float, k: int) -> np.ndarray:
        w = rng.lognormal(0.0, 0.7, k)
        return total * slack * w / w.sum()

    def region() -> str:
        return str(REGIONS[min(int(rng.exponential(1.5)), len(REGIONS) - 1)])

    world: dict[str, Any] = {
        "meta": {"name": f"synthetic_{n_agents}", "description": "generated"},
        "calendar": {
            "start": "2024-01",
            "end": f"{2024 + (months - 1) // 12}-{(months - 1) % 12 + 1:02d}",
            "spinup_months": 12,
        },
        "market": {
            "initial_price_usd_per_kg": {
                "concentrate": 4.5,
                "oxide": 56.0,
                "metal": 70.0,
                "magnet": 49.0,
                "scrap": 44.0,
            }
        },
        "network": {"suppliers_per_buyer": suppliers_per_buyer},
        "sectors": {
            s: {
                "growth": [[2024, float(rng.uniform(0.0, 0.08))]],
                "lifetime_years": float(rng.uniform(5, 20)),
            }
            for s in SECTORS
        },
    }
    cost = {
        "mine": 3.0,
        "separator": 24.0,
        "metal_maker": 3.0,
        "magnet_plant": 18.0,
        "recycler": 10.0,
    }
    tables = {
        "mine": "mines",
        "separator": "separators",
        "metal_maker": "metal_makers",
        "magnet_plant": "magnet_plants",
        "recycler": "recyclers",
    }
    for role, table in tables.items():
        caps = split(need[role], counts[role])
        rows = []
        for k, cap in enumerate(caps):
            row: dict[str, Any] = {
                "id": f"{role}_{k}",
                "region": region(),
                "capacity_t_per_yr": float(cap),
                "unit_cost_usd_per_kg": float(cost[role] * rng.uniform(0.85, 1.15)),
            }
            if role == "mine":
                row["ndpr_share"] = float(rng.uniform(0.15, 0.25))
            if role == "metal_maker":
                row["input_t_per_t"] = 1.19
            if role == "magnet_plant":
                row["input_t_per_t"] = 0.38
                row["scrap_t_per_t"] = 0.10
            if role == "recycler":
                row["collection_rate"] = float(rng.uniform(0.0, 0.05))
            rows.append(row)
        world[table] = rows
    world["oems"] = [
        {
            "id": f"oem_{k}",
            "region": region(),
            "sector": str(SECTORS[int(rng.integers(0, 5))]),
            "demand_t_per_yr": float(d),
        }
        for k, d in enumerate(oem_demand)
    ]
    return world
