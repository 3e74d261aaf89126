"""A run steered live: levers changed during a run act from the next month on.

A change of the page's levers becomes new world ``[policies]`` tables
(:func:`sim.app.controls.policy_tables`) starting next month. For each instrument whose table
changed, the instrument in force is ended this month and one built from the new table takes
over, carrying what the old one held (stock and money of a stockpile, licences of export
controls, projects of the Vault fund). Demand growth is re-planned from next month on.
The no-policy baseline of the same world and seed is run once and kept for comparison.
"""

from __future__ import annotations

import copy
import functools
import json
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from sim.app.controls import Controls, describe, policy_tables, world_choices
from sim.calendar import format_month
from sim.errors import UserError
from sim.network import P

if TYPE_CHECKING:
    from sim.scenario import Scenario

MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)
REGION_GROUPS = ("china", "usa", "eu", "japan")
PRIVATE = "private:"  # series region label of an instrument a firm holds (not public policy)
MONEY_METRICS = ("stockpile_spent_usd", "vault_disbursed_usd", "subsidy_paid_usd")


def month_words(index: int) -> str:
    """An absolute month index in words, e.g. ``April 2025``."""
    return f"{MONTHS[index % 12]} {index // 12}"


def region_group(region: str) -> str:
    """The region's colour group: a named region or ``other``."""
    return region if region in REGION_GROUPS else "other"


@dataclass(frozen=True)
class Event:
    """Something the page marks on the charts: month (absolute), kind and words."""

    month_abs: int
    kind: str
    text: str


@dataclass
class Series:
    """Monthly series the page draws, by region group (arrays of recorded months)."""

    months: np.ndarray  # absolute month index per row
    price_china: np.ndarray  # magnet USD/kg
    price_world: np.ndarray
    shortage: dict[str, np.ndarray]  # t/month of magnets not delivered, by region group
    capacity: dict[str, np.ndarray]  # magnet plant capacity, t/month
    production: dict[str, np.ndarray]  # magnets made, t/month
    stockpile: dict[str, np.ndarray]  # strategic magnet stock, t
    money: dict[str, np.ndarray]  # public money spent (cumulative USD)
    vault_lost: dict[str, np.ndarray]  # Vault money lost on failed projects (cumulative USD)


def _groups(m) -> dict[str, np.ndarray]:
    """Node indices by region group."""
    names = [region_group(m.nodes.regions[r]) for r in m.nodes.region]
    out: dict[str, list[int]] = {}
    for i, g in enumerate(names):
        out.setdefault(g, []).append(i)
    return {g: np.array(v, np.int64) for g, v in out.items()}


def series_of(m) -> Series:
    """The page's series from a model's recorder (months recorded so far)."""
    rec, t = m.recorder, m.recorder.t
    pm = P["magnet"]
    groups = _groups(m)
    oem, plants = set(m.idx["oem"].tolist()), set(m.idx["magnet_plant"].tolist())

    def by_group(arr: np.ndarray, members: set[int]) -> dict[str, np.ndarray]:
        out = {}
        for g, idx in groups.items():
            sel = [i for i in idx if i in members]
            if sel:
                out[g] = arr[:t, sel].sum(axis=1)
        return out

    def policy(metrics: tuple[str, ...], product: str | None) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        for (metric, prod, region), arr in rec.policy_series.items():
            if region.startswith(PRIVATE):
                continue  # a firm's own stock or contract: not public money
            if metric in metrics and (product is None or prod == product):
                g = region_group(region)
                out[g] = out.get(g, np.zeros(t)) + np.nan_to_num(arr[:t])
        return out

    return Series(
        months=np.arange(t) + m.start_abs,
        price_china=rec.price_china[:t, pm].copy(),
        price_world=rec.price_world[:t, pm].copy(),
        shortage=by_group(rec.shortage, oem),
        capacity=by_group(rec.cap / 12.0, plants),
        production=by_group(rec.produced, plants),
        stockpile=policy(("stockpile_t",), "magnet"),
        money=policy(MONEY_METRICS, None),
        vault_lost=policy(("vault_lost_usd",), None),
    )


