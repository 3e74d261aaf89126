"""Import tariffs and duties (ad valorem), held by the importing region's government."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from sim.calendar import parse_month
from sim.network import P
from sim.policies.base import Instrument, LinkTerms
from sim.world import TariffSpec

if TYPE_CHECKING:
    from sim.model import SupplyChainModel


class Tariffs(Instrument):
    """All import tariffs of one government; each applies to links into its region.

    Each rule is known to buyers from its ``announced`` month, which :meth:`tariff_outlook`
    uses for buyers' expectations of next month's tariff; a rule without one takes them by
    surprise when it starts and when it ends.
    """

    name = "tariffs"

    def __init__(self, model: SupplyChainModel, region: str, specs: list[TariffSpec]):
        self.region = region
        self.rules: list[tuple[int, int, float, np.ndarray, int]] = []
        links, nodes = model.links, model.nodes
        regions = np.array(nodes.regions)
        into = regions[nodes.region[links.dst]] == region
        src_region = regions[nodes.region[links.src]]
        for spec in specs:
            start = parse_month(spec.start) if spec.start else -(10**9)
            end = parse_month(spec.end) if spec.end else 10**9
            announced = parse_month(spec.announced) if spec.announced else 10**9
            if "any_region" in spec.from_regions:
                from_ok = src_region != region
            else:
                from_ok = np.isin(src_region, spec.from_regions)
            mask = into & from_ok & (links.product == P[spec.product])
            self.rules.append((start, end, spec.rate, np.flatnonzero(mask), announced))

    def link_terms(self, model: SupplyChainModel, terms: LinkTerms) -> None:
        """Add every tariff in force this month to the links it covers."""
        m = model.month_abs
        for start, end, rate, links, _ in self.rules:
            if start <= m <= end:
                terms.tariff[links] += rate

    def tariff_outlook(self, model: SupplyChainModel) -> np.ndarray | None:
        """Next month's tariff as buyers expect it, less this month's, per link.

        Buyers expect the tariffs in force to persist, except for changes already announced:
        a link's change next month (a rule starting then, or one ending now) counts only if
        every rule starting or ending there has been announced by this month.
        """
        m, n = model.month_abs, model.links.n
        if not self.rules:
            return None
        change = np.zeros(n)
        unknown = np.zeros(n, bool)
        for start, end, rate, links, announced in self.rules:
            starts, ends = start == m + 1, end == m
            if starts or ends:
                change[links] += rate if starts else -rate
                if announced > m:
                    unknown[links] = True
        return np.where(unknown, 0.0, change)
