# ruff: noqa: E501  (JavaScript snippets evaluated in the browser)
"""The classroom page and the game in a real browser: Debian's chromium, headless, Playwright.

Skipped when /usr/bin/chromium or the page's front-end files are unavailable. Screenshots at
1280x720 go to tests/screenshots/ (git-ignored).
"""

from __future__ import annotations

import os
import time

import pytest

from tests.browser_helpers import CHROMIUM, CHROMIUM_ARGS, SCREENSHOTS, Server

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"{CHROMIUM} not installed"),
]
LOAD_MS = 60_000
VIEW = {"width": 1280, "height": 720}


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
    ctx = browser.new_context(viewport=VIEW)
    pg = ctx.new_page()
    errors: list[str] = []
    pg.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.goto(server.url)
    pg.wait_for_selector(".ndsim-fig-network canvas", timeout=LOAD_MS)
    yield pg
    ctx.close()
    assert not errors, errors


def status(pg) -> str:
    return pg.locator(".ndsim-status").inner_text()


def click(pg, name: str) -> float:
    """Click a button; seconds until the status line changed and the browser painted."""
    before = status(pg)
    t0 = time.perf_counter()
    pg.get_by_role("button", name=name, exact=True).click()
    pg.wait_for_function("o => document.querySelector('.ndsim-status').innerText !== o", arg=before)
    pg.evaluate("() => new Promise(r => requestAnimationFrame(() => r()))")
    return time.perf_counter() - t0


def choose(pg, label: str, option: str) -> None:
    pg.locator(".v-select", has_text=label).click()
    pg.get_by_role("option", name=option).click()
    pg.wait_for_function(
        "() => document.querySelector('.ndsim-status').innerText.includes('nothing run yet')"
    )
    pg.wait_for_timeout(300)


def charts_geometry(pg) -> list[dict]:
    """Per chart: its box, the plot rectangles and legend boxes (page px), smallest font."""
    return pg.evaluate(
        """() => [...document.querySelectorAll('.ndsim-figure')].map(fig => {
            const el = fig.querySelector('.solara-echarts');
            const all = [el, ...fig.querySelectorAll('*')]; let c = null;
            for (let e = el; e && !c; e = e.parentElement) if (e.__vue__ && e.__vue__.chart) c = e.__vue__.chart;
            for (const e of all) if (!c && e.__vue__ && e.__vue__.chart) c = e.__vue__.chart;
            if (!c && window.requirejs) {
                const ctx = window.requirejs.s.contexts._.defined;
                for (const m of Object.values(ctx)) if (!c && m && m.getInstanceByDom) c = m.getInstanceByDom(el);
            }
            if (!c && window.echarts) c = window.echarts.getInstanceByDom(el);
            if (!c) return {name: fig.className, top: el.getBoundingClientRect().top, bottom: el.getBoundingClientRect().bottom, grids: [], legends: [], minFont: -1};
            const box = el.getBoundingClientRect(); const o = c.getOption();
            const grids = (c.getModel().getComponent('grid') ? o.grid : []).map((g, i) =>
                c.getModel().getComponent('grid', i).coordinateSystem.getRect());
            const legends = [];
            c.getModel().eachComponent('legend', m => {
                if (m.get('show') === false) return;
                const v = c.getViewOfComponentModel(m); if (!v) return;
                const r = v.group.getBoundingRect(); const t = v.group.transform || [1,0,0,1,0,0];
                if (r.width > 0) legends.push({x: r.x + t[4], y: r.y + t[5], width: r.width, height: r.height});
            });
            const sizes = [];
            const walk = x => { if (Array.isArray(x)) x.forEach(walk); else if (x && typeof x === 'object')
                for (const [k, v] of Object.entries(x)) { if (k === 'fontSize') sizes.push(v); else walk(v); } };
            const shown = [o.title.map(t => t.textStyle), o.xAxis && o.xAxis.map(a => a.axisLabel), o.yAxis && o.yAxis.map(a => a.axisLabel),
                           o.legend && o.legend.filter(l => l.show !== false).map(l => l.textStyle),
                           o.series.filter(x => x.type === 'graph').map(x => x.data.map(d => d.label))];
            walk(shown);
            return {name: fig.className, top: box.top, bottom: box.bottom, grids, legends,
                    minFont: Math.min(...sizes)};
        })"""
    )


def overlap(a: dict, b: dict) -> bool:
    return not (
        a["x"] + a["width"] <= b["x"]
        or b["x"] + b["width"] <= a["x"]
        or a["y"] + a["height"] <= b["y"]
        or b["y"] + b["height"] <= a["y"]
    )