def scenario_of(c: Controls, firms: str = "") -> Scenario:
    """The :class:`sim.scenario.Scenario` a run of the page starts from.

    The world chosen in ``c`` with ``firms`` added to its tables (JSON ``{"recyclers":
    [{...}], ...}``); demand growth at x1 (the page re-plans it from its lever). Levers act on
    the running model from the next month (:meth:`LiveRun._apply`).
    """
    from sim.scenario import world_scenario

    path = world_choices().get(c.world)
    if path is None:
        raise UserError(f"world {c.world!r} is not available here")
    sc = world_scenario(path, ["behaviour.demand_growth_multiplier=1.0"])
    if not firms:
        return sc
    raw = copy.deepcopy(sc.world_raw)
    for table, rows in json.loads(firms).items():
        raw[table] = [*raw.get(table, []), *rows]
    return replace(sc, world_raw=raw)


@functools.lru_cache(maxsize=8)
def baseline_series(world: str, seed: int, firms: str = "") -> Series:
    """The whole no-policy run of ``world`` (plus ``firms``) with ``seed`` (cached)."""
    run = LiveRun(Controls(world=world, seed=seed), firms=firms)
    while run.model.running:
        run.model.step()
    return series_of(run.model)


# ------------------------------------------------------------------ carrying state over
def _carry_export_controls(old: list, new: list) -> None:
    olds = [r for ins in old for r in ins.rules]
    for ins in new:
        for r in ins.rules:
            prev = next((o for o in olds if np.array_equal(o.links, r.links)), None)
            if prev is None:
                continue
            for k in ("licence_until", "decide_at", "verdict", "next_try", "ref_flow"):
                getattr(r, k)[:] = getattr(prev, k)
            r._ref_set = prev._ref_set


def _carry_stockpiles(old: list, new: list) -> None:
    held = {h.name: h for ins in old for h in ins.holders}
    for ins in new:
        for h in ins.holders:
            prev = held.get(h.name)
            if prev is None:
                continue
            for k in ("stock_t", "spent_usd", "revenue_usd"):
                setattr(h, k, getattr(prev, k))
                setattr(prev, k, 0.0)
            h.inbound_t, prev.inbound_t = prev.inbound_t, np.zeros_like(prev.inbound_t)


def _carry_vault(old: list, new: list, model) -> None:
    if not old or not new:
        return
    prev, v = old[-1], new[0]
    by_firm = {p.firm: p for p in prev.projects}
    carried = ("status", "milestone", "due", "disbursed_usd", "waited", "online", "additional")
    for p in v.projects:
        if p.firm in by_firm:
            for k in carried:
                setattr(p, k, getattr(by_firm[p.firm], k))
    for k in ("committed", "disbursed", "lost", "loans", "repaid", "floor_paid", "started", "log"):
        setattr(v, k, getattr(prev, k))
        if k in ("committed", "disbursed", "lost", "loans", "repaid", "floor_paid"):
            setattr(prev, k, 0.0)
    v.gap_projects, prev.gap_projects = prev.gap_projects, []
    if v.started:
        v._select(model)


def _carry_subsidies(old: list, new: list) -> None:
    paid = {sc.name: sc for ins in old for sc in ins.schemes}
    for ins in new:
        for sc in ins.schemes:
            prev = paid.get(sc.name)
            if prev is not None:
                sc.paid_usd, prev.paid_usd = prev.paid_usd, 0.0


def _privately_held(ins: Any, owner: str) -> None:
    """Label an instrument's series ``private:owner`` instead of its region."""
    series = ins.series

    def relabelled() -> dict[tuple[str, str, str], float]:
        return {(m, p, PRIVATE + owner): v for (m, p, _), v in series().items()}

    ins.series = relabelled


def _same(a: Any, b: Any) -> bool:
    """Two tables equal but for their start month (a table re-stated later changes nothing)."""

    def strip(x: Any) -> Any:
        if isinstance(x, dict):
            return {k: strip(v) for k, v in x.items() if k != "start"}
        if isinstance(x, list):
            return [strip(v) for v in x]
        return x

    return strip(a) == strip(b)


