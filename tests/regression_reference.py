"""Reference data for the regression test (PyPSA-style stored results).

Regenerate after an intended behaviour change, and say why in the commit message::

    python -m tests.regression_reference
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

import sim

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT / "tests" / "data" / "classroom_seed11_2024_2026.parquet"


def reference_table() -> pd.DataFrame:
    """Annual totals/means of the classroom world, seed 11, 2024-2026."""
    res = sim.run(ROOT / "models" / "classroom.toml", seed=11, end="2026-12")
    ts = res.timeseries.copy()
    ts["year"] = ts["date"].dt.year
    mean_metrics = {"price_usd_per_kg", "inventory_t", "capacity_t_per_yr"}
    parts = []
    for how, sel in (
        ("mean", ts["metric"].isin(mean_metrics)),
        ("sum", ~ts["metric"].isin(mean_metrics)),
    ):
        g = ts[sel].groupby(["year", "metric", "product", "region", "sector"])["value"]
        parts.append(getattr(g, how)().reset_index())
    return (
        pd.concat(parts)
        .sort_values(["year", "metric", "product", "region", "sector"])
        .reset_index(drop=True)
    )


if __name__ == "__main__":
    REFERENCE.parent.mkdir(parents=True, exist_ok=True)
    reference_table().to_parquet(REFERENCE, index=False)
    print(f"wrote {REFERENCE}")
