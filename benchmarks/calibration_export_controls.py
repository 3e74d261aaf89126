"""Seed-averaged check of the 2025 export-control episode (docs/policies.md table).

Licence draws make single runs noisy; this runs experiments/export_controls_2025.toml for
several seeds and prints the mean (and range) of the figures compared with the customs data.

    python benchmarks/calibration_export_controls.py --seeds 12
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sim.scenarios import domestic_exports, load_experiment, run_experiment  # noqa: E402


def exports(res, month: str, to: str | None = None) -> float:
    return float(domestic_exports(res, "magnet", to).get(pd.Timestamp(month), 0.0))


def figures(res) -> dict[str, float]:
    ts = res.timeseries
    p = ts[
        (ts["metric"] == "price_usd_per_kg")
        & (ts["product"] == "magnet")
        & (ts["date"] == "2025-05-01")
    ].set_index("region")["value"]
    window = (ts["date"] >= "2025-04-01") & (ts["date"] < "2026-06-01")
    dem = ts[window & (ts["metric"] == "demand_t")].groupby("region")["value"].sum()
    short = ts[window & (ts["metric"] == "shortage_t")].groupby("region")["value"].sum()
    out = {
        "May y/y": exports(res, "2025-05-01") / exports(res, "2024-05-01") - 1,
        "May y/y to US": exports(res, "2025-05-01", "usa") / exports(res, "2024-05-01", "usa") - 1,
        "June y/y": exports(res, "2025-06-01") / exports(res, "2024-06-01") - 1,
        "ex-China premium, May": p["ex_china"] / p["china"] - 1,
    }
    for region in ("eu", "usa", "japan"):
        out[f"shortage share {region}"] = float(short.get(region, 0.0) / dem[region])
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=12)
    args = ap.parse_args()
    exp = load_experiment(ROOT / "experiments" / "export_controls_2025.toml")
    rows: dict[str, list[dict[str, float]]] = {}
    for seed in range(args.seeds):
        for name, res in run_experiment(exp, seed=seed).items():
            rows.setdefault(name, []).append(figures(res))
    for name, items in rows.items():
        print(f"\n{name} ({args.seeds} seeds): mean [min, max]")
        for key in items[0]:
            v = np.array([r[key] for r in items])
            print(f"  {key:26s} {v.mean():+7.1%}  [{v.min():+.1%}, {v.max():+.1%}]")


if __name__ == "__main__":
    main()
