"""Experiments at scale: sweep specs, designs, runners (local pool, Dask) and analysis.

The model knows nothing about experiments: a sweep sets world parameters by key path, runs
:class:`sim.model.SupplyChainModel` and reduces each run's tidy time series to outcomes.
"""

from sim.experiments.spec import SweepSpec, load_spec

__all__ = ["SweepSpec", "load_spec", "sweep"]


def sweep(*args, **kwargs):
    """Run a sweep (see :func:`sim.experiments.runner.sweep`)."""
    from sim.experiments.runner import sweep as _sweep

    return _sweep(*args, **kwargs)
