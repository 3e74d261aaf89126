"""Regression against a stored small-world result (tests/data, see regression_reference.py)."""

from __future__ import annotations

import pandas as pd

from tests.regression_reference import REFERENCE, reference_table


def test_classroom_matches_stored_result():
    stored = pd.read_parquet(REFERENCE)
    now = reference_table()
    pd.testing.assert_frame_equal(now, stored, check_exact=False, rtol=1e-7, atol=1e-6)
