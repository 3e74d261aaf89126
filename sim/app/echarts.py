"""A lighter ECharts widget for the page: the option travels as one JSON string.

Solara's ``FigureEcharts`` takes the option as a nested dict, which reacton walks and compares
element by element on every render (thousands of data points a chart); a string is compared
once. In the browser (``echarts.vue``) the latest option is drawn once per animation frame
(updates arriving faster than the screen are coalesced) and a chart outside the window is drawn
when it scrolls into view, not on every month. ECharts itself is loaded as Solara loads it
(same version, same offline asset cache).
"""

from __future__ import annotations

import json
from typing import Any

import solara
import traitlets
from solara.components.echarts import EchartsWidget


class EchartsJsonWidget(EchartsWidget):
    """Solara's ECharts widget with the option as a JSON string (``option_json``)."""

    template_file = (__file__, "echarts.vue")
    option_json = traitlets.Unicode("{}").tag(sync=True)


def option_json(option: dict[str, Any]) -> str:
    """An ECharts option as compact JSON."""
    return json.dumps(option, separators=(",", ":"))


@solara.component
def Echarts(option_json: str, style: str) -> solara.Element:  # noqa: N802 - component
    """One chart: ``option_json`` from :func:`option_json`, ``style`` for its box."""
    return EchartsJsonWidget.element(option_json=option_json, attributes={"style": style})
