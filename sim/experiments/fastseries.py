"""Only the tidy time-series blocks a sweep needs, straight from the model's recorder.

``sim.results.build_results`` builds every metric plus the flows and agents tables; a sweep
usually needs two or three metrics. For the metrics below this builds the same rows (same
labels, values, dtypes and order: ``tests/test_sweep_fastseries.py`` checks it against
``build_results``) and skips the rest; for any other metric the worker falls back to
``build_results``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from sim.calendar import month_starts
from sim.network import ROLES
from sim.results import TS_COLUMNS, group_sum, product_region_block, tidy_block
from sim.world import PRODUCTS, SECTORS

if TYPE_CHECKING:
    from sim.model import SupplyChainModel

FAST_METRICS = frozenset(
    {
        "price_usd_per_kg",
        "production_t",
        "consumption_t",
        "capacity_t_per_yr",
        "demand_t",
        "shortage_t",
    }
)


def fast_timeseries(model: SupplyChainModel, metrics: set[str]) -> pd.DataFrame | None:
    """The tidy rows of ``metrics`` (None if one of them has no fast path)."""
    if not metrics or not set(metrics) <= FAST_METRICS:
        return None
    rec = model.recorder
    T = rec.t
    dates = month_starts(model.start_abs, T)
    nodes, s = model.nodes, model.state
    regions = list(nodes.regions)
    blocks: list[pd.DataFrame] = []

    def by_prod_region(values: np.ndarray, prod: np.ndarray, metric: str) -> None:
        blocks.append(product_region_block(dates, metric, values[:T], prod, nodes.region, regions))

    if "price_usd_per_kg" in metrics:
        prices = np.concatenate([rec.price_china[:T], rec.price_world[:T]], axis=1)
        labels = [(p, "china", "") for p in PRODUCTS] + [(p, "world", "") for p in PRODUCTS]
        blocks.append(tidy_block(dates, "price_usd_per_kg", labels, prices))
    if "production_t" in metrics:
        by_prod_region(rec.produced, s.out_product, "production_t")
        mask = (nodes.role == ROLES.index("magnet_plant")) | (nodes.role == ROLES.index("recycler"))
        by_prod_region(
            rec.swarf + rec.collected, np.where(mask, PRODUCTS.index("scrap"), -1), "production_t"
        )
    if "consumption_t" in metrics:
        by_prod_region(rec.consumed, s.in_product, "consumption_t")
    if "capacity_t_per_yr" in metrics:
        firms = model.idx["firm"]
        fprod = np.full(nodes.n, -1)
        fprod[firms] = s.out_product[firms]
        by_prod_region(rec.cap, fprod, "capacity_t_per_yr")
    if metrics & {"demand_t", "shortage_t"}:
        oem = model.idx["oem"]
        S = len(SECTORS)
        key = nodes.region[oem] * S + s.sector[oem]
        present = np.unique(key)
        remap = np.searchsorted(present, key)
        labels = [("magnet", regions[k // S], SECTORS[k % S]) for k in present]
        for metric, arr in (("demand_t", rec.demand), ("shortage_t", rec.shortage)):
            if metric in metrics:
                blocks.append(
                    tidy_block(dates, metric, labels, group_sum(arr[:T, oem], remap, present.size))
                )
    ts = pd.concat(blocks, ignore_index=True)[TS_COLUMNS]
    for col in ("metric", "product", "region", "sector"):
        ts[col] = ts[col].astype(str)
    ts["value"] = ts["value"].astype("float64")
    ts = ts.sort_values(["metric", "product", "region", "sector", "date"], kind="stable")
    return ts.reset_index(drop=True)
