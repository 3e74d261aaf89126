"""The classroom page (served by ``ndsim ui``): projector-first, levers act live next month.

Layout at 1280x720: a top bar (scenario, world, +1 month, +1 year, Play, whole-run toggle), a
narrow left column (levers with their values, running totals) and the main area: one line on
what just happened, the network and the two charts the current exercise needs. The other
charts follow below. Every browser tab has its own run (:class:`~sim.app.live.LiveRun`).
"""

from __future__ import annotations

import threading
import time
from dataclasses import replace

import solara

from sim.app.charts import (
    BLOCKED_COLOUR,
    CHART_BUILDERS,
    CHARTS,
    EVENT_COLOURS,
    EVENT_WORDS,
    FLOW_COLOUR,
    LICENSED_COLOUR,
    View,
    network_chart,
    network_layout,
    window,
)
from sim.app.controls import PRESETS, Controls, default_world, world_choices
from sim.app.echarts import Echarts, option_json
from sim.app.live import LiveRun, month_words

PLAY_MONTH_S = 0.2  # Play runs 5 months a second: a year in 2.4 s
PLAY_MAX_MONTHS = 3  # months one Play update may cover when drawing lags
CSS = """
.v-application { font-size: 18px; }
.solara-content-main, .v-main__wrap > div { padding: 0 !important; }
.ndsim-bar { display: flex; gap: 10px; align-items: center; padding: 4px 10px;
  background: #f2f2f2; flex-wrap: nowrap; height: 56px; }
.ndsim-bar .v-btn { font-size: 18px !important; text-transform: none; }
.ndsim-bar .v-input { font-size: 17px; max-width: 330px; margin-top: 0; padding-top: 0; }
.ndsim-bar .v-field__loader { display: none; }  /* an invisible bar that animates forever */
.ndsim-title { font-size: 20px; font-weight: 700; white-space: nowrap; }
.ndsim-body { display: flex; gap: 8px; padding: 4px 8px; }
.ndsim-side { width: 285px; flex: none; font-size: 17px; }
.ndsim-side .v-label, .ndsim-side label { font-size: 17px !important;
  color: #111 !important; opacity: 1 !important; }
.ndsim-side .v-input { margin-top: 0; padding-top: 0; }
.ndsim-side .v-messages { display: none; }
.ndsim-main { flex: 1; min-width: 0; }
.ndsim-status { font-size: 20px; font-weight: 700; line-height: 28px; height: 28px;
  white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }
.ndsim-pending { color: #b35900; font-weight: 700; font-size: 17px; }
.ndsim-key { font-size: 16px; color: #333; }
.ndsim-totals table { border-collapse: collapse; font-size: 16px; width: 100%; }
.ndsim-totals td, .ndsim-totals th { padding: 1px 4px; text-align: right; }
.ndsim-totals th:first-child, .ndsim-totals td:first-child { text-align: left; }
.ndsim-row { display: flex; gap: 8px; }
.ndsim-row > div { flex: 1; min-width: 0; }
.ndsim-error { font-size: 18px; color: #b00020; white-space: pre-wrap; }
"""
KEY_HTML = (
    "<div class='ndsim-key'>Circles: size = capacity (users: demand). "
    f"Arrows: <span style='color:{FLOW_COLOUR}'>&#9644; trade</span> "
    f"(thicker = more t), <span style='color:{LICENSED_COLOUR}'>&#9644; "
    f"licensed export</span>, <span style='color:{BLOCKED_COLOUR}'>"
    "- - blocked export</span>. Charts: dashed = the no-policy run; dotted marks: "
    + ", ".join(
        f"<span style='color:{EVENT_COLOURS[k]}'>{w}</span>" for k, w in EVENT_WORDS.items()
    )
    + ".</div>"
)
NETWORK_HEIGHT = "230px"
TOP_CHART_HEIGHT = "318px"


def _fig(name: str, option: dict, height: str) -> None:
    with solara.Div(classes=["ndsim-figure", f"ndsim-fig-{name}"]):
        Echarts(option_json(option), f"height: {height}; width: 100%;")


