"""The lesson's answers, from code: ``python -m sim.app.lesson [--write]``.

Runs each exercise of docs/classroom.md on the classroom world (seed 0) with the page's own
levers (:mod:`sim.app.live`) and writes the answers between ``<!-- lesson:NAME -->`` and
``<!-- /lesson:NAME -->`` markers. ``tests/test_app_lesson.py`` checks that the file matches,
so the numbers cannot go stale when the economics change: re-run with ``--write``.
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import replace
from pathlib import Path

from sim.app.controls import PRESETS, ROOT, Controls
from sim.app.live import LiveRun, month_words
from sim.calendar import parse_month

DOC = ROOT / "docs" / "classroom.md"
BLOCK = re.compile(r"(<!-- lesson:(\w+) -->\n)(.*?)(<!-- /lesson:\2 -->)", re.S)


def _run_to(c: Controls, last: str) -> LiveRun:
    r = LiveRun(c)
    r.step(parse_month(last) - r.model.start_abs + 1)
    return r


def _between(r: LiveRun, g: str, first: str, last: str) -> float:
    s = r.series()
    sel = (s.months >= parse_month(first)) & (s.months <= parse_month(last))
    return float(s.shortage[g][sel].sum()) if g in s.shortage else 0.0


def exercise1() -> str:
    """Export controls: who runs short first, and the price gap."""
    c = PRESETS["Exercise 1: export controls"].controls
    r = _run_to(c, "2027-12")
    s = r.series()
    k0 = int(parse_month("2025-03") - s.months[0])
    gap = s.price_world - s.price_china
    k1 = int(gap[k0:].argmax()) + k0
    first = {}
    for g, y in s.shortage.items():
        hit = (y > 1.0).nonzero()[0]
        if hit.size:
            first[g] = int(s.months[hit[0]])
    order = sorted(first, key=lambda g: (first[g], g))
    low = _run_to(replace(c, approval_rate=0.2), "2027-12")
    lines = [
        f"* Outside-China magnet price in March 2025: {s.price_world[k0]:.0f} USD/kg; largest "
        f"gap over China's price: {gap[k1]:.0f} USD/kg in {month_words(int(s.months[k1]))} "
        f"({s.price_world[k1]:.0f} vs {s.price_china[k1]:.0f} USD/kg).",
        "* First month with a shortage above 1 t: "
        + (", ".join(f"{g.upper()} {month_words(first[g])}" for g in order) if order else "none")
        + f"; China: {'none' if 'china' not in first else month_words(first['china'])}.",
        f"* US shortage 2025-2027: {_between(r, 'usa', '2025-01', '2027-12'):,.0f} t at "
        f"approval 0.5, {_between(low, 'usa', '2025-01', '2027-12'):,.0f} t at approval 0.2; "
        f"EU: {_between(r, 'eu', '2025-01', '2027-12'):,.0f} t and "
        f"{_between(low, 'eu', '2025-01', '2027-12'):,.0f} t.",
    ]
    return "\n".join(lines) + "\n"


def exercise2() -> str:
    """Stockpile days against US shortage, stock held and money spent."""
    base = PRESETS["Exercise 2: stockpile"].controls
    rows = [
        "| stockpile | US shortage 2025-27 | most stock held | spent by end 2027 |",
        "| --- | --- | --- | --- |",
    ]
    for days in (0, 30, 60, 90, 180):
        r = _run_to(replace(base, stockpile_days=days), "2027-12")
        s = r.series()
        held = float(s.stockpile["usa"].max()) if "usa" in s.stockpile else 0.0
        spent = float(s.money["usa"][-1]) if "usa" in s.money else 0.0
        rows.append(
            f"| {days or 'none'}{' days' if days else ''} | "
            f"{_between(r, 'usa', '2025-01', '2027-12'):,.0f} t | {held:,.0f} t | "
            f"{spent / 1e6:,.0f} M USD |"
        )
    return "\n".join(rows) + "\n"


def exercise3() -> str:
    """Vault fund: when the financed capacity arrives, and what failed."""
    c = PRESETS["Exercise 3: Vault fund"].controls
    r = _run_to(c, "2029-12")
    cap = [e for e in r.events if e.kind == "capacity" and e.month_abs >= r.model.start_abs + 1]
    vault = [
        (m, firm, ev)
        for ins in r.model.policies.instruments
        for (m, firm, ev, _usd) in getattr(ins, "log", [])
        if getattr(ins, "name", "") == "vault"
    ]
    online = sorted({m for m, _, ev in vault if ev == "commissioning"})
    failed = [(m, f, ev) for m, f, ev in vault if ev.startswith("failed")]
    t = r.totals().get("usa", {})
    lines = [
        "* Financed capacity comes online: "
        + (", ".join(month_words(m) for m in online) if online else "not before 2030")
        + f" (money committed from {month_words(r.model.start_abs)}).",
        f"* Projects failed at a milestone: {len(failed)}"
        + (
            " (" + "; ".join(f"{f} {ev} in {month_words(m)}" for m, f, ev in failed) + ")"
            if failed
            else ""
        )
        + f"; money lost by 2029: {t.get('vault_lost_usd', 0.0) / 1e6:,.0f} M USD of "
        f"{t.get('money_usd', 0.0) / 1e6:,.0f} M USD paid out.",
        f"* Capacity events on the page by 2029: {len(cap)}.",
    ]
    return "\n".join(lines) + "\n"


ANSWERS = {"exercise1": exercise1, "exercise2": exercise2, "exercise3": exercise3}


def render(text: str) -> str:
    """``text`` with every marked block replaced by freshly computed answers."""

    def sub(m: re.Match) -> str:
        name = m.group(2)
        if name not in ANSWERS:
            raise KeyError(f"{DOC}: unknown lesson block {name!r}")
        return m.group(1) + ANSWERS[name]() + m.group(4)

    return BLOCK.sub(sub, text)


def main(argv: list[str] | None = None) -> int:
    """Print the answers, or ``--write`` them into docs/classroom.md."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--write", action="store_true", help=f"rewrite {DOC}")
    args = ap.parse_args(argv)
    text = DOC.read_text()
    new = render(text)
    if args.write:
        tmp = Path(str(DOC) + ".tmp")
        tmp.write_text(new)
        tmp.replace(DOC)
        print(f"wrote {DOC}", file=sys.stderr)
    else:
        for name, fn in ANSWERS.items():
            print(f"## {name}\n{fn()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
