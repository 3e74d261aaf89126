"""Instructions the baseline simulation executes (valgrind callgrind): a speed figure that does
not depend on what else the machine is running. Not a test: it reports a number.

Usage::

    python benchmarks/bench_instructions.py          # needs valgrind (apt-get install valgrind)
                                                     # writes benchmarks/results/instructions.md

Builds the baseline world's model (seed 0, spin-up included) outside the count, then counts the
instructions of ``model.run()`` (2024-01..2040-12, recording on, as ``bench_core.py`` times it).
On a shared machine wall time varies by a factor of two from minute to minute; the count moves by
about 1 %, so it shows whether a change made the simulation do less work. A minute or two.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import subprocess
import sys
import time
from importlib.metadata import version
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHILD = "NDSIM_BENCH_INSTRUCTIONS_CHILD"


def count_in_child() -> None:
    """Inside valgrind: build the model, then count only ``model.run()``."""
    sys.path.insert(0, str(ROOT))
    from sim.model import SupplyChainModel
    from sim.world import load_world

    world, _ = load_world(ROOT / "models" / "baseline_2024.toml")
    model = SupplyChainModel(world, rng=0)
    toggle = ["callgrind_control", "-i"]
    subprocess.run([*toggle, "on", str(os.getpid())], check=True, capture_output=True)
    model.run()
    subprocess.run([*toggle, "off", str(os.getpid())], check=True, capture_output=True)


def main() -> None:
    if os.environ.get(CHILD):
        count_in_child()
        return
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "instructions.md"))
    args = ap.parse_args()
    cmd = [
        "valgrind",
        "--tool=callgrind",
        "--instr-atstart=no",
        "--callgrind-out-file=/dev/null",
        sys.executable,
        __file__,
    ]
    try:
        out = subprocess.run(
            cmd, env={**os.environ, CHILD: "1"}, capture_output=True, text=True, check=True
        )
    except FileNotFoundError:
        sys.exit("bench_instructions: valgrind not found (apt-get install valgrind)")
    found = re.search(r"Collected : (\d+)", out.stderr)
    if found is None:
        sys.exit(f"bench_instructions: no count in valgrind's output:\n{out.stderr[-2000:]}")
    millions = int(found.group(1)) / 1e6
    line = f"baseline simulation (seed 0, 204 months): {millions:,.0f} M instructions"
    Path(args.out).write_text(
        "# Instructions of the baseline simulation\n\n"
        "Command: `python benchmarks/bench_instructions.py`  \n"
        f"Python {platform.python_version()}, numpy {version('numpy')}, "
        f"{time.strftime('%Y-%m-%d')}\n\n"
        f"{line}\n\n"
        "Counted by valgrind (callgrind) over `model.run()` only; unlike wall time it hardly "
        "depends on what else the machine runs.\n"
    )
    print(line)


if __name__ == "__main__":
    main()
