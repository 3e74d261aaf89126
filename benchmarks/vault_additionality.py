"""Vault additionality over seeds (experiments/project_vault.toml). Not a test: it reports.

Usage::

    python benchmarks/vault_additionality.py   # 8 seeds -> benchmarks/results/vault.md
    python benchmarks/vault_additionality.py --seeds 2

Per seed, the fund's own account (money drawn, gap loans, floor payments, losses, budget left,
capacity that exists only because of the fund) and the counterfactual: non-Chinese oxide +
metal + magnet capacity at the end with the fund minus without it (same seed).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sim.scenarios import _Lookup, domestic, load_experiment, run_experiment  # noqa: E402

METRICS = {
    "vault_disbursed_usd": "drawn (tranches + loans), USD",
    "vault_loans_usd": "gap loans, USD",
    "price_floor_paid_usd": "floor payments, USD",
    "vault_lost_usd": "lost on failed projects, USD",
    "vault_budget_left_usd": "budget left, USD",
    "vault_additional_capacity_t_per_yr": "additional capacity (own account), t/yr",
    "vault_nonadditional_capacity_t_per_yr": "non-additional capacity, t/yr",
}


def last(res, metric: str) -> float:
    ts = res.timeseries
    sel = ts[ts["metric"] == metric]
    return float(sel[sel["date"] == sel["date"].max()]["value"].sum()) if len(sel) else 0.0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=8)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "vault.md"))
    args = ap.parse_args()
    exp = load_experiment(ROOT / "experiments" / "project_vault.toml")
    rows = []
    for seed in range(args.seeds):
        res = run_experiment(exp, seed=seed)
        fund = res["controls_vault"]
        row = {"seed": seed, **{m: last(fund, m) for m in METRICS}}
        cap = {
            name: sum(
                float(_Lookup(r).ex("capacity_t_per_yr", p, domestic(r)).iloc[-1])
                for p in ("oxide", "metal", "magnet")
            )
            for name, r in res.items()
        }
        row["counterfactual_capacity_t_per_yr"] = cap["controls_vault"] - cap["controls"]
        rows.append(row)
        print(f"seed {seed}: {row}", file=sys.stderr)
    df = pd.DataFrame(rows)
    end = exp.end or "world end"
    lines = [
        "# Vault additionality (experiments/project_vault.toml)",
        "",
        f"Command: `python benchmarks/vault_additionality.py --seeds {args.seeds}`; values at "
        f"the last month ({end}), scenario `controls_vault`; counterfactual = non-Chinese "
        "oxide + metal + magnet capacity with the fund minus `controls` (same seed).",
        "",
        "| quantity | mean | min | max |",
        "|---|---|---|---|",
    ]
    labels = {**METRICS, "counterfactual_capacity_t_per_yr": "counterfactual capacity, t/yr"}
    for col, label in labels.items():
        v = df[col].to_numpy()
        lines.append(f"| {label} | {np.mean(v):,.4g} | {np.min(v):,.4g} | {np.max(v):,.4g} |")
    Path(args.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
