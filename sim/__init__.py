"""ndsim: an agent-based simulation of the neodymium (NdPr) permanent-magnet supply chain.

Quick use::

    import sim
    res = sim.run("models/classroom.toml", seed=1)
    res.timeseries.head()
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "run",
    "load_world",
    "load_scenario",
    "Scenario",
    "SupplyChainModel",
    "Results",
    "__version__",
]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    # Lazy imports keep `import sim` cheap and free of side effects.
    if name == "run":
        from sim.api import run

        return run
    if name == "load_world":
        from sim.world import load_world

        return load_world
    if name in ("load_scenario", "Scenario"):
        import sim.scenario

        return getattr(sim.scenario, name)
    if name == "SupplyChainModel":
        from sim.model import SupplyChainModel

        return SupplyChainModel
    if name == "Results":
        from sim.results import Results

        return Results
    raise AttributeError(name)
