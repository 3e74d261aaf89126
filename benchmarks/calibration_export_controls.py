"""Seed-averaged check of the 2025 export-control episode against the customs data.

Prints the calibration table of docs/policies.md (the ``export-controls-2025`` block that
``make docs`` writes) for any number of seeds, e.g. to see whether 8 seeds are enough:

    python benchmarks/calibration_export_controls.py --seeds 32
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sim.docgen import export_controls_2025  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, default=None, help="default: the experiment's seeds")
    args = ap.parse_args()
    print(export_controls_2025(args.seeds))


if __name__ == "__main__":
    main()
