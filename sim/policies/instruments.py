"""Built-in policy instruments (docs/policies.md).

Export controls, stockpiles, Project Vault-style financing with a price floor, subsidies, recycling
targets, production quotas and
substitution R&D.

Each ``[policies.<name>]`` table builds one instrument object held by the government of its
region (``holder``); all randomness comes from a child of ``model.rng`` spawned for the
instrument (``model.rng.spawn``), so adding an instrument leaves the model's own draws unchanged
(common random numbers across scenarios). Monthly outputs are reported
through ``series()`` as ``{(metric, product, region): value}``; strategic stock through
``stock_by_product()`` so that the mass balance holds.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from sim.calendar import parse_month
from sim.errors import UserError
from sim.network import ROLES, P
from sim.policies import schemas as S  # noqa: N812
from sim.policies.base import Instrument, LinkTerms
from sim.policies.registry import VALIDATORS, register
from sim.world import SECTORS

if TYPE_CHECKING:
    from sim.model import SupplyChainModel

DAYS_PER_MONTH = 365.25 / 12
KG_PER_T = 1000.0


def _spinning(model: SupplyChainModel) -> bool:
    return bool(getattr(model, "_spinning", False))


def _region_index(model: SupplyChainModel, region: str, where: str) -> int:
    regions = model.nodes.regions
    if region not in regions:
        raise UserError(f"{where}: unknown region {region!r}; regions are {list(regions)}")
    return regions.index(region)


def _firm_index(model: SupplyChainModel, firm: str, where: str) -> int:
    import difflib

    ids = model.nodes.ids
    oem = ROLES.index("oem")
    if firm not in ids or model.nodes.role[ids.index(firm)] == oem:
        firms = [i for k, i in enumerate(ids) if model.nodes.role[k] != oem]
        near = difflib.get_close_matches(firm, firms, n=1)
        hint = f"; did you mean {near[0]!r}?" if near else ""
        raise UserError(f"{where}: {firm!r} is no firm id{hint}")
    return ids.index(firm)


class _Holder(Instrument):
    """An instrument held by a region's government (``model.governments``)."""

    def _attach(self, model: SupplyChainModel, region: str) -> None:
        from sim.government import government_of

        self.region = region
        government_of(model, region).hold(self)


def _register_simple(name: str, cls: type, spec: type, *, named: bool) -> None:
    """Register ``[policies.<name>]`` as one instrument ``cls`` built from its parsed spec."""
    parse = S.parse_named if named else S.parse

    def build(model: SupplyChainModel, raw: Any) -> list[Instrument]:
        return [cls(model, parse(spec, raw, f"policies.{name}"))]

    register(name)(build)
    VALIDATORS[name] = lambda raw: parse(spec, raw, name)


