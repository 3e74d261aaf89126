"""Programmes acting on firms' and OEMs' rules: recycling, production quotas, substitution R&D.

Each is held by the government of its region (``world`` when world-wide).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from sim.calendar import parse_month
from sim.errors import UserError
from sim.network import ROLES
from sim.policies import schemas as S  # noqa: N812
from sim.policies.base import Instrument
from sim.policies.instruments import _region_index, _register_simple
from sim.world import SECTORS

if TYPE_CHECKING:
    from sim.model import SupplyChainModel


@dataclass
class Quota:
    """One production quota: its table, the firms it covers and this month's use.

    Attributes:
        name: Table name.
        spec: Parsed table.
        nodes: Covered firm indices.
        used_t: Output (or input) counted against the quota this month.
        quota_t_per_yr: Quota in force.
    """

    name: str
    spec: S.ProductionQuotaSpec
    nodes: np.ndarray
    used_t: float
    quota_t_per_yr: float


# ===================================================================== recycling targets
class RecyclingTargets(Instrument):
    """Collection-rate paths.

    Recyclers in a region (or ``all``) collect at least the target rate, rising linearly from
    ``start_share`` at ``start`` to ``target_share`` at
    ``target_month`` and held after.
    """

    name = "recycling_targets"

    def __init__(self, model: SupplyChainModel, specs: dict[str, S.RecyclingTargetSpec]):
        self.paths: list[tuple[int, S.RecyclingTargetSpec]] = []
        self.regions = [name if name != "all" else "world" for name in specs]
        for name, spec in specs.items():
            r = (
                -1
                if name == "all"
                else _region_index(model, name, f"policies.recycling_targets.{name}")
            )
            self.paths.append((r, spec))
        self.now: dict[str, float] = {}

    def _target(self, spec: S.RecyclingTargetSpec, m: int, own: np.ndarray) -> np.ndarray:
        t0 = parse_month(spec.start) if spec.start else m
        t1 = parse_month(spec.target_month)
        x0 = own if spec.start_share is None else np.full(own.size, spec.start_share)
        if m >= t1 or t1 <= t0:
            return np.full(own.size, spec.target_share)
        f = (m - t0) / (t1 - t0)
        return x0 + f * (spec.target_share - x0)

    def collection_rate(
        self, model: SupplyChainModel, idx: np.ndarray, rate: np.ndarray
    ) -> np.ndarray:
        """At least the target rate for recyclers in covered regions."""
        m = model.month_abs
        out = rate.copy()
        own = model.state.collection_rate[idx]
        for r, spec in self.paths:
            if not spec.active(m):
                continue
            sel = np.ones(idx.size, bool) if r < 0 else model.state.region[idx] == r
            if sel.any():
                tgt = self._target(spec, m, own)
                out[sel] = np.maximum(out[sel], tgt[sel])
        regions = model.nodes.regions
        self.now = {
            regions[k]: float(out[model.state.region[idx] == k].mean())
            for k in np.unique(model.state.region[idx])
        }
        return out

    def series(self) -> dict[tuple[str, str, str], float]:
        """Collection rate in force, by region of recyclers."""
        return {("collection_rate_share", "scrap", r): v for r, v in self.now.items()}


_register_simple("recycling_targets", RecyclingTargets, S.RecyclingTargetSpec, named=True)


# ===================================================================== production quotas
class ProductionQuotas(Instrument):
    """Production quotas.

    Caps the monthly output (or input, ``basis='input'``) of one role in one region at
    ``quota_t_per_yr / 12`` (by year if ``by_year``), scaling firms down pro rata.
    """

    name = "production_quotas"

    def __init__(self, model: SupplyChainModel, specs: dict[str, S.ProductionQuotaSpec]):
        self.quotas: list[Quota] = []
        self.regions = sorted({spec.region for spec in specs.values()})
        for name, spec in specs.items():
            r = _region_index(model, spec.region, f"policies.production_quotas.{name}.region")
            nodes = np.flatnonzero(
                (model.nodes.role == ROLES.index(spec.role)) & (model.nodes.region == r)
            )
            self.quotas.append(Quota(name, spec, nodes, 0.0, spec.quota_t_per_yr))

    @staticmethod
    def quota_for(spec: S.ProductionQuotaSpec, year: int) -> float:
        """The annual quota in force in ``year``."""
        q = spec.quota_t_per_yr
        for y, v in spec.by_year:
            if y <= year:
                q = v
        return q

    def cap_production(
        self, model: SupplyChainModel, idx: np.ndarray, out_t: np.ndarray
    ) -> np.ndarray:
        """Scale output of covered firms down to the monthly quota."""
        m = model.month_abs
        for qd in self.quotas:
            spec = qd.spec
            sel = np.isin(idx, qd.nodes)
            if not sel.any() or not spec.active(m):
                continue
            cap_m = self.quota_for(spec, m // 12) / 12.0
            qd.quota_t_per_yr = cap_m * 12
            per = out_t[sel] * (model.state.in_ratio[idx[sel]] if spec.basis == "input" else 1.0)
            used = float(per.sum())
            if used > cap_m:
                out_t = out_t.copy()
                out_t[sel] *= cap_m / used
                used = cap_m
            qd.used_t = used
        return out_t

    def series(self) -> dict[tuple[str, str, str], float]:
        """Quota (t/yr) and this month's quota use (t), by role output and region."""
        out = {}
        for qd in self.quotas:
            prod = S.STAGE_PRODUCT[qd.spec.role]
            out[("production_quota_t_per_yr", prod, qd.spec.region)] = qd.quota_t_per_yr
            out[("production_quota_used_t", prod, qd.spec.region)] = qd.used_t
        return out


_register_simple("production_quotas", ProductionQuotas, S.ProductionQuotaSpec, named=True)


# ====================================================================== substitution R&D
class SubstitutionRD(Instrument):
    """Substitution R&D.

    Raises the OEMs' thrifting/substitution rate by ``rate_multiplier`` while in force and
    their maximum substitutable share by ``extra_substitution_max_share``.
    """

    name = "substitution_rd"

    def __init__(self, model: SupplyChainModel, spec: S.SubstitutionRDSpec):
        self.spec = spec
        self.region = spec.region or "world"
        bad = [x for x in spec.sectors if x not in SECTORS]
        if bad:
            raise UserError(f"policies.substitution_rd.sectors: unknown sector(s) {bad}")
        oem = model.idx["oem"]
        sec = (
            [SECTORS.index(x) for x in spec.sectors] if spec.sectors else list(range(len(SECTORS)))
        )
        self.oems = oem[np.isin(model.state.sector[oem], sec)]
        self.applied = 0.0
        self.on = False

    def update(self, model: SupplyChainModel) -> None:
        """Switch the extra substitutable share on or off."""
        self.on = self.spec.active(model.month_abs)
        want = self.spec.extra_substitution_max_share if self.on else 0.0
        if want != self.applied:
            tm = model.state.theta_max
            tm[self.oems] = np.clip(tm[self.oems] + want - self.applied, 0.0, 1.0)
            self.applied = want

    def substitution_boost(self, model: SupplyChainModel) -> float:
        """The rate multiplier while in force."""
        return self.spec.rate_multiplier if self.on else 1.0


_register_simple("substitution_rd", SubstitutionRD, S.SubstitutionRDSpec, named=False)
