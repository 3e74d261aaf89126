"""Monthly calendar helpers: months are counted as integers ``year * 12 + (month - 1)``."""

from __future__ import annotations

import re

import numpy as np

_MONTH_RE = re.compile(r"^(\d{4})-(\d{2})$")


def parse_month(text: str) -> int:
    """Parse ``YYYY-MM`` into an absolute month index.

    Args:
        text: A month such as ``"2025-04"``.

    Returns:
        ``year * 12 + month - 1``.

    Raises:
        ValueError: If the text is not a valid ``YYYY-MM`` month.
    """
    m = _MONTH_RE.match(str(text).strip())
    if not m or not 1 <= int(m.group(2)) <= 12:
        raise ValueError(f"expected a month as YYYY-MM, got {text!r}")
    return int(m.group(1)) * 12 + int(m.group(2)) - 1


def format_month(index: int) -> str:
    """Format an absolute month index as ``YYYY-MM``."""
    return f"{index // 12:04d}-{index % 12 + 1:02d}"


def month_starts(first: int, count: int) -> np.ndarray:
    """Return ``count`` month-start dates (``datetime64[ns]``) from absolute month ``first``."""
    months = np.arange(first, first + count)
    return (
        ((months // 12 - 1970) * 12 + months % 12).astype("datetime64[M]").astype("datetime64[ns]")
    )