def _end(ins, last_month: str) -> None:
    """End an instrument's rules after ``last_month`` (``YYYY-MM``)."""

    def ended(spec):
        return spec.model_copy(update={"end": last_month})

    for r in getattr(ins, "rules", []):
        r.spec = ended(r.spec)
    for h in getattr(ins, "holders", []):
        h.spec = ended(h.spec)
    if hasattr(ins, "paths"):
        ins.paths = [(r, ended(s)) for r, s in ins.paths]
    if hasattr(ins, "spec"):
        ins.spec = ended(ins.spec)


# ------------------------------------------------------------------------------- the run
@dataclass
class LiveRun:
    """One model run whose levers can change between months.

    Args:
        controls: Levers in force from the first month (world and seed included).
        firms: Firms added to the world's tables, as JSON ``{"recyclers": [{...}], ...}``
            (the game adds a dormant EU recycling plant where a world has none).
    """

    controls: Controls
    firms: str = ""
    events: list[Event] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.scenario = scenario_of(self.controls, self.firms)
        self.raw = self.scenario.world_raw
        self.model = self.scenario.build_model(int(self.controls.seed))
        m = self.model
        gf = m._growth
        ratio = np.ones_like(gf)
        ratio[1:] = gf[1:] / gf[:-1]
        self._base_rates = np.power(ratio, 12.0) - 1.0  # demand growth at multiplier 1
        self.pending: Controls | None = None
        self._tables: dict[str, Any] = {}
        self._apply(self.controls, first=True)

    # -------------------------------------------------------------- levers
    @property
    def month_shown(self) -> int:
        """The last simulated month (before any step: the first month, not yet run)."""
        m = self.model
        return m.month_abs - 1 if m.recorder.t else m.month_abs

    def set_controls(self, c: Controls) -> None:
        """Queue new levers; they act from the next simulated month."""
        c = replace(c, world=self.controls.world, seed=self.controls.seed)
        self.pending = None if c == self.controls else c

    def _regrow(self, mult: float, from_index: int) -> None:
        gf = self.model._growth
        i0 = max(from_index, 1)
        if i0 >= gf.shape[0]:
            return
        monthly = np.power(1.0 + self._base_rates[i0:] * max(mult, 0.0), 1.0 / 12.0)
        gf[i0:] = gf[i0 - 1] * np.cumprod(monthly, axis=0)

    def _apply(self, c: Controls, first: bool = False) -> None:
        m = self.model
        tables = policy_tables(c, self.raw, None if first else format_month(m.month_abs))
        self._regrow(c.demand_growth, m.month_abs - m.start_abs)
        self.apply_tables(tables, None if first else f"levers changed: {describe(c)}")
        self.controls = c

    def apply_tables(self, tables: dict[str, Any], note: str | None) -> None:
        """Put ``[policies]`` tables in force from this month (the next one simulated).

        Instruments whose table changed since the last call are ended last month and rebuilt
        from the new table, carrying their state over; others are left alone. A key
        ``name@owner`` builds instrument ``name`` held by a firm, not a government: its series
        are labelled ``private:owner`` (kept apart from public money and stocks).
        """
        from sim.policies.registry import build_instruments

        m = self.model
        last = format_month(m.month_abs - 1)
        instruments = m.policies.instruments
        for name in sorted(set(tables) | set(self._tables)):
            if _same(tables.get(name), self._tables.get(name)):
                continue
            old = [i for i in instruments if getattr(i, "_ndsim_live", None) == name]
            for ins in old:
                _end(ins, last)
                ins._ndsim_live = None
            kind, _, owner = name.partition("@")
            new = build_instruments(m, {kind: tables[name]}) if name in tables else []
            for ins in new:
                ins._ndsim_live = name  # the table key it was built from
                if owner:
                    _privately_held(ins, owner)
            if kind == "export_controls":
                _carry_export_controls(old, new)
            elif kind == "stockpiles":
                _carry_stockpiles(old, new)
            elif kind == "vault":
                _carry_vault(old, new, m)
            elif kind == "subsidies":
                _carry_subsidies(old, new)
            instruments.extend(new)
        if note:
            self.events.append(Event(m.month_abs, "controls", note))
        self._tables = tables

    # -------------------------------------------------------------- stepping
    def step(self, months: int = 1) -> list[Event]:
        """Run ``months`` months (pending levers first); return the events they brought."""
        m = self.model
        seen = len(self.events)
        for _ in range(months):
            if not m.running:
                break
            if self.pending is not None:
                self._apply(self.pending)
                self.pending = None
            before = self._snapshot()
            m.step()
            self._observe(before)
        return self.events[seen:]

    def _snapshot(self) -> dict[str, Any]:
        m = self.model
        return {
            "added": len(m.capacity_added),
            "in_force": any(
                getattr(r, "in_force", False)
                for i in m.policies.instruments
                for r in getattr(i, "rules", [])
            ),
        }

    def _observe(self, before: dict[str, Any]) -> None:
        m = self.model
        month = m.month_abs - 1
        after = self._snapshot()
        if after["in_force"] and not before["in_force"]:
            self.events.append(Event(month, "controls", "China's export licensing starts"))
        for _, node, delta, origin in m.capacity_added[before["added"] :]:
            if origin in ("start", "closure") or delta <= 0:
                continue
            name = m.nodes.ids[node].replace("_", " ")
            self.events.append(
                Event(month, "capacity", f"{delta:,.0f} t/yr new capacity online at {name}")
            )
        rec = m.recorder
        for (metric, prod, region), arr in rec.policy_series.items():
            if metric != "stockpile_released_t" or rec.t < 1:
                continue
            now_t = float(np.nan_to_num(arr[rec.t - 1]))
            prev_t = float(np.nan_to_num(arr[rec.t - 2])) if rec.t >= 2 else 0.0
            if now_t > 1e-6 and prev_t <= 1e-6:
                self.events.append(
                    Event(month, "stockpile", f"{region.upper()} releases its {prod} stockpile")
                )

    def series(self) -> Series:
        """The page's series so far."""
        return series_of(self.model)

    def baseline(self) -> Series:
        """The no-policy run of the same world and seed."""
        return baseline_series(self.controls.world, int(self.controls.seed), self.firms)

    def totals(self) -> dict[str, dict[str, float]]:
        """Running totals per region group: shortage (t), public money and Vault losses (USD).

        Also ``shortage_baseline_t``: the no-policy run's shortage over the same months.
        """
        s, b = self.series(), self.baseline()
        t = s.months.size
        groups = sorted(set(s.shortage) | set(s.money), key=lambda g: (g == "other", g))
        out = {}
        for g in groups:

            def last(d: dict[str, np.ndarray], g: str = g) -> float:
                return float(d[g][t - 1]) if g in d and t else 0.0

            out[g] = {
                "shortage_t": float(s.shortage[g][:t].sum()) if g in s.shortage else 0.0,
                "shortage_baseline_t": float(b.shortage[g][:t].sum()) if g in b.shortage else 0.0,
                "money_usd": last(s.money),
                "vault_lost_usd": last(s.vault_lost),
            }
        return out

    def what_just_happened(self, events: list[Event]) -> str:
        """One line: the newest event of the last step, else the month's prices and shortage."""
        m, rec = self.model, self.model.recorder
        if rec.t == 0:
            return f"{month_words(self.month_shown)}: nothing run yet. Press +1 month or Play."
        now = month_words(self.month_shown)
        if events:  # the line always starts with the month the network and charts show
            e = events[-1]
            if e.month_abs >= self.month_shown:
                return f"{now}: {e.text}"
            return f"{now}: in {month_words(e.month_abs)}, {e.text}"
        pm = P["magnet"]
        short = float(rec.shortage[rec.t - 1, m.idx["oem"]].sum())
        return (
            f"{now}: magnets cost {rec.price_china[rec.t - 1, pm]:.0f} "
            f"USD/kg in China, {rec.price_world[rec.t - 1, pm]:.0f} outside; "
            f"shortage {short:,.0f} t this month"
        )