# =============================================================================== exports
class ExportControls(_Holder):
    """Export licensing, quotas and duties on exports from one region (one object per rule).

    Covered links: seller in ``exporter`` -> buyer in another region (in ``to_regions``),
    product in ``products``. Without a valid licence a link may carry only ``exempt_share`` of
    its pre-control flow. Applications are filed for links whose buyer orders, are decided
    after a processing time drawn around ``processing_days`` and approved with a probability by
    destination region and end use (defence OEMs); licences last ``validity_months``.
    Quotas cap the covered links' total at ``quota_t_per_yr / 12`` a month (split pro rata to
    pre-control flows) plus ``leakage_share`` of the blocked pre-control flow. Duties add to the
    link tariff.
    """

    name = "export_controls"

    def __init__(self, model: SupplyChainModel, rule: S.ExportRule, where: str):
        self.spec = rule
        self.rng = model.rng.spawn(1)[0]
        self._attach(model, rule.exporter)
        nodes, links = model.nodes, model.links
        ex = _region_index(model, rule.exporter, f"{where}.exporter")
        for r in rule.to_regions:
            if r != "*":
                _region_index(model, r, f"{where}.to_regions")
        for r in rule.approval_probability_by_region:
            _region_index(model, r, f"{where}.approval_probability_by_region")
        regions = np.array(nodes.regions)
        src_r, dst_r = nodes.region[links.src], nodes.region[links.dst]
        prods = [P[p] for p in rule.products]
        mask = (src_r == ex) & (dst_r != ex) & np.isin(links.product, prods)
        if "*" not in rule.to_regions:
            mask &= np.isin(regions[dst_r], rule.to_regions)
        self.links = np.flatnonzero(mask)
        L = self.links
        self.dst = links.dst[L]
        dst_names = regions[dst_r[L]]
        prob = np.array(
            [
                rule.approval_probability_by_region.get(r, rule.approval_probability)
                for r in dst_names
            ],
            dtype=float,
        )
        oem = nodes.role[self.dst] == ROLES.index("oem")
        defence = oem & (model.state.sector[self.dst] == SECTORS.index("defence"))
        prob[defence] = rule.defence_approval_probability
        self.approval = prob
        exempt = np.full(L.size, rule.exempt_share)
        for name, share in rule.exempt_share_by_sector.items():
            exempt[oem & (model.state.sector[self.dst] == SECTORS.index(name))] = share
        self.exempt = exempt
        n = L.size
        self.licence_until = np.full(n, -1, np.int64)  # last tau the licence is valid
        self.decide_at = np.full(n, -1, np.int64)  # tau of the pending decision (-1: none)
        self.verdict = np.zeros(n, bool)
        self.next_try = np.zeros(n, np.int64)
        self.ref_flow = np.zeros(n)  # EMA of monthly shipments before the rule
        self._ref_set = False
        self.denied = 0
        self.filed = 0
        self.mean_months = rule.processing_days / rule.working_days_per_month
        self.in_force = False

    def update(self, model: SupplyChainModel) -> None:
        """Decide due applications, then file new ones and renewals."""
        self.in_force = self.spec.active(model.month_abs)
        self.denied_now = 0
        if not self.in_force or not self.spec.requires_licence or self.links.size == 0:
            return
        tau = model.tau
        due = (self.decide_at >= 0) & (self.decide_at <= tau)
        ok = due & self.verdict
        self.licence_until[ok] = tau + self.spec.validity_months - 1
        bad = due & ~self.verdict
        self.next_try[bad] = tau + self.spec.reapply_after_months
        self.denied_now = int(bad.sum())
        self.denied += self.denied_now
        self.decide_at[due] = -1
        orders = getattr(model, "orders", None)
        wants = orders[self.dst] > 1e-9 if orders is not None else np.ones(self.dst.size, bool)
        expiring = self.licence_until - tau < self.spec.renew_ahead_months
        file = (self.decide_at < 0) & expiring & (self.next_try <= tau) & wants
        k = int(file.sum())
        if k:
            draw = (
                self.mean_months * np.exp(self.rng.normal(0.0, self.spec.processing_sd_log, k))
                if self.spec.processing_sd_log > 0
                else np.full(k, self.mean_months)
            )
            months = np.maximum(np.round(draw), 0).astype(np.int64)
            self.decide_at[file] = tau + months
            self.verdict[file] = self.rng.random(k) < self.approval[file]
            self.filed += k
            # a decision due now (zero processing time) takes effect this month
            now = file & (self.decide_at <= tau)
            self.licence_until[now & self.verdict] = tau + self.spec.validity_months - 1
            self.decide_at[now] = -1

    def licensed(self, model: SupplyChainModel) -> np.ndarray:
        """Whether each covered link holds a valid licence now."""
        return self.licence_until >= model.tau

    def link_caps(self, model: SupplyChainModel) -> np.ndarray:
        """This month's cap per covered link (inf where unrestricted)."""
        spec = self.spec
        cap = np.full(self.links.size, np.inf)
        if spec.requires_licence:
            lic = (
                np.inf
                if spec.licence_cap_share is None
                else np.maximum(spec.licence_cap_share, self.exempt) * self.ref_flow
            )
            held = spec.start is not None and (
                model.month_abs < parse_month(spec.start) + spec.customs_hold_months
            )
            exempt = self.exempt * self.ref_flow * (1.0 - spec.customs_hold_share * held)
            cap = np.where(self.licensed(model), lic, exempt)
        if spec.quota_t_per_yr is not None:
            w = self.ref_flow
            share = w / w.sum() if w.sum() > 0 else np.full(w.size, 1.0 / max(w.size, 1))
            q = spec.quota_t_per_yr / 12.0 * share
            cap = np.minimum(cap, q + spec.leakage_share * np.maximum(self.ref_flow - q, 0.0))
        return cap

    def link_terms(self, model: SupplyChainModel, terms: LinkTerms) -> None:
        """Caps on covered links (licences, quota) and the export duty."""
        if not self.in_force or self.links.size == 0:
            return
        L = self.links
        terms.cap_t[L] = np.minimum(terms.cap_t[L], self.link_caps(model))
        if self.spec.export_duty_share:
            terms.duty[L] += self.spec.export_duty_share

    def after_trade(self, model: SupplyChainModel) -> None:
        """Before the rule: learn the normal flow per link (the quota/exemption base)."""
        if self.in_force or self.links.size == 0:
            return
        shipped = model.clearing.shipped_t[self.links]
        if not self._ref_set:
            self.ref_flow[:] = shipped
            self._ref_set = True
        else:
            self.ref_flow += 0.25 * (shipped - self.ref_flow)

    def series(self) -> dict[tuple[str, str, str], float]:
        """Licences active/pending and denials this month, by exporter."""
        prod = "+".join(self.spec.products)
        tau = self._tau_hint
        return {
            ("licences_active", prod, self.region): float((self.licence_until >= tau).sum()),
            ("licence_applications_pending", prod, self.region): float((self.decide_at >= 0).sum()),
            ("licences_denied", prod, self.region): float(getattr(self, "denied_now", 0)),
        }

    _tau_hint = 0


class _ExportControlsSet(Instrument):
    """All export-control rules; series summed per key."""

    name = "export_controls"

    def __init__(self, rules: list[ExportControls]):
        self.rules = rules

    def update(self, model: SupplyChainModel) -> None:
        for r in self.rules:
            r.update(model)

    def link_terms(self, model: SupplyChainModel, terms: LinkTerms) -> None:
        for r in self.rules:
            r.link_terms(model, terms)

    def after_trade(self, model: SupplyChainModel) -> None:
        for r in self.rules:
            r.after_trade(model)
            r._tau_hint = model.tau

    def series(self) -> dict[tuple[str, str, str], float]:
        out: dict[tuple[str, str, str], float] = {}
        for r in self.rules:
            for k, v in r.series().items():
                out[k] = out.get(k, 0.0) + v
        return out


@register("export_controls")
def _build_export_controls(model: SupplyChainModel, raw: Any) -> list[Instrument]:
    spec = S.parse(S.ExportControlsSpec, raw, "policies.export_controls")
    rules = [
        ExportControls(
            model,
            r,
            f"policies.export_controls.rules[{k}]" if spec.rules else "policies.export_controls",
        )
        for k, r in enumerate(spec.rule_specs())
    ]
    return [_ExportControlsSet(rules)]


VALIDATORS["export_controls"] = lambda raw: S.parse(S.ExportControlsSpec, raw, "export_controls")
