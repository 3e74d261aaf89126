"""The out-of-sample errors of the history calibration under the 2025 controls (issue 9, item 4).

``experiments/validate_controls_2025.toml`` runs the committed posterior
(``models/calibrated/calibrate_history``) with the licence parameters fitted to May 2025 alone
through June-September 2025. Its errors against the customs and price data are stored in
``models/calibrated/validate_controls_2025/errors.csv``; this test re-runs the hold-out and
requires the same errors, so that a change to the model or the calibration that moves them is
seen and the stored table (and the closing note quoting it) is regenerated on purpose:

    ndsim holdout experiments/validate_controls_2025.toml --workers 2
    cp -r runs/holdout/validate_controls_2025/{errors.csv,report.md,figures} \
        models/calibrated/validate_controls_2025/
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from sim.cli import main

ROOT = Path(__file__).resolve().parents[1]
STORED = ROOT / "models" / "calibrated" / "validate_controls_2025" / "errors.csv"


def test_out_of_sample_errors_do_not_drift(tmp_path):
    out = tmp_path / "holdout"
    spec = ROOT / "experiments" / "validate_controls_2025.toml"
    assert (
        main(
            [
                "holdout",
                str(spec),
                "--out",
                str(out),
                "--workers",
                "2",
                "--no-progress",
                "--no-figures",
            ]
        )
        == 0
    )
    now = pd.read_csv(out / "errors.csv")
    ref = pd.read_csv(STORED)
    assert now[["target", "period"]].equals(ref[["target", "period"]])
    assert (now["draws_ok"] == ref["draws_ok"]).all()
    for col in ("data", "median", "p05", "p95", "error"):
        np.testing.assert_allclose(now[col], ref[col], rtol=1e-9, err_msg=col)
    assert now["data_in_band"].equals(ref["data_in_band"])
