"""The classroom web app (``ndsim ui``): controls, live runs, charts and the Solara page.

Modules: :mod:`sim.app.controls` (the page's levers as world ``[policies]`` tables and the
lesson's scenario presets), :mod:`sim.app.live` (a run steered month by month),
:mod:`sim.app.charts` (ECharts options for the network and the charts) and
:mod:`sim.app.page` (the Solara page served by ``ndsim ui``).
"""