def _totals_html(run: LiveRun) -> str:
    rows = []
    for g, v in run.totals().items():
        name = {"china": "China", "usa": "USA", "eu": "EU", "japan": "Japan"}.get(g, "Others")
        rows.append(
            f"<tr><td>{name}</td><td>{v['shortage_t']:,.0f}</td>"
            f"<td>{v['shortage_baseline_t']:,.0f}</td><td>{v['money_usd'] / 1e6:,.0f}</td>"
            f"<td>{v['vault_lost_usd'] / 1e6:,.0f}</td></tr>"
        )
    return (
        "<div class='ndsim-totals'><b>Since January 2024</b><table><tr><th></th>"
        "<th title='magnet shortage, t'>short t</th><th title='no-policy run'>no-pol.</th>"
        "<th title='public money, million USD'>M USD</th><th title='Vault losses'>lost</th>"
        "</tr>" + "".join(rows) + "</table></div>"
    )


@solara.component
def Levers(run: LiveRun, controls: Controls, on_controls, pending: bool) -> None:  # noqa: N802
    """The live levers, each with its value in its label."""
    c = controls

    def put(**kw) -> None:
        new = replace(c, **kw)
        run.set_controls(new)
        on_controls(new)

    solara.Checkbox(
        label="China licenses magnet exports",
        value=c.export_controls,
        on_value=lambda v: put(export_controls=bool(v)),
    )
    solara.SliderFloat(
        f"Licences approved: {c.approval_rate:.0%}",
        value=c.approval_rate,
        min=0.0,
        max=1.0,
        step=0.05,
        on_value=lambda v: put(approval_rate=float(v)),
        thumb_label=False,
    )
    solara.SliderInt(
        f"US stockpile: {c.stockpile_days} days",
        value=c.stockpile_days,
        min=0,
        max=180,
        step=15,
        on_value=lambda v: put(stockpile_days=int(v)),
        thumb_label=False,
    )
    solara.SliderFloat(
        f"Vault fund: {c.vault_budget_busd:g} bn USD",
        value=c.vault_budget_busd,
        min=0.0,
        max=5.0,
        step=0.25,
        on_value=lambda v: put(vault_budget_busd=float(v)),
        thumb_label=False,
    )
    solara.SliderFloat(
        f"Recycling by 2030: {c.recycling_rate:.0%}",
        value=c.recycling_rate,
        min=0.0,
        max=0.5,
        step=0.05,
        on_value=lambda v: put(recycling_rate=float(v)),
        thumb_label=False,
    )
    solara.SliderFloat(
        f"Demand growth: x{c.demand_growth:.1f}",
        value=c.demand_growth,
        min=0.0,
        max=3.0,
        step=0.1,
        on_value=lambda v: put(demand_growth=float(v)),
        thumb_label=False,
    )
    if pending:
        solara.Text("changed: acts from next month", classes=["ndsim-pending"])


