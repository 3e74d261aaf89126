"""Classroom web app: a Mesa SolaraViz page to watch and steer the NdPr magnet supply chain.

Run with ``ndsim ui`` (see :mod:`sim.app_cli`) or ``solara run sim/app.py``; the world file
given to ``ndsim ui --world`` arrives in the environment variable ``NDSIM_UI_WORLD``.

The simulation model stays free of UI code: :class:`ClassroomModel` is a thin ``mesa.Model``
that turns the page's controls into world overrides (:func:`controls_to_overrides`, the one
place where controls are mapped) and builds a :class:`~sim.model.SupplyChainModel` from them.
Controls take effect when the model is reset (SolaraViz rebuilds the model from them).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import matplotlib
import mesa
import numpy as np
import solara
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from mesa.visualization import SolaraViz
from mesa.visualization.utils import update_counter

from sim.calendar import parse_month
from sim.errors import UserError
from sim.network import P

matplotlib.use("Agg")

ROOT = Path(__file__).resolve().parents[1]
WORLD_ENV = "NDSIM_UI_WORLD"
WORLDS: dict[str, Path] = {
    "classroom": ROOT / "models" / "classroom.toml",
    "baseline": ROOT / "models" / "baseline_2024.toml",
}

# ----------------------------------------------------------------------------- look & feel
STAGES: tuple[str, ...] = ("mine", "separator", "metal_maker", "magnet_plant", "oem", "recycler")
STAGE_LABEL = {
    "mine": "Mines",
    "separator": "Separators",
    "metal_maker": "Metal makers",
    "magnet_plant": "Magnet plants",
    "oem": "Magnet users\n(OEMs)",
    "recycler": "Recyclers",
}
REGION_COLOUR = {"china": "#c0392b", "usa": "#1f5fa8", "eu": "#e0a800", "japan": "#7d3c98"}
OTHER_COLOUR = "#8c8c8c"
REGION_LABEL = {"china": "China", "usa": "USA", "eu": "EU", "japan": "Japan"}
FONT = 15
matplotlib.rcParams.update(
    {
        "font.size": FONT,
        "axes.titlesize": FONT + 3,
        "axes.labelsize": FONT + 1,
        "legend.fontsize": FONT - 1,
        "xtick.labelsize": FONT - 1,
        "ytick.labelsize": FONT - 1,
        "lines.linewidth": 3,
        "axes.grid": True,
        "grid.alpha": 0.3,
    }
)
CSS = """
.v-application { font-size: 18px; }
.v-application .v-label, .v-application .v-input, .v-application .v-btn,
.v-application .v-card__title, .v-application .v-select__selection { font-size: 18px !important; }
.v-application .v-card__title { font-weight: 700; }
.ndsim-status { font-size: 22px; font-weight: 700; }
.ndsim-note { font-size: 17px; }
.ndsim-error { font-size: 18px; color: #b00020; white-space: pre-wrap; }
"""

# ------------------------------------------------------------------------------ controls
EXPORT_CONTROLS_START = "2025-04"
RECYCLING_TARGET_MONTH = "2030-01"
STOCKPILE_BUDGET_USD = 5e9
# Vault candidates: assumed capital cost per t/yr of new capacity (order of magnitude as in
# experiments/project_vault.toml; assumptions, not sourced figures) and default project size.
VAULT_CAPEX_USD_PER_T_PER_YR = {
    "separator": 250_000.0,
    "metal_maker": 60_000.0,
    "magnet_plant": 100_000.0,
}
VAULT_DEFAULT_PROJECT_T_PER_YR = 3000.0
VAULT_STAGE_TABLES = {
    "separator": "separators",
    "metal_maker": "metal_makers",
    "magnet_plant": "magnet_plants",
}

# which registered instrument each control needs (None: plain world override)
CONTROL_INSTRUMENT = {
    "export_controls": "export_controls",
    "approval_rate": "export_controls",
    "stockpile_days": "stockpiles",
    "vault_budget_busd": "vault",
    "recycling_rate": "recycling_targets",
    "demand_growth": None,
}


@dataclass(frozen=True)
class Controls:
    """The page's controls (also :class:`ClassroomModel`'s parameters), with units."""

    world: str = "classroom"
    seed: int = 0
    export_controls: bool = False  # China's magnet export licensing from 2025-04
    approval_rate: float = 0.5  # share of licence applications approved
    stockpile_days: int = 0  # target of a US magnet stockpile, days of use (0: none)
    vault_budget_busd: float = 0.0  # Vault fund budget, billion USD (0: none)
    recycling_rate: float = 0.0  # end-of-life collection share reached by 2030 (0: as is)
    demand_growth: float = 1.0  # multiplier on every sector's demand growth rate


def available_instruments() -> set[str]:
    """Names of the policy instruments registered by :mod:`sim.policies`."""
    try:
        from sim.policies.registry import BUILDERS, _load_builtin

        _load_builtin()
        return set(BUILDERS)
    except ImportError:  # pragma: no cover - policies package incomplete
        return set()


def unavailable_controls() -> dict[str, str]:
    """Controls whose instrument is not registered yet -> a note shown on the page."""
    have = available_instruments()
    return {
        c: f"'{ins}' policy instrument not available yet; control disabled"
        for c, ins in CONTROL_INSTRUMENT.items()
        if ins is not None and ins not in have
    }


def _regions(raw: dict[str, Any]) -> list[str]:
    regions = {g.get("region") for g in raw.get("governments", [])}
    for table in ("mines", *VAULT_STAGE_TABLES.values(), "recyclers", "oems"):
        regions |= {f.get("region") for f in raw.get(table, [])}
    return sorted(r for r in regions if r)


def _importer(raw: dict[str, Any]) -> str | None:
    """The region that holds the stockpile and the Vault: ``usa``, else the first foreign one."""
    dom = raw.get("market", {}).get("domestic_region", "china")
    regions = _regions(raw)
    if "usa" in regions:
        return "usa"
    foreign = [
        r for r in regions if r != dom and any(o.get("region") == r for o in raw.get("oems", []))
    ]
    return foreign[0] if foreign else None


def _later(a: str, b: str) -> str:
    return a if parse_month(a) >= parse_month(b) else b


def policy_tables(c: Controls, raw: dict[str, Any]) -> dict[str, Any]:
    """The ``[policies]`` tables switched on by the controls, for world ``raw``.

    Controls whose instrument is not registered are left out (see :func:`unavailable_controls`).
    """
    have = available_instruments()
    cal = raw.get("calendar", {})
    start = str(cal.get("start", "2024-01"))
    dom = raw.get("market", {}).get("domestic_region", "china")
    regions = _regions(raw)
    importer = _importer(raw)
    out: dict[str, Any] = {}
    if c.export_controls and "export_controls" in have and dom in regions:
        out["export_controls"] = {
            "start": _later(EXPORT_CONTROLS_START, start),
            "exporter": dom,
            "products": ["magnet"],
            "approval_probability": float(min(max(c.approval_rate, 0.0), 1.0)),
        }
    if c.stockpile_days > 0 and "stockpiles" in have and importer:
        out["stockpiles"] = {
            importer: {
                "product": "magnet",
                "budget_usd": STOCKPILE_BUDGET_USD,
                "target_days": float(c.stockpile_days),
                "build_months": 12.0,
                "start": start,
            }
        }
    if c.vault_budget_busd > 0 and "vault" in have and importer:
        cands = []
        for role, table in VAULT_STAGE_TABLES.items():
            for f in sorted(raw.get(table, []), key=lambda f: f["id"]):
                if f.get("region") == dom:
                    continue
                size = float(f.get("capacity_t_per_yr", 0.0)) or VAULT_DEFAULT_PROJECT_T_PER_YR
                cands.append(
                    {
                        "firm": f["id"],
                        "capacity_t_per_yr": size,
                        "capex_usd_per_t_per_yr": VAULT_CAPEX_USD_PER_T_PER_YR[role],
                    }
                )
        if cands:
            out["vault"] = {
                "region": importer,
                "start": start,
                "budget_usd": float(c.vault_budget_busd) * 1e9,
                "exclude_regions": [dom],
                "candidates": cands,
            }
    if c.recycling_rate > 0 and "recycling_targets" in have and raw.get("recyclers"):
        out["recycling_targets"] = {
            "all": {
                "start": start,
                "target_share": float(min(max(c.recycling_rate, 0.0), 1.0)),
                "target_month": _later(RECYCLING_TARGET_MONTH, start),
            }
        }
    return out


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(float(v)) if isinstance(v, float) else str(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, list | tuple):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k} = {_toml_value(x)}" for k, x in v.items()) + "}"
    raise TypeError(f"cannot write {type(v).__name__} as TOML")


def _flatten(prefix: str, table: dict[str, Any]) -> list[str]:
    out: list[str] = []
    for key, value in table.items():
        if isinstance(value, dict):
            out += _flatten(f"{prefix}.{key}", value)
        else:
            out.append(f"{prefix}.{key}={_toml_value(value)}")
    return out


def controls_to_overrides(c: Controls | dict[str, Any], raw: dict[str, Any]) -> list[str]:
    """All world overrides (``key.path=value``, as ``ndsim run --set``) the controls produce."""
    if isinstance(c, dict):
        c = Controls(**{k: v for k, v in c.items() if k in Controls.__dataclass_fields__})
    out = [f"behaviour.demand_growth_multiplier={float(max(c.demand_growth, 0.0))!r}"]
    out += _flatten("policies", policy_tables(c, raw))
    return out


def world_choices() -> dict[str, Path]:
    """Worlds offered in the selector: those that exist, plus ``$NDSIM_UI_WORLD``."""
    out = {k: p for k, p in WORLDS.items() if p.exists()}
    env = os.environ.get(WORLD_ENV)
    if env:
        p = Path(env).resolve()
        same = [k for k, q in out.items() if q.resolve() == p]
        if not same:
            out = {p.stem: p, **out}
    return out


def default_world() -> str:
    """The world selected when the page opens."""
    choices = world_choices()
    env = os.environ.get(WORLD_ENV)
    if env:
        p = Path(env).resolve()
        for k, q in choices.items():
            if q.resolve() == p:
                return k
    return "classroom" if "classroom" in choices else next(iter(choices), "classroom")


# --------------------------------------------------------------------------------- model
class ClassroomModel(mesa.Model):
    """A :class:`~sim.model.SupplyChainModel` built from the page's controls.

    Bad input never raises here: the message is kept in ``error`` and shown on the page.
    """

    def __init__(
        self,
        world: str = "classroom",
        seed: int = 0,
        export_controls: bool = False,
        approval_rate: float = 0.5,
        stockpile_days: int = 0,
        vault_budget_busd: float = 0.0,
        recycling_rate: float = 0.0,
        demand_growth: float = 1.0,
    ):
        seed = int(seed or 0)
        super().__init__(rng=seed)
        self.controls = Controls(
            world=str(world),
            seed=seed,
            export_controls=bool(export_controls),
            approval_rate=float(approval_rate),
            stockpile_days=int(stockpile_days),
            vault_budget_busd=float(vault_budget_busd),
            recycling_rate=float(recycling_rate),
            demand_growth=float(demand_growth),
        )
        self.sim = None
        self.error: str | None = None
        self.overrides: list[str] = []
        try:
            from sim.model import SupplyChainModel
            from sim.world import load_world, read_toml

            path = world_choices().get(self.controls.world)
            if path is None:
                raise UserError(f"world {self.controls.world!r} is not available here")
            raw = read_toml(path)
            self.overrides = controls_to_overrides(self.controls, raw)
            w, _ = load_world(path, self.overrides, raw=raw)
            self.sim = SupplyChainModel(w, rng=seed)
        except Exception as exc:  # noqa: BLE001 - shown on the page, never a crash
            self.error = f"could not build the model: {exc}"
            self.running = False

    def step(self) -> None:
        """One month of the wrapped model."""
        if self.sim is None:
            self.running = False
            return
        try:
            self.sim.step()
            self.running = bool(self.sim.running)
        except Exception as exc:  # noqa: BLE001
            self.error = f"the simulation stopped: {exc}"
            self.running = False


def model_params() -> dict[str, Any]:
    """SolaraViz controls (applied on Reset); disabled ones are left out (see notes)."""
    off = unavailable_controls()
    d = Controls(world=default_world())
    p: dict[str, Any] = {
        "world": {
            "type": "Select",
            "value": d.world,
            "values": list(world_choices()),
            "label": "World",
        },
        "seed": {
            "type": "SliderInt",
            "value": d.seed,
            "min": 0,
            "max": 20,
            "step": 1,
            "label": "Random seed",
        },
        "export_controls": {
            "type": "Checkbox",
            "value": d.export_controls,
            "label": "China export controls on magnets (from April 2025)",
        },
        "approval_rate": {
            "type": "SliderFloat",
            "value": d.approval_rate,
            "min": 0.0,
            "max": 1.0,
            "step": 0.05,
            "label": "Licences approved (share)",
        },
        "stockpile_days": {
            "type": "SliderInt",
            "value": d.stockpile_days,
            "min": 0,
            "max": 180,
            "step": 15,
            "label": "Stockpile (days of US use)",
        },
        "vault_budget_busd": {
            "type": "SliderFloat",
            "value": d.vault_budget_busd,
            "min": 0.0,
            "max": 5.0,
            "step": 0.25,
            "label": "Vault fund (billion USD)",
        },
        "recycling_rate": {
            "type": "SliderFloat",
            "value": d.recycling_rate,
            "min": 0.0,
            "max": 0.5,
            "step": 0.05,
            "label": "Recycling by 2030 (share)",
        },
        "demand_growth": {
            "type": "SliderFloat",
            "value": d.demand_growth,
            "min": 0.0,
            "max": 3.0,
            "step": 0.1,
            "label": "Demand growth (x normal)",
        },
    }
    return {k: v for k, v in p.items() if k not in off}


# -------------------------------------------------------------------------------- drawing
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


def month_words(index: int) -> str:
    """An absolute month index in words, e.g. ``April 2025``."""
    return f"{MONTHS[index % 12]} {index // 12}"


def _region_colour(region: str) -> str:
    return REGION_COLOUR.get(region, OTHER_COLOUR)


def _region_group(region: str) -> str:
    return region if region in REGION_COLOUR else "other"


def _group_label(group: str) -> str:
    return REGION_LABEL.get(group, "Other regions")


def _node_label(g, node: str) -> str:
    name = g.nodes[node].get("name") or node
    if name != node:
        return name
    words = node.split("_")
    region = g.nodes[node].get("region")
    if words and words[0] == region:
        words[0] = REGION_LABEL.get(region, region.capitalize())
    return " ".join(w.upper() if len(w) <= 2 else w for w in words)


def layout_positions(g) -> dict[str, tuple[float, float]]:
    """Deterministic layout: x = stage (left to right), y = spread within the stage."""
    pos: dict[str, tuple[float, float]] = {}
    order = {r: k for k, r in enumerate(sorted(REGION_COLOUR))}
    for x, stage in enumerate(STAGES):
        nodes = [n for n, d in g.nodes(data=True) if d.get("role") == stage]
        nodes.sort(key=lambda n: (order.get(g.nodes[n]["region"], 99), g.nodes[n]["region"], n))
        k = len(nodes)
        for j, n in enumerate(nodes):
            pos[n] = (float(x), 1.0 - (j + 0.5) / k if k else 0.5)
    return pos


def network_figure(m) -> Figure:
    """The chain: nodes by stage, coloured by region, sized by capacity; edges by flow."""
    g = m.graph
    n_nodes = g.number_of_nodes()
    fig = Figure(figsize=(15, 7.2 if n_nodes <= 20 else 10), dpi=80, layout="constrained")
    ax = fig.subplots()
    pos = layout_positions(g)
    s = m.state
    oem = m.idx["oem"]
    size_t = (s.cap * s.online).astype(float)
    size_t[oem] = s.base_demand[oem] * 12.0 * np.asarray(m.growth_factor)[s.sector[oem]]
    smax = max(float(size_t.max(initial=0.0)), 1.0)
    flow = getattr(getattr(m, "clearing", None), "shipped_t", np.zeros(m.links.n))
    cap_t = getattr(m.policies, "cap_t", np.zeros(0))
    if cap_t.size != m.links.n:
        cap_t = np.full(m.links.n, np.inf)
    fmax = max(float(flow.max(initial=0.0)), 1e-9)
    for a, b, d in g.edges(data=True):
        e = d["index"]
        f = float(flow[e])
        (x0, y0), (x1, y1) = pos[a], pos[b]
        blocked = cap_t[e] <= 1e-12
        licensed = (not blocked) and np.isfinite(cap_t[e])
        if f <= 1e-9 and not (blocked or licensed):
            continue
        width = 0.8 + 9.0 * f / fmax
        colour = "#5d6d7e"
        style = "-"
        alpha = 0.35 + 0.5 * f / fmax
        if licensed:
            colour, alpha = "#e67e22", 0.9
        if blocked:
            colour, style, alpha, width = "#c0392b", (0, (2, 2)), 0.9, 2.5
        rad = 0.25 if x1 < x0 else 0.0
        ax.annotate(
            "",
            xy=(x1, y1),
            xytext=(x0, y0),
            arrowprops={
                "arrowstyle": "-|>",
                "lw": width,
                "color": colour,
                "alpha": alpha,
                "linestyle": style,
                "shrinkA": 14,
                "shrinkB": 14,
                "connectionstyle": f"arc3,rad={rad}",
                "mutation_scale": 14,
            },
            zorder=1,
        )
    label_size = FONT if n_nodes <= 20 else FONT - 5
    for node, d in g.nodes(data=True):
        i = d["index"]
        x, y = pos[node]
        scale = 2600 if n_nodes <= 20 else 900
        area = scale * (0.08 + math.sqrt(size_t[i] / smax))
        ax.scatter(
            [x],
            [y],
            s=area,
            color=_region_colour(d["region"]),
            edgecolor="black",
            linewidth=1.2,
            zorder=3,
        )
        label = _node_label(g, node)
        if n_nodes > 20:
            label = label.split(" (")[0]
        ax.annotate(
            label,
            (x, y),
            xytext=(0, -26 if n_nodes <= 20 else -12),
            textcoords="offset points",
            ha="center",
            va="top",
            fontsize=label_size,
            zorder=4,
        )
    for x, stage in enumerate(STAGES):
        ax.text(
            x,
            1.06,
            STAGE_LABEL[stage],
            ha="center",
            va="bottom",
            fontsize=FONT + 1,
            fontweight="bold",
        )
    ax.set_xlim(-0.6, len(STAGES) - 0.4)
    ax.set_ylim(-0.12, 1.2)
    ax.axis("off")
    groups = sorted(
        {_region_group(d["region"]) for _, d in g.nodes(data=True)}, key=lambda r: (r == "other", r)
    )
    handles = [
        Line2D(
            [],
            [],
            marker="o",
            ls="",
            ms=16,
            mec="black",
            color=REGION_COLOUR.get(r, OTHER_COLOUR),
            label=_group_label(r),
        )
        for r in groups
    ]
    handles += [
        Line2D([], [], color="#5d6d7e", lw=5, label="trade flow (thicker = more t)"),
        Line2D([], [], color="#e67e22", lw=5, label="licensed export"),
        Line2D([], [], color="#c0392b", lw=3, ls=(0, (2, 2)), label="blocked export"),
    ]
    ax.legend(
        handles=handles,
        loc="upper center",
        bbox_to_anchor=(0.5, -0.01),
        ncol=min(len(handles), 4),
        frameon=False,
        fontsize=FONT,
    )
    ax.set_title(
        f"Supply chain in {month_words(m.month_abs - 1)}  (circle size = capacity "
        f"or demand in t/yr; arrows = last month's shipments)",
        fontsize=FONT + 1,
    )
    return fig


def _years(m, t: int) -> np.ndarray:
    k = np.arange(t) + m.start_abs
    return k // 12 + (k % 12) / 12.0


def _by_region(m, arr: np.ndarray, idx: np.ndarray) -> dict[str, np.ndarray]:
    regions = m.nodes.regions
    out: dict[str, np.ndarray] = {}
    for i in idx:
        grp = _region_group(regions[m.nodes.region[i]])
        out[grp] = out.get(grp, 0.0) + arr[:, i]
    return dict(sorted(out.items(), key=lambda kv: (kv[0] == "other", kv[0])))


def _empty(ax, text: str) -> None:
    ax.text(
        0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, fontsize=FONT, wrap=True
    )


def _finish(ax, m, t: int, ylabel: str, title: str) -> None:
    ax.set_title(title)
    ax.set_ylabel(ylabel)
    ax.set_xlabel("Year")
    start = m.start_abs // 12 + (m.start_abs % 12) / 12
    end = (m.end_abs + 1) // 12 + ((m.end_abs + 1) % 12) / 12
    ax.set_xlim(start, max(end, start + 1))
    ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    ax.ticklabel_format(axis="x", useOffset=False, style="plain")
    if t == 0:
        _empty(ax, "Press Step or Play to run")
    elif ax.get_legend_handles_labels()[0]:
        ax.legend(loc="upper left")


def _chart(figsize=(7.5, 4.6)) -> tuple[Figure, Any]:
    fig = Figure(figsize=figsize, dpi=80, layout="constrained")
    return fig, fig.subplots()


def price_figure(m) -> Figure:
    """Magnet and NdPr oxide prices, China-domestic vs ex-China (USD/kg)."""
    fig, ax = _chart()
    rec, t = m.recorder, m.recorder.t
    x = _years(m, t)
    for prod, ls, name in (("magnet", "-", "Magnets"), ("oxide", "--", "NdPr oxide")):
        p = P[prod]
        if t:
            ax.plot(
                x,
                rec.price_china[:t, p],
                ls=ls,
                color=REGION_COLOUR["china"],
                label=f"{name}, inside China",
            )
            ax.plot(
                x,
                rec.price_world[:t, p],
                ls=ls,
                color=REGION_COLOUR["usa"],
                label=f"{name}, outside China",
            )
    _finish(ax, m, t, "Price (USD per kg)", "Prices")
    ax.set_ylim(bottom=0)
    return fig


def shortage_figure(m) -> Figure:
    """Magnets wanted but not delivered, by region of the user (t/month)."""
    fig, ax = _chart()
    rec, t = m.recorder, m.recorder.t
    if t:
        for grp, y in _by_region(m, rec.shortage[:t], m.idx["oem"]).items():
            ax.plot(
                _years(m, t), y, color=REGION_COLOUR.get(grp, OTHER_COLOUR), label=_group_label(grp)
            )
    _finish(ax, m, t, "Magnet shortage (t per month)", "Shortages of magnets")
    ax.set_ylim(bottom=0, top=max(ax.get_ylim()[1], 1.0))
    return fig


def production_figure(m) -> Figure:
    """Magnet production (solid) and capacity (dashed) by region, t/month."""
    fig, ax = _chart()
    rec, t = m.recorder, m.recorder.t
    if t:
        x, idx = _years(m, t), m.idx["magnet_plant"]
        made = _by_region(m, rec.produced[:t], idx)
        cap = _by_region(m, rec.cap[:t] / 12.0, idx)
        for grp, y in made.items():
            colour = REGION_COLOUR.get(grp, OTHER_COLOUR)
            ax.plot(x, y, color=colour, label=_group_label(grp))
            ax.plot(x, cap[grp], color=colour, ls=":", lw=2)
        ax.plot([], [], color="black", ls=":", lw=2, label="capacity")
    _finish(ax, m, t, "Magnets (t per month)", "Magnet production and capacity")
    ax.set_ylim(bottom=0)
    return fig


def stockpile_figure(m) -> Figure:
    """Strategic stockpiles held (t), from the stockpile instrument's series."""
    fig, ax = _chart()
    rec, t = m.recorder, m.recorder.t
    series = {k: v for k, v in rec.policy_series.items() if k[0] == "stockpile_t"}
    for (_, prod, region), arr in sorted(series.items()):
        if t:
            ax.plot(
                _years(m, t),
                np.nan_to_num(arr[:t]),
                color=REGION_COLOUR.get(region, OTHER_COLOUR),
                label=f"{_group_label(_region_group(region))} {prod}s",
            )
    _finish(ax, m, t, "Stockpile (t)", "Government stockpiles")
    if not series and t:
        _empty(ax, "No stockpile in this run:\nset the stockpile target, then Reset")
    ax.set_ylim(bottom=0, top=max(ax.get_ylim()[1], 1.0))
    return fig


