"""The classroom web app in a real browser: Debian's chromium, headless, driven by Playwright.

Skipped when /usr/bin/chromium or the page's front-end files (fetched once with npm into
build/solara-cdn, see ``sim.app_cli.ensure_assets``) are unavailable. Screenshots go to
tests/screenshots/ (git-ignored).
"""

from __future__ import annotations

import os

import pytest

from tests.browser_helpers import CHROMIUM, CHROMIUM_ARGS, SCREENSHOTS, Server

pytestmark = pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"{CHROMIUM} not installed")

LOAD_TIMEOUT_MS = 60_000
STEP_TIMEOUT_MS = 20_000
FIGURES = ("network", "prices", "shortages", "production", "stockpiles")


@pytest.fixture(scope="module")
def server():
    from sim.app_cli import ensure_assets

    missing = ensure_assets()
    if missing:
        pytest.skip(f"front-end files not available offline: {missing}")
    srv = Server()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def page(server, browser):
    """A fresh page (own kernel, own model) with console errors and page errors collected."""
    ctx = browser.new_context(viewport={"width": 1600, "height": 1000})
    pg = ctx.new_page()
    errors: list[str] = []
    pg.on("console", lambda m: errors.append(f"console: {m.text}") if m.type == "error" else None)
    pg.on("pageerror", lambda e: errors.append(f"pageerror: {e}"))
    pg.on("requestfailed", lambda r: errors.append(f"request failed: {r.url}"))
    pg.goto(server.url)
    pg.wait_for_selector(".ndsim-status", timeout=LOAD_TIMEOUT_MS)
    wait_figures(pg)
    pg.errors = errors
    yield pg
    ctx.close()
    assert not errors, "\n".join(errors)


def wait_figures(pg) -> None:
    for name in FIGURES:
        pg.wait_for_selector(f".ndsim-fig-{name} img", timeout=LOAD_TIMEOUT_MS)


def figure_digest(pg, name: str) -> str:
    """SHA-256 of the PNG shown for figure ``name``."""
    return pg.locator(f".ndsim-fig-{name} img").evaluate(
        """async e => {
            const buf = await (await fetch(e.src)).arrayBuffer();
            const h = await crypto.subtle.digest('SHA-256', buf);
            return Array.from(new Uint8Array(h)).map(b => b.toString(16)).join('');
        }"""
    )


def status(pg) -> str:
    return pg.locator(".ndsim-status").inner_text()


def click_and_wait(pg, button: str, *, changes: str = ".ndsim-status") -> None:
    """Click a control button and wait until the element ``changes`` shows new text."""
    before = pg.locator(changes).inner_text()
    pg.get_by_role("button", name=button, exact=True).click()
    pg.wait_for_function(
        "([sel, old]) => document.querySelector(sel)?.innerText !== old",
        arg=[changes, before],
        timeout=STEP_TIMEOUT_MS,
    )
    wait_figures(pg)


def step(pg, n: int = 1) -> None:
    for _ in range(n):
        click_and_wait(pg, "Step")


def reset(pg) -> None:
    """Reset (rebuild the model from the controls) and wait for the fresh start."""
    if "nothing run yet" in status(pg):
        step(pg)  # so that the fresh start is visible as a change
    pg.get_by_role("button", name="Reset", exact=True).click()
    pg.wait_for_function(
        "() => document.querySelector('.ndsim-status')?.innerText.includes('nothing run yet')",
        timeout=STEP_TIMEOUT_MS,
    )
    wait_figures(pg)


def slider(pg, label: str):
    return pg.locator(".v-input", has_text=label).get_by_role("slider")


def set_slider(pg, label: str, key: str) -> None:
    """Move a slider with the keyboard (``End``: maximum, ``Home``: minimum, arrows)."""
    s = slider(pg, label)
    s.focus()
    s.press(key)
    pg.wait_for_timeout(300)  # let the value reach the server


def shot(pg, name: str, figures: bool = False) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    pg.screenshot(path=str(SCREENSHOTS / f"{name}.png"))
    for fig in FIGURES if figures else ():
        pg.locator(f".ndsim-fig-{fig}").screenshot(path=str(SCREENSHOTS / f"{name}_{fig}.png"))


def assert_no_app_error(pg) -> None:
    assert pg.locator(".ndsim-error").count() == 0, pg.locator(".ndsim-error").all_inner_texts()
    assert pg.get_by_text("error in step").count() == 0


def test_page_loads_with_network_and_charts(page):
    assert "nothing run yet" in status(page)
    for name in FIGURES:
        box = page.locator(f".ndsim-fig-{name} img").bounding_box()
        assert box and box["width"] > 300 and box["height"] > 200, name
    for word in ("Reset", "Step", "World", "Licences approved", "Stockpile", "Demand growth"):
        assert page.get_by_text(word).count() > 0, word
    step(page, 2)
    assert "magnets cost" in status(page)
    assert_no_app_error(page)
    shot(page, "page_loaded", figures=True)


def test_slider_then_step_changes_chart(page):
    before = figure_digest(page, "stockpiles")
    set_slider(page, "Stockpile (days of US use)", "End")
    assert slider(page, "Stockpile (days of US use)").get_attribute("aria-valuenow") == "180"
    reset(page)
    assert "stockpile 180 days" in page.locator(".ndsim-settings").inner_text()
    step(page, 3)
    after = figure_digest(page, "stockpiles")
    assert after != before
    assert_no_app_error(page)
    shot(page, "stockpile_180_days")


def test_extreme_controls_do_not_crash(page):
    page.get_by_text("China export controls on magnets").click()
    set_slider(page, "Licences approved", "Home")
    for label in ("Stockpile (days of US use)", "Vault fund", "Recycling by 2030", "Demand growth"):
        set_slider(page, label, "End")
    reset(page)
    text = page.locator(".ndsim-settings").inner_text()
    assert "export controls on (0% of licences approved)" in text, text
    assert "demand growth x3.0" in text, text
    # one click runs 100 months (Render Interval at its maximum): through 2025-04 and beyond
    set_slider(page, "Render Interval", "End")
    step(page, 1)
    assert_no_app_error(page)
    shot(page, "extreme_high", figures=True)
    set_slider(page, "Demand growth", "Home")
    set_slider(page, "Seed", "End")
    reset(page)
    assert "demand growth x0.0" in page.locator(".ndsim-settings").inner_text()
    step(page, 1)
    assert_no_app_error(page)
    shot(page, "extreme_low")
