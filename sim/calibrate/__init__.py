"""Calibration: fit world parameters to data with ABC-SMC (pyabc) over the sweep backends.

``spec`` (the TOML schema), ``targets`` (data series and their simulated counterparts),
``distance`` (how far a run is from the data), ``simulate`` (one run, on any backend),
``run`` (the driver: pyabc's ABC-SMC fed in batches, an append-only run store, resume),
``report`` (posterior, point estimate, figures, report.md) and ``posterior`` (using a
calibration: the ``calibration = "..."`` world key and posterior draws); ``validate`` and
``validate_report`` (``ndsim holdout``: the posterior run against held-out data, errors).
"""