def describe(c: Controls) -> str:
    """The controls of a run, in words."""
    parts = [f"world {c.world}", f"seed {c.seed}"]
    if c.export_controls:
        parts.append(f"export controls on ({c.approval_rate:.0%} of licences approved)")
    else:
        parts.append("no export controls")
    parts.append(f"stockpile {c.stockpile_days} days" if c.stockpile_days > 0 else "no stockpile")
    parts.append(
        f"Vault {c.vault_budget_busd:g} billion USD" if c.vault_budget_busd > 0 else "no Vault"
    )
    if c.recycling_rate > 0:
        parts.append(f"recycling {c.recycling_rate:.0%} by 2030")
    parts.append(f"demand growth x{c.demand_growth:.1f}")
    return "This run: " + ", ".join(parts) + "."


def headline(m) -> str:
    """One line in words: month, magnet prices and shortage."""
    rec, t = m.recorder, m.recorder.t
    if t == 0:
        return f"Start: {month_words(m.month_abs)} (nothing run yet)"
    pm = P["magnet"]
    short = float(rec.shortage[t - 1, m.idx["oem"]].sum())
    return (
        f"{month_words(m.month_abs - 1)}: magnets cost {rec.price_china[t - 1, pm]:.0f} USD/kg "
        f"in China and {rec.price_world[t - 1, pm]:.0f} USD/kg outside; "
        f"magnet shortage {short:,.0f} t this month"
    )


