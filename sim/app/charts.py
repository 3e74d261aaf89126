"""ECharts options (plain dicts) for the page: the network and the charts, projector-sized.

ECharts is served by Solara from its asset cache (``ndsim ui`` fills it with ``npm pack``), so
the page works offline. Text is at least :data:`FONT` px; legends sit above the plotting area;
the x axis follows the play window (:func:`window`) unless the whole run is asked for.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from sim.app.live import Event, Series, region_group

FONT = 16
REGION_COLOUR = {
    "china": "#c0392b",
    "usa": "#1f5fa8",
    "eu": "#d4a000",
    "japan": "#7d3c98",
    "other": "#7f8c8d",
}
REGION_LABEL = {"china": "China", "usa": "USA", "eu": "EU", "japan": "Japan", "other": "Others"}
FLOW_COLOUR = "#95a5a6"
LICENSED_COLOUR = "#e67e22"
BLOCKED_COLOUR = "#111111"  # never a region colour
BASELINE_KEY_COLOUR = "#9a9a9a"
CHARTS = {
    "prices": "Magnet prices",
    "shortages": "Magnet shortages by region (t per month)",
    "capacity": "Magnet capacity by region (t per month)",
    "stockpiles": "Strategic stockpiles",
    "money": "Public money spent",
}
STAGE_COLUMNS = (
    ("mine", "Mines"),
    ("separator", "Separation (\u267b recycling)"),
    ("metal_maker", "Metal"),
    ("magnet_plant", "Magnets"),
    ("oem", "Users"),
)
WINDOW_MONTHS = 36


def _date(month_abs: int) -> str:
    return f"{month_abs // 12:04d}-{month_abs % 12 + 1:02d}-01"


def window(first: int, last: int, now: int, whole: bool) -> tuple[str, str]:
    """The x range: the whole run, or the last :data:`WINDOW_MONTHS` months up to ``now``."""
    if whole:
        return _date(first), _date(last + 1)
    lo = max(first, now - WINDOW_MONTHS + 1)
    hi = min(max(lo + 24, now + 1), last + 1)
    return _date(lo), _date(hi)


def _order(groups) -> list[str]:
    return sorted(groups, key=lambda g: list(REGION_COLOUR).index(g) if g in REGION_COLOUR else 9)


def _axis_text() -> dict[str, Any]:
    return {"fontSize": FONT, "color": "#222"}


def _frame(title: str, xr: tuple[str, str], ylabel: str) -> dict[str, Any]:
    return {
        "animation": False,
        "textStyle": {"fontSize": FONT},
        "title": {"text": title, "left": 4, "top": 0, "textStyle": {"fontSize": FONT + 2}},
        "legend": {
            "top": 28,
            "left": 4,
            "icon": "roundRect",
            "itemHeight": 4,
            "itemWidth": 24,
            "textStyle": {"fontSize": FONT},
        },
        "grid": {"left": 78, "right": 18, "top": 72, "bottom": 34},
        "xAxis": {"type": "time", "min": xr[0], "max": xr[1], "axisLabel": _axis_text()},
        "yAxis": {
            "type": "value",
            "name": ylabel,
            "nameLocation": "middle",
            "nameGap": 58,
            "nameTextStyle": {"fontSize": FONT},
            "axisLabel": _axis_text(),
        },
        "series": [],
    }


def _line(name: str, dates: list[str], y: np.ndarray, colour: str, **kw: Any) -> dict[str, Any]:
    return {
        "type": "line",
        "name": name,
        "showSymbol": False,
        "data": [[d, round(float(v), 3)] for d, v in zip(dates, y, strict=False)],
        "lineStyle": {"width": kw.pop("width", 3), "color": colour, **kw.pop("style", {})},
        "itemStyle": {"color": colour},
        **kw,
    }


def _faded(dates: list[str], y: np.ndarray, colour: str, grid: int | None = None) -> dict:
    extra = {} if grid is None else {"xAxisIndex": grid, "yAxisIndex": grid}
    line = _line(
        "no-policy run",
        dates,
        y,
        colour,
        width=2,
        style={"opacity": 0.4, "type": "dashed"},
        z=1,
        **extra,
    )
    line["itemStyle"] = {"color": BASELINE_KEY_COLOUR}  # its legend entry: grey, not a region
    return line


EVENT_COLOURS = {"controls": "#111111", "capacity": "#27ae60", "stockpile": "#8e44ad"}
EVENT_WORDS = {"controls": "policy", "capacity": "capacity online", "stockpile": "stock release"}


def _marks(events: list[Event], xr: tuple[str, str]) -> dict[str, Any]:
    """Vertical event marks, one per month and kind, coloured by kind (key below the charts)."""
    seen = sorted({(e.month_abs, e.kind) for e in events if e.kind in EVENT_COLOURS})
    data = [
        {"xAxis": _date(m), "lineStyle": {"color": EVENT_COLOURS[k]}}
        for (m, k) in seen
        if xr[0] <= _date(m) <= xr[1]
    ]
    return {
        "symbol": "none",
        "silent": True,
        "label": {"show": False},
        "lineStyle": {"type": "dotted", "width": 2, "opacity": 0.8},
        "data": data,
    }


@dataclass(frozen=True)
class View:
    """What every chart needs: the run so far, the baseline, events and the x range."""

    s: Series
    base: Series
    events: tuple[Event, ...]
    xr: tuple[str, str]

    @property
    def dates(self) -> list[str]:
        """The recorded months as ISO dates."""
        return [_date(int(m)) for m in self.s.months]

    @property
    def t(self) -> int:
        """Months recorded."""
        return int(self.s.months.size)


def price_chart(v: View) -> dict[str, Any]:
    """Magnet price inside and outside China (USD/kg), with the no-policy run faded."""
    o = _frame(CHARTS["prices"], v.xr, "USD per kg")
    d, t = v.dates, v.t
    o["series"] = [
        _line("inside China", d, v.s.price_china, REGION_COLOUR["china"]),
        _line("outside China", d, v.s.price_world, REGION_COLOUR["usa"]),
        _faded(d, v.base.price_china[:t], REGION_COLOUR["china"]),
        _faded(d, v.base.price_world[:t], REGION_COLOUR["usa"]),
    ]
    o["series"][0]["markLine"] = _marks(list(v.events), v.xr)
    return o


def _multiples(
    title: str, v: View, now: dict[str, np.ndarray], base: dict[str, np.ndarray], unit: str
) -> dict[str, Any]:
    """One small panel per region, each on its own y scale."""
    groups = _order(set(now) | set(base))
    n = max(len(groups), 1)
    cols = min(n, 3)
    rows = math.ceil(n / cols)
    o = _frame(title, v.xr, unit)
    o["legend"] = {"show": False}
    top, gap_x, gap_y = 34, 4.0, 12.0
    width = (100.0 - 2 - gap_x * (cols - 1)) / cols
    grids, xs, ys, titles, series = [], [], [], [o["title"]], []
    d, t = v.dates, v.t
    for k, g in enumerate(groups):
        r, c = divmod(k, cols)
        left = 2 + c * (width + gap_x)
        grids.append(
            {
                "left": f"{left:.1f}%",
                "width": f"{width:.1f}%",
                "top": top + 30 + r * (100 / rows + gap_y),
                "height": f"{100 / rows - 30:.0f}%" if rows > 1 else None,
                "bottom": 4 if rows == 1 else None,
                "containLabel": True,  # y labels of any width stay inside the panel
            }
        )
        grids[-1] = {kk: vv for kk, vv in grids[-1].items() if vv is not None}
        xs.append(
            {
                "type": "time",
                "min": v.xr[0],
                "max": v.xr[1],
                "gridIndex": k,
                "splitNumber": 2,
                "axisLabel": _axis_text(),
            }
        )
        ys.append({"type": "value", "gridIndex": k, "splitNumber": 2, "axisLabel": _axis_text()})
        titles.append(
            {
                "text": REGION_LABEL.get(g, g),
                "left": f"{left + 3:.1f}%",
                "top": top + r * (100 / rows + gap_y),
                "textStyle": {"fontSize": FONT, "color": REGION_COLOUR.get(g, "#333")},
            }
        )
        colour = REGION_COLOUR.get(g, REGION_COLOUR["other"])
        if g in now:
            line = _line(REGION_LABEL.get(g, g), d, now[g], colour, xAxisIndex=k, yAxisIndex=k)
            line["markLine"] = _marks(list(v.events), v.xr)
            series.append(line)
        if g in base:
            series.append(_faded(d, base[g][:t], colour, grid=k))
    o.update(grid=grids, xAxis=xs, yAxis=ys, title=titles, series=series)
    return o


def shortage_chart(v: View) -> dict[str, Any]:
    """Magnets wanted but not delivered (t/month), one panel per region."""
    return _multiples(CHARTS["shortages"], v, v.s.shortage, v.base.shortage, "t/month")


def capacity_chart(v: View) -> dict[str, Any]:
    """Magnet plant capacity (t/month), one panel per region."""
    return _multiples(CHARTS["capacity"], v, v.s.capacity, v.base.capacity, "t/month")


def stockpile_chart(v: View) -> dict[str, Any]:
    """Strategic magnet stock held by governments (t)."""
    o = _frame(CHARTS["stockpiles"], v.xr, "tonnes of magnets")
    d = v.dates
    for g in _order(v.s.stockpile):
        o["series"].append(
            _line(REGION_LABEL.get(g, g), d, v.s.stockpile[g], REGION_COLOUR.get(g, "#333"))
        )
    if not o["series"]:
        o["series"].append(_line("no stockpile in this run", d, np.zeros(v.t), "#bbbbbb"))
    o["series"][0]["markLine"] = _marks(list(v.events), v.xr)
    return o


def money_chart(v: View) -> dict[str, Any]:
    """Public money spent (cumulative, million USD) and Vault losses, by region."""
    o = _frame(CHARTS["money"], v.xr, "million USD")
    d = v.dates
    for g in _order(v.s.money):
        colour = REGION_COLOUR.get(g, "#333")
        o["series"].append(_line(f"{REGION_LABEL.get(g, g)} spent", d, v.s.money[g] / 1e6, colour))
        if g in v.s.vault_lost and v.s.vault_lost[g].any():
            o["series"].append(
                _line(
                    f"{REGION_LABEL.get(g, g)} Vault lost",
                    d,
                    v.s.vault_lost[g] / 1e6,
                    colour,
                    style={"type": "dotted"},
                )
            )
    if not o["series"]:
        o["series"].append(_line("no public money in this run", d, np.zeros(v.t), "#bbbbbb"))
    o["series"][0]["markLine"] = _marks(list(v.events), v.xr)
    return o


CHART_BUILDERS = {
    "prices": price_chart,
    "shortages": shortage_chart,
    "capacity": capacity_chart,
    "stockpiles": stockpile_chart,
    "money": money_chart,
}


# ---------------------------------------------------------------------------- network
@dataclass(frozen=True)
class NetworkLayout:
    """The network's fixed part (computed once per world): nodes by stage column and region.

    Firms are grouped by (stage, region group); recyclers sit in the separation column, below.
    ``link_group`` maps each model link to its (from node, to node) edge.
    """

    nodes: tuple[dict[str, Any], ...]
    edges: tuple[tuple[int, int], ...]
    link_group: np.ndarray
    node_of: np.ndarray


def network_layout(m) -> NetworkLayout:
    """Group the model's firms into the network's nodes (one per stage column and region)."""
    from sim.network import ROLES

    keys: list[tuple[int, str, bool]] = []
    node_of = np.zeros(m.nodes.n, np.int64)
    col = {role: k for k, (role, _) in enumerate(STAGE_COLUMNS)}
    col["recycler"] = col["separator"]
    for i in range(m.nodes.n):
        role = ROLES[m.nodes.role[i]]
        g = region_group(m.nodes.regions[m.nodes.region[i]])
        key = (col[role], g, role == "recycler")
        if key not in keys:
            keys.append(key)
        node_of[i] = keys.index(key)
    nodes = []
    for c in range(len(STAGE_COLUMNS)):
        here = sorted(
            [k for k in keys if k[0] == c],
            key=lambda k: (k[2], list(REGION_COLOUR).index(k[1])),
        )
        for row, k in enumerate(here):
            nodes.append(
                {
                    "key": keys.index(k),
                    "x": 100.0 + 200.0 * c,
                    "y": 60.0 + 70.0 * row,
                    "label": ("\u267b " if k[2] else "") + REGION_LABEL[k[1]],
                    "colour": REGION_COLOUR[k[1]],
                }
            )
    nodes.sort(key=lambda n: n["key"])
    src, dst = node_of[m.links.src], node_of[m.links.dst]
    pairs = sorted(set(zip(src.tolist(), dst.tolist(), strict=True)))
    index = {p: k for k, p in enumerate(pairs)}
    groups = np.array([index[(a, b)] for a, b in zip(src, dst, strict=True)], np.int64)
    return NetworkLayout(tuple(nodes), tuple(pairs), groups, node_of)


def network_chart(m, lay: NetworkLayout, title: str) -> dict[str, Any]:
    """The chain this month: node size = capacity (users: demand), arrows = shipments."""
    s = m.state
    size_t = (s.cap * s.online).astype(float)
    oem = m.idx["oem"]
    size_t[oem] = s.base_demand[oem] * 12.0 * np.asarray(m.growth_factor)[s.sector[oem]]
    node_t = np.bincount(lay.node_of, size_t, minlength=len(lay.nodes))
    flow = getattr(getattr(m, "clearing", None), "shipped_t", np.zeros(m.links.n))
    cap = m.policies.cap_t if m.policies.cap_t.size == m.links.n else np.full(m.links.n, np.inf)
    ne = len(lay.edges)
    edge_t = np.bincount(lay.link_group, flow, minlength=ne)
    capped = np.bincount(lay.link_group, np.isfinite(cap), minlength=ne) > 0
    blocked = np.bincount(lay.link_group, cap > 1e-12, minlength=ne) == 0
    fmax = max(float(edge_t.max(initial=0.0)), 1e-9)
    smax = max(float(node_t.max(initial=0.0)), 1.0)
    data = [
        {
            "name": n["label"] + f" ({n['key']})",
            "x": n["x"],
            "y": n["y"],
            "symbolSize": 34 + 30 * math.sqrt(node_t[k] / smax),
            "itemStyle": {"color": n["colour"], "borderColor": "#222", "borderWidth": 1},
            "label": {
                "show": True,
                "formatter": n["label"],
                "position": "inside",
                "fontSize": FONT,
                "fontWeight": "bold",
                "color": "#fff",
                "textBorderColor": "#000",
                "textBorderWidth": 2,
            },
        }
        for k, n in enumerate(lay.nodes)
    ]
    for c, (_, head) in enumerate(STAGE_COLUMNS):
        data.append(
            {
                "name": f"stage {c}",
                "x": 100.0 + 200.0 * c,
                "y": 5.0,
                "symbolSize": 1,
                "itemStyle": {"opacity": 0},
                "label": {
                    "show": True,
                    "formatter": head,
                    "fontSize": FONT + 1,
                    "fontWeight": "bold",
                    "position": "inside",
                    "color": "#222",
                },
            }
        )
    links = []
    for e, (a, b) in enumerate(lay.edges):
        f = float(edge_t[e])
        if blocked[e] and capped[e]:
            colour, width, kind = BLOCKED_COLOUR, 2.5, "dashed"
        elif capped[e]:
            colour, width, kind = LICENSED_COLOUR, 1.5 + 9 * f / fmax, "solid"
        elif f > 1e-9:
            colour, width, kind = FLOW_COLOUR, 1.0 + 9 * f / fmax, "solid"
        else:
            continue
        same_col = lay.nodes[a]["x"] == lay.nodes[b]["x"]
        links.append(
            {
                "source": data[a]["name"],
                "target": data[b]["name"],
                "lineStyle": {
                    "color": colour,
                    "width": round(width, 1),
                    "type": kind,
                    "opacity": 0.85,
                    "curveness": 0.35 if same_col else 0.0,
                },
            }
        )
    return {
        "animation": False,
        "title": {"text": title, "left": 4, "top": 0, "textStyle": {"fontSize": FONT + 2}},
        "series": [
            {
                "type": "graph",
                "layout": "none",
                "roam": False,
                "top": 40,
                "bottom": 24,
                "left": 60,
                "right": 60,
                "edgeSymbol": ["none", "arrow"],
                "edgeSymbolSize": 10,
                "data": data,
                "links": links,
                "z": 2,
            }
        ],
    }


def region_colours_used(m) -> list[str]:
    """Region groups present in a model (for the key below the network)."""
    return _order({region_group(r) for r in m.nodes.regions})
