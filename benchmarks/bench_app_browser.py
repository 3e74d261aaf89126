"""Classroom page speed in a real browser (Debian chromium, 1280x720), both worlds.

Measures, per world, the time from a click on "+1 month" until the status line changed and the
browser painted (median of 10), and the time Play needs for one simulated year.
Issue 11's targets: 0.3 s a month, 3 s a year of Play.
Run: .venv/bin/python benchmarks/bench_app_browser.py
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.browser_helpers import CHROMIUM, CHROMIUM_ARGS, Server  # noqa: E402
from tests.test_app_browser import VIEW, choose, click, status  # noqa: E402


def measure(pg, world: str) -> tuple[float, float]:
    if world != "classroom":
        choose(pg, "World", world)
    times = [click(pg, "+1 month") for _ in range(10)]
    month, year = status(pg).split(":")[0].split()
    t0 = time.perf_counter()
    pg.get_by_role("button", name="Play", exact=True).click()
    pg.wait_for_function(
        "t => document.querySelector('.ndsim-status').innerText.startsWith(t)",
        arg=f"{month} {int(year) + 1}",
        timeout=60_000,
    )
    year_s = time.perf_counter() - t0
    pg.get_by_role("button", name="Pause", exact=True).click()
    return statistics.median(times), year_s


def main() -> None:
    from playwright.sync_api import sync_playwright

    srv = Server()
    try:
        with sync_playwright() as p:
            b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            for world in ("classroom", "baseline"):
                pg = b.new_page(viewport=VIEW)
                pg.goto(srv.url)
                pg.wait_for_selector(".ndsim-fig-network canvas", timeout=60_000)
                month_s, year_s = measure(pg, world)
                print(f"{world}: +1 month median {month_s:.3f} s; one year of Play {year_s:.2f} s")
                pg.close()
            b.close()
    finally:
        srv.stop()


if __name__ == "__main__":
    main()