# ------------------------------------------------------------------------------------ page
@solara.component
def Dashboard(model: solara.Reactive):  # noqa: N802 - Solara component
    """The main area: status line, network view and four charts."""
    update_counter.get()
    cm = model.value
    with solara.Column(style={"padding": "8px", "width": "100%"}):
        solara.Text(
            "Controls apply when you press Reset. Step = one month (times 'Render Interval').",
            classes=["ndsim-note"],
        )
        for name, note in unavailable_controls().items():
            solara.Text(f"{name}: {note}", classes=["ndsim-note"])
        solara.Text(describe(cm.controls), classes=["ndsim-note", "ndsim-settings"])
        if cm.error:
            solara.Text(cm.error, classes=["ndsim-error"])
        m = cm.sim
        if m is None:
            return
        solara.Text(headline(m), classes=["ndsim-status"])
        key = (id(m), m.month_abs)
        _figure("network", network_figure(m), key)
        with solara.Columns([1, 1]):
            _figure("prices", price_figure(m), key)
            _figure("shortages", shortage_figure(m), key)
        with solara.Columns([1, 1]):
            _figure("production", production_figure(m), key)
            _figure("stockpiles", stockpile_figure(m), key)


def _figure(name: str, fig: Figure, key: Any) -> None:
    with solara.Div(classes=["ndsim-figure", f"ndsim-fig-{name}"]):
        solara.FigureMatplotlib(fig, dependencies=[key], format="png")


@solara.component
def Page():  # noqa: N802 - Solara page
    """The SolaraViz page: controls in the sidebar, the dashboard in the main area."""
    first = solara.use_memo(lambda: ClassroomModel(**asdict(Controls(world=default_world()))), [])
    model = solara.use_reactive(first)
    solara.Style(CSS)
    solara.Title("ndsim classroom")
    SolaraViz(
        model,
        components=[],
        model_params=model_params(),
        name="NdPr magnet supply chain (ndsim classroom)",
        play_interval=150,
        render_interval=1,
    )
    Dashboard(model)