def shot(pg, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    pg.screenshot(path=str(SCREENSHOTS / f"{name}.png"))


@pytest.mark.parametrize(
    "preset,years,name",
    [
        ("Exercise 1: export controls", 2, "exercise1_2026"),
        ("Exercise 2: stockpile", 3, "exercise2_2027"),
        ("Exercise 3: Vault fund", 4, "exercise3_2028"),
    ],
)
def test_projector_layout_per_exercise(page, preset, years, name):
    choose(page, "Scenario", preset)
    for _ in range(years):
        click(page, "+1 year")
    geo = charts_geometry(page)
    top = geo[:3]  # network + the exercise's two charts
    assert [g["name"].split()[-1] for g in top][0] == "ndsim-fig-network"
    for g in top:
        assert g["bottom"] <= VIEW["height"], g["name"]  # above the fold
    for g in geo:
        assert g["minFont"] >= 16, g["name"]
        for leg in g["legends"]:
            for rect in g["grids"]:
                assert not overlap(leg, rect), (g["name"], leg, rect)
    assert page.get_by_text("runs on Solara").count() == 0
    for clutter in ("Render Interval", "Use Threads", "Play Interval", "Reset"):
        assert page.get_by_text(clutter, exact=True).count() == 0
    shot(page, name)


def test_live_lever_acts_next_month(page):
    click(page, "+1 year")
    click(page, "+1 year")
    page.get_by_text("China licenses magnet exports").click()
    page.wait_for_selector(".ndsim-pending")
    click(page, "+1 month")
    assert "January 2026: China's export licensing starts" in status(page)  # acted next month
    assert page.locator(".ndsim-pending").count() == 0


# ---------------------------------------------------------------------------------- game
@pytest.fixture(scope="module")
def game_server():
    srv = Server(game=True, ready_timeout=60)
    try:
        yield srv
    finally:
        srv.stop()


def test_three_teams_play_three_years(game_server, browser):
    url = game_server.url
    ctxs = [browser.new_context(viewport=VIEW) for _ in range(4)]
    teacher, *teams = [c.new_page() for c in ctxs]
    try:
        teacher.goto(url)
        teacher.get_by_role("button", name="New game").click()
        code = teacher.locator("#code").inner_text()
        for pg, role in zip(teams, ("china", "usa", "eu"), strict=True):
            pg.goto(url)
            pg.fill("#jcode", code)
            pg.select_option("#jrole", role)
            pg.fill("#jname", f"team {role}")
            pg.get_by_role("button", name="Join").click()
            pg.wait_for_selector("#you")
        china, usa, eu = teams
        # the US team tries China's lever with its own token: refused by the server
        status_code = usa.evaluate(
            """async code => {
                const me = JSON.parse(localStorage.getItem('ndsim-game-' + code));
                const r = await fetch(`/api/games/${code}/lever`, {method: 'POST',
                  headers: {'Content-Type': 'application/json'},
                  body: JSON.stringify({token: me.token, role: 'china', key: 'approval', value: 0})});
                return r.status; }""",
            code,
        )
        assert status_code == 403
        assert usa.locator("#lever-china-approval").count() == 0
        china.locator("#lever-china-approval").fill("0.2")
        china.locator("#lever-china-approval").dispatch_event("change")
        china.wait_for_function(
            "() => document.querySelector('#v-china-approval').innerText === '0.2'"
        )
        usa.locator("#lever-usa-stockpile_days").fill("90")
        usa.locator("#lever-usa-stockpile_days").dispatch_event("change")
        usa.wait_for_function(
            "() => document.querySelector('#v-usa-stockpile_days').innerText === '90'"
        )
        eu.reload()  # a refreshed browser rejoins its team
        eu.wait_for_selector("#you")
        assert eu.locator("#you").inner_text() == "European Union"
        for year in (2024, 2025, 2026):
            teacher.get_by_role("button", name=f"Play year {year}").click()
            teacher.wait_for_function(
                "y => document.querySelector('#year')?.innerText.includes(y)", arg=str(year + 1)
            )
        eu.reload()
        eu.wait_for_function("() => document.querySelector('#year').innerText.includes('2027')")
        teacher.get_by_role("button", name="Undo last year").click()
        teacher.wait_for_function(
            "() => document.querySelector('#year').innerText.includes('2026')"
        )
        teacher.get_by_role("button", name="Play year 2026").click()
        teacher.wait_for_function(
            "() => document.querySelector('#year').innerText.includes('2027')"
        )
        teacher.get_by_role("button", name="Debrief").click()
        teacher.wait_for_selector("text=What each year's decisions did")
        text = teacher.inner_text("body")
        assert "china.approval: 1 → 0.2" in text and "usa.stockpile_days: 0 → 90" in text
        # one chart per team's objectives against the no-decision run, above the fold
        teacher.wait_for_selector("#chart-usa canvas")
        boxes = teacher.evaluate(
            "() => [...document.querySelectorAll('.chart')].map(e => e.getBoundingClientRect().bottom)"
        )
        assert len(boxes) == 5 and min(boxes) <= VIEW["height"]
        shot(teacher, "game_debrief")
    finally:
        for c in ctxs:
            c.close()


def _pids_serving(port: int) -> list[int]:
    """Processes whose command line names ``port`` (the ``solara run`` child of ``ndsim ui``)."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/cmdline", "rb") as fh:
                cmd = fh.read().split(b"\0")
        except OSError:
            continue
        if b"solara" in b" ".join(cmd) and str(port).encode() in cmd:
            out.append(int(d))
    return out


@pytest.mark.parametrize("signum", [15, 2], ids=["SIGTERM", "SIGINT"])
def test_killing_ndsim_ui_leaves_no_process_or_port(signum):
    """``kill PID`` (or Ctrl-C) of ``ndsim ui`` stops its server child and frees the port."""
    import socket
    import subprocess
    import sys
    import urllib.request

    from sim.app_cli import ensure_assets
    from tests.browser_helpers import free_port

    if ensure_assets():
        pytest.skip("front-end files not available offline")
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "sim.cli", "ui", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        end = time.monotonic() + 90
        while time.monotonic() < end:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                time.sleep(0.3)
        else:
            pytest.fail("ndsim ui did not serve within 90 s")
        assert _pids_serving(port), "no solara child found"
        os.kill(proc.pid, signum)  # the ndsim ui process only, as `kill PID` does
        assert proc.wait(timeout=30) is not None
        end = time.monotonic() + 15
        while _pids_serving(port) and time.monotonic() < end:
            time.sleep(0.2)
        assert _pids_serving(port) == []
        with socket.socket() as s:
            assert s.connect_ex(("127.0.0.1", port)) != 0, "port still accepts connections"
    finally:
        if proc.poll() is None:
            proc.kill()
        for pid in _pids_serving(port):
            os.kill(pid, 9)