@solara.component
def Page() -> None:  # noqa: N802 - Solara page
    """The classroom page."""
    preset, set_preset = solara.use_state(next(iter(PRESETS)))
    world, set_world = solara.use_state(default_world())
    restart, set_restart = solara.use_state(0)
    playing, set_playing = solara.use_state(False)
    whole, set_whole = solara.use_state(False)
    more, set_more = solara.use_state(False)
    _, set_version = solara.use_state(0)
    # the month counter only the month-driven parts read: a step re-renders them, not the bar
    # and the levers
    tick = solara.use_memo(lambda: solara.reactive(0), [])
    last_events = solara.use_ref([])
    p = PRESETS[preset]

    def make_run():
        try:
            return LiveRun(replace(p.controls, world=world)), None
        except Exception as exc:  # noqa: BLE001 - shown on the page
            return None, f"could not build the model: {exc}"

    run, error = solara.use_memo(make_run, [preset, world, restart])
    controls, set_controls = solara.use_state(p.controls)
    solara.use_effect(lambda: set_controls(replace(p.controls, world=world)), [preset, world])
    lock = solara.use_memo(threading.Lock, [])
    layout = solara.use_memo(lambda: network_layout(run.model) if run else None, [run])

    def advance(months: int) -> None:
        if run is None:
            return
        with lock:
            had_pending = run.pending is not None
            last_events.current = run.step(months)
        if had_pending:  # the levers' "changed" flag goes before the month shows
            set_version(lambda v: v + 1)
        tick.set(tick.value + 1)

    def play(cancel: threading.Event) -> None:
        # Paced by the clock: when drawing lags, the next update covers the months due
        # (fewer, larger updates) so that a simulated year never takes more than 12 beats.
        t0, done = time.perf_counter(), 0
        while playing and run is not None and run.model.running and not cancel.is_set():
            due = int((time.perf_counter() - t0) / PLAY_MONTH_S) + 1
            advance(max(1, min(due - done, PLAY_MAX_MONTHS)))
            done = max(due, done + 1)
            time.sleep(max(0.0, t0 + done * PLAY_MONTH_S - time.perf_counter()))
        if run is not None and not run.model.running:
            set_playing(False)

    solara.use_thread(play, dependencies=[playing, run], intrusive_cancel=False)

    solara.Style(CSS)
    solara.Title("ndsim classroom")
    with solara.Div(classes=["ndsim-bar"]):
        solara.Text("NdPr magnets", classes=["ndsim-title"])
        solara.Select(
            label="Scenario",
            value=preset,
            values=list(PRESETS),
            on_value=lambda v: (set_playing(False), set_preset(v)),
        )
        solara.Select(
            label="World",
            value=world,
            values=list(world_choices()),
            on_value=lambda v: (set_playing(False), set_world(v)),
        )
        solara.Button("+1 month", on_click=lambda: advance(1), disabled=playing)
        solara.Button("+1 year", on_click=lambda: advance(12), disabled=playing)
        solara.Button(
            "Pause" if playing else "Play",
            on_click=lambda: set_playing(not playing),
            color="primary",
        )
        solara.Button("Restart", on_click=lambda: (set_playing(False), set_restart(restart + 1)))
        solara.Checkbox(label="Whole run", value=whole, on_value=set_whole)
    if run is None:
        solara.Text(error or "no model", classes=["ndsim-error"])
        return
    with solara.Div(classes=["ndsim-body"]):
        with solara.Div(classes=["ndsim-side"]):
            solara.Text(p.note, classes=["ndsim-key"])
            Levers(run, controls, set_controls, run.pending is not None)
            Totals(run, tick)
        with solara.Div(classes=["ndsim-main"]):
            Month(run, layout, p.charts, whole, tick, last_events)
            solara.HTML(unsafe_innerHTML=KEY_HTML)
            rest = [n for n in CHARTS if n not in p.charts]
            solara.Button(
                ("Hide" if more else "Show")
                + " the other charts ("
                + ", ".join(CHARTS[n].split(" (")[0].lower() for n in rest)
                + ")",
                on_click=lambda: set_more(not more),
                text=True,
                classes=["ndsim-more"],
            )
            if more:  # charts nobody looks at would cost a message and a drawing every month
                OtherCharts(run, rest, whole, tick)


def _view(run: LiveRun, whole: bool) -> View:
    m = run.model
    return View(
        run.series(),
        run.baseline(),
        tuple(run.events),
        window(m.start_abs, m.end_abs, run.month_shown, whole),
    )


@solara.component
def Totals(run: LiveRun, tick: solara.Reactive[int]) -> None:  # noqa: N802
    """Running totals per region (re-rendered each month)."""
    _ = tick.value
    solara.HTML(unsafe_innerHTML=_totals_html(run))


@solara.component
def Month(run: LiveRun, layout, charts, whole: bool, tick, last_events) -> None:  # noqa: N802
    """What changes each month: the status line, the network and the exercise's two charts."""
    _ = tick.value
    m = run.model
    view = _view(run, whole)
    solara.Text(run.what_just_happened(last_events.current), classes=["ndsim-status"])
    _fig(
        "network",
        network_chart(m, layout, f"Supply chain, {month_words(run.month_shown)}"),
        NETWORK_HEIGHT,
    )
    with solara.Div(classes=["ndsim-row"]):
        for name in charts:
            _fig(name, CHART_BUILDERS[name](view), TOP_CHART_HEIGHT)


@solara.component
def OtherCharts(run: LiveRun, names: list[str], whole: bool, tick) -> None:  # noqa: N802
    """The charts below the fold, two a row (only while shown)."""
    _ = tick.value
    view = _view(run, whole)
    for k in range(0, len(names), 2):
        with solara.Div(classes=["ndsim-row"]):
            for name in names[k : k + 2]:
                _fig(name, CHART_BUILDERS[name](view), TOP_CHART_HEIGHT)
