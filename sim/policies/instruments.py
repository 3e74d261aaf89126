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
from sim.network import NP, ROLES, P
from sim.policies import schemas as S  # noqa: N812
from sim.policies.base import Instrument, LinkTerms
from sim.policies.registry import VALIDATORS, register
from sim.world import PRODUCTS, SECTORS

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
        self.region = region
        self.government = next(
            (g for g in getattr(model, "governments", []) if g.region == region), None
        )
        if self.government is not None:
            held = getattr(self.government, "instruments", None)
            if held is None:
                held = []
                self.government.instruments = held
            held.append(self)


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
            cap = np.where(self.licensed(model), lic, self.exempt * self.ref_flow)
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


# ============================================================================ stockpiles
class Stockpiles(Instrument):
    """Strategic stockpiles held by governments.

    Each holder buys from sellers' unsold stock up to a target in days of national use while
    the price is at or below a trigger (within its budget), and releases
    to the region's buyers on shortage or above a price trigger; optional rotation.
    """

    name = "stockpiles"

    def __init__(self, model: SupplyChainModel, specs: dict[str, S.StockpileSpec]):
        self.holders = []
        for name, spec in specs.items():
            region = spec.region or name
            where = f"policies.stockpiles.{name}.region"
            r = _region_index(model, region, where)
            p = P[spec.product]
            buyers = np.flatnonzero((model.nodes.in_product == p) & (model.nodes.region == r))
            if buyers.size == 0:
                raise UserError(f"{where}: no buyer of {spec.product} in {region!r}")
            inlinks = np.flatnonzero(
                (model.links.product == p) & (model.nodes.region[model.links.dst] == r)
            )
            self.holders.append(
                {
                    "name": name,
                    "spec": spec,
                    "region": region,
                    "r": r,
                    "p": p,
                    "buyers": buyers,
                    "inlinks": inlinks,
                    "stock": float(spec.initial_t),
                    "spent": 0.0,
                    "revenue": 0.0,
                    "bought": 0.0,
                    "released": 0.0,
                }
            )

    def stock_by_product(self) -> np.ndarray:
        """Stock held, per product (t)."""
        out = np.zeros(NP)
        for h in self.holders:
            out[h["p"]] += h["stock"]
        return out

    @staticmethod
    def _use(model: SupplyChainModel, buyers: np.ndarray) -> np.ndarray:
        s = model.state
        oem = model.nodes.role[buyers] == ROLES.index("oem")
        return np.where(oem, s.demand_ema[buyers], s.prod_ema[buyers] * s.in_ratio[buyers])

    def _price(self, model: SupplyChainModel, h: dict[str, Any]) -> float:
        china, world = model.price_index
        dom = model.world.market.domestic_region
        v = china[h["p"]] if h["region"] == dom else world[h["p"]]
        return float(v if np.isfinite(v) else china[h["p"]])

    def after_trade(self, model: SupplyChainModel) -> None:
        """Release, rotate or buy, after the market cleared."""
        for h in self.holders:
            h["bought"] = h["released"] = 0.0
        if _spinning(model):
            return
        for h in self.holders:
            spec: S.StockpileSpec = h["spec"]
            if not spec.active(model.month_abs):
                continue
            price = self._price(model, h)
            s = model.state
            short = float(s.shortage[h["buyers"]].sum()) > 1e-9
            hot = (
                spec.release_above_usd_per_kg is not None and price >= spec.release_above_usd_per_kg
            )
            if (short and spec.release_on_shortage) or hot:
                self._release(model, h, None, price)
                continue
            if spec.rotation_share_per_yr > 0 and h["stock"] > 0:
                self._release(model, h, h["stock"] * spec.rotation_share_per_yr / 12.0, price)
            if spec.buy_below_usd_per_kg is None or price <= spec.buy_below_usd_per_kg:
                self._buy(model, h)

    def _release(
        self, model: SupplyChainModel, h: dict[str, Any], amount: float | None, price: float
    ) -> None:
        s, b = model.state, h["buyers"]
        use = self._use(model, b)
        if amount is None:
            need = np.maximum(
                use * h["spec"].release_cover_months - s.inv_in[b] - s.pipeline[b], 0.0
            )
        else:
            need = use.copy()
        total = float(need.sum())
        give_t = min(h["stock"], total if amount is None else amount)
        if give_t <= 0 or total <= 0:
            return
        give = need / total * give_t
        s.inv_in[b] += give
        h["stock"] -= float(give.sum())
        h["stock"] = max(h["stock"], 0.0)
        h["released"] += float(give.sum())
        h["revenue"] += float(give.sum()) * price * KG_PER_T

    def _buy(self, model: SupplyChainModel, h: dict[str, Any]) -> None:
        spec: S.StockpileSpec = h["spec"]
        s, links, c = model.state, model.links, model.clearing
        use_month = float(self._use(model, h["buyers"]).sum())
        target = use_month * spec.target_days / DAYS_PER_MONTH
        want = min(target - h["stock"], target / spec.build_months)
        budget_left = spec.budget_usd - h["spent"]
        if want <= 1e-9 or budget_left <= 0:
            return
        L = h["inlinks"]
        cap = model.policies.cap_t[L] if model.policies.cap_t.size else np.full(L.size, np.inf)
        room = np.maximum(cap - c.shipped_t[L], 0.0)
        open_ = room > 1e-9
        if not open_.any():
            return
        L, room = L[open_], room[open_]
        terms = model.policies.terms
        levy = terms.tariff[L] + terms.duty[L] if terms.tariff.size else 0.0
        landed = s.ask.reshape(-1)[links.slot[L]] * (1.0 + levy) + links.transport_usd_per_kg[L]
        inv = s.inv_out.reshape(-1)
        order = np.argsort(landed, kind="stable")
        for k in order:
            if want <= 1e-9 or budget_left <= 1e-6:
                break
            slot = links.slot[L[k]]
            cost = float(landed[k]) * KG_PER_T
            q = min(float(inv[slot]), float(room[k]), want, budget_left / cost)
            if q <= 1e-9:
                continue
            inv[slot] -= q
            c.sold_slot_t[slot] += q
            c.demand_slot_t[slot] += q
            h["stock"] += q
            h["bought"] += q
            h["spent"] += q * cost
            budget_left = spec.budget_usd - h["spent"]
            want -= q

    def series(self) -> dict[tuple[str, str, str], float]:
        """Stock, purchases, releases and money by holder region and product."""
        out: dict[tuple[str, str, str], float] = {}
        for h in self.holders:
            prod, reg = PRODUCTS[h["p"]], h["region"]
            for metric, key in (
                ("stockpile_t", "stock"),
                ("stockpile_bought_t", "bought"),
                ("stockpile_released_t", "released"),
                ("stockpile_spent_usd", "spent"),
                ("stockpile_revenue_usd", "revenue"),
            ):
                out[(metric, prod, reg)] = out.get((metric, prod, reg), 0.0) + h[key]
        return out


_register_simple("stockpiles", Stockpiles, S.StockpileSpec, named=True)


# ================================================================================= vault
class Vault(_Holder):
    """A Project Vault-style fund.

    Selects candidate non-Chinese midstream projects by capital cost per t/yr within its
    budget; pays tranches as milestones are met (feasibility,
    construction, commissioning, verified output); a seeded draw can fail a milestone, losing
    what was disbursed; capacity comes online at commissioning. Optional price floor.
    """

    name = "vault"

    def __init__(self, model: SupplyChainModel, spec: S.VaultSpec):
        self.spec = spec
        self.rng = model.rng.spawn(1)[0]
        _region_index(model, spec.region, "policies.vault.region")
        self._attach(model, spec.region)
        self.projects: list[dict[str, Any]] = []
        for k, c in enumerate(spec.candidates):
            where = f"policies.vault.candidates[{k}].firm"
            i = _firm_index(model, c.firm, where)
            role = ROLES[model.nodes.role[i]]
            region = model.nodes.regions[model.nodes.region[i]]
            if role not in spec.stages:
                raise UserError(f"{where}: {c.firm!r} is a {role}; the fund finances {spec.stages}")
            if region in spec.exclude_regions:
                raise UserError(f"{where}: {c.firm!r} is in excluded region {region!r}")
            self.projects.append(
                {
                    "k": k,
                    "firm": c.firm,
                    "node": i,
                    "role": role,
                    "region": region,
                    "cap": c.capacity_t_per_yr,
                    "cost": c.capacity_t_per_yr * c.capex_usd_per_t_per_yr,
                    "capex": c.capex_usd_per_t_per_yr,
                    "fail": c.failure_probability or spec.failure_probability,
                    "status": "candidate",
                    "milestone": 0,
                    "due": -1,
                    "disbursed": 0.0,
                    "waited": 0,
                }
            )
        self.committed = self.disbursed = self.lost = 0.0
        self.started = False
        self.log: list[tuple[int, str, str, float]] = []  # (month, firm, event, usd)
        fl = spec.price_floor
        self.floor_nodes = np.array(
            [
                _firm_index(model, f, "policies.vault.price_floor.firms")
                for f in (fl.firms if fl else [])
            ],
            np.int64,
        )
        self.floor_paid = 0.0
        self.floor_paid_month = 0.0

    def _select(self, model: SupplyChainModel) -> None:
        cands = [p for p in self.projects if p["status"] == "candidate"]
        cands.sort(key=lambda p: (p["capex"], p["k"]))
        for p in cands:
            if (
                self.spec.max_capex_usd_per_t_per_yr
                and p["capex"] > self.spec.max_capex_usd_per_t_per_yr
            ):
                p["status"] = "rejected"
                continue
            if self.committed + p["cost"] <= self.spec.budget_usd + 1e-6:
                self.committed += p["cost"]
                p["status"] = "active"
                p["due"] = model.tau + self.spec.milestone_months[0]
                self.log.append((model.month_abs, p["firm"], "selected", p["cost"]))

    def update(self, model: SupplyChainModel) -> None:
        """Milestones due this month: fail (seeded) or disburse; commission capacity."""
        if _spinning(model) or not self.spec.active(model.month_abs):
            return
        if not self.started:
            self.started = True
            self._select(model)
        s = model.state
        freed = False
        for p in self.projects:
            if p["status"] != "active" or p["due"] > model.tau:
                continue
            k = p["milestone"]
            name = S.MILESTONES[k]
            if name == "verified_output":
                cap_m = s.cap[p["node"]] / 12.0
                util = s.prod_ema[p["node"]] / cap_m if cap_m > 0 else 0.0
                if util < self.spec.verified_output_share:
                    p["waited"] += 1
                    if p["waited"] > self.spec.verify_grace_months:
                        p["status"] = "unverified"
                        self.committed -= p["cost"] - p["disbursed"]
                        self.log.append((model.month_abs, p["firm"], "unverified", 0.0))
                        freed = True
                    continue
            if self.rng.random() < p["fail"][k]:
                p["status"] = "failed"
                self.lost += p["disbursed"]
                self.committed -= p["cost"] - p["disbursed"]
                self.log.append((model.month_abs, p["firm"], f"failed {name}", p["disbursed"]))
                freed = True
                continue
            pay = self.spec.milestone_share[k] * p["cost"]
            pay = min(pay, self.spec.budget_usd - self.disbursed)
            p["disbursed"] += pay
            self.disbursed += pay
            self.log.append((model.month_abs, p["firm"], name, pay))
            if name == "commissioning":
                model.add_project(model.month_abs, p["node"], p["cap"], "vault")
                p["online"] = model.month_abs
            if k + 1 < len(S.MILESTONES):
                p["milestone"] = k + 1
                p["due"] = model.tau + self.spec.milestone_months[k + 1]
            else:
                p["status"] = "done"
        if freed:
            self._select(model)

    def after_trade(self, model: SupplyChainModel) -> None:
        """Price floor: pay covered sellers the gap below the floor on tonnes sold."""
        self.floor_paid_month = 0.0
        fl = self.spec.price_floor
        if (
            fl is None
            or _spinning(model)
            or not fl.active(model.month_abs)
            or self.floor_nodes.size == 0
        ):
            return
        p = P[fl.product]
        slots = self.floor_nodes * NP + p
        sold = model.clearing.sold_slot_t[slots]
        ask = model.state.ask.reshape(-1)[slots]
        pay = float((np.maximum(fl.floor_usd_per_kg - ask, 0.0) * sold).sum() * KG_PER_T)
        self.floor_paid_month = pay
        self.floor_paid += pay

    def price_received(
        self, model: SupplyChainModel, firms: np.ndarray, price: np.ndarray
    ) -> np.ndarray:
        """Covered firms plan and invest on at least the floor price (the offtake guarantee)."""
        fl = self.spec.price_floor
        if fl is None or self.floor_nodes.size == 0 or not fl.active(model.month_abs):
            return price
        covered = np.isin(firms, self.floor_nodes) & (
            model.state.out_product[firms] == P[fl.product]
        )
        return np.where(covered, np.maximum(price, fl.floor_usd_per_kg), price)

    def capacity_online(self, model: SupplyChainModel) -> dict[tuple[str, str], float]:
        """Vault-financed capacity online now, by (output product, region)."""
        out: dict[tuple[str, str], float] = {}
        for p in self.projects:
            if "online" in p and p["online"] <= model.month_abs:
                key = (S.STAGE_PRODUCT[p["role"]], p["region"])
                out[key] = out.get(key, 0.0) + p["cap"]
        return out

    def series(self) -> dict[tuple[str, str, str], float]:
        """Money (cumulative) and financed capacity by stage product and region."""
        r = self.spec.region
        out = {
            ("vault_committed_usd", "", r): self.committed,
            ("vault_disbursed_usd", "", r): self.disbursed,
            ("vault_lost_usd", "", r): self.lost,
            ("vault_exposure_usd", "", r): self.disbursed - self.lost,
            ("vault_projects_failed", "", r): float(
                sum(p["status"] == "failed" for p in self.projects)
            ),
        }
        for p in self.projects:
            key = ("vault_capacity_t_per_yr", S.STAGE_PRODUCT[p["role"]], p["region"])
            out.setdefault(key, 0.0)
            if "online" in p:
                out[key] += p["cap"]
        if self.spec.price_floor is not None:
            prod = self.spec.price_floor.product
            out[("price_floor_paid_usd", prod, r)] = self.floor_paid
        return out


_register_simple("vault", Vault, S.VaultSpec, named=False)


# ============================================================================= subsidies
class Subsidies(Instrument):
    """Subsidies for domestic processing.

    Production-linked incentives (a per-kg subsidy lowering eligible firms' conversion cost)
    while the budget lasts) and capital grants (capacity added at a month, paid from budget).
    """

    name = "subsidies"

    def __init__(self, model: SupplyChainModel, specs: dict[str, S.SubsidySpec]):
        self.schemes = []
        self.delta = np.zeros(model.nodes.n)  # cost reduction applied now, per node
        for name, spec in specs.items():
            where = f"policies.subsidies.{name}"
            r = _region_index(model, spec.region, f"{where}.region")
            if spec.firms:
                elig = np.array([_firm_index(model, f, f"{where}.firms") for f in spec.firms])
            else:
                roles = [ROLES.index(x) for x in spec.roles]
                elig = np.flatnonzero(np.isin(model.nodes.role, roles) & (model.nodes.region == r))
            spent = 0.0
            for k, g in enumerate(spec.capacity):
                i = _firm_index(model, g.firm, f"{where}.capacity[{k}].firm")
                grant = g.capacity_t_per_yr * g.grant_usd_per_t_per_yr
                if spent + grant > spec.budget_usd + 1e-6:
                    raise UserError(
                        f"{where}.capacity[{k}]: grants exceed budget_usd "
                        f"({spent + grant:.3g} > {spec.budget_usd:.3g})"
                    )
                spent += grant
                model.add_project(parse_month(g.online), i, g.capacity_t_per_yr, "subsidy")
            self.schemes.append(
                {
                    "name": name,
                    "spec": spec,
                    "region": spec.region,
                    "elig": elig.astype(np.int64),
                    "grants": spent,
                    "grants_paid": 0.0,
                    "paid": 0.0,
                    "grant_list": list(spec.capacity),
                }
            )

    def update(self, model: SupplyChainModel) -> None:
        """Apply this month's cost reduction; book capital grants as capacity arrives."""
        s = model.state
        s.conv_cost += self.delta
        self.delta[:] = 0.0
        for sc in self.schemes:
            spec: S.SubsidySpec = sc["spec"]
            if not _spinning(model):
                for g in sc["grant_list"]:
                    if parse_month(g.online) == model.month_abs:
                        sc["grants_paid"] += g.capacity_t_per_yr * g.grant_usd_per_t_per_yr
            left = spec.budget_usd - sc["grants"] - sc["paid"]
            if spec.active(model.month_abs) and spec.incentive_usd_per_kg > 0 and left > 0:
                self.delta[sc["elig"]] += spec.incentive_usd_per_kg
        np.minimum(self.delta, s.conv_cost, out=self.delta)  # costs never go negative
        s.conv_cost -= self.delta

    def after_trade(self, model: SupplyChainModel) -> None:
        """Pay the incentive on eligible output (capped by eligible volume and budget)."""
        if _spinning(model):
            return
        s = model.state
        for sc in self.schemes:
            spec: S.SubsidySpec = sc["spec"]
            if not (spec.active(model.month_abs) and spec.incentive_usd_per_kg > 0):
                continue
            out_t = float(s.produced[sc["elig"]].sum())
            if spec.max_output_t_per_yr is not None:
                out_t = min(out_t, spec.max_output_t_per_yr / 12.0)
            left = max(spec.budget_usd - sc["grants"] - sc["paid"], 0.0)
            sc["paid"] += min(out_t * spec.incentive_usd_per_kg * KG_PER_T, left)

    def series(self) -> dict[tuple[str, str, str], float]:
        """Cumulative incentive payments and grants, by region."""
        out: dict[tuple[str, str, str], float] = {}
        for sc in self.schemes:
            for metric, v in (
                ("subsidy_paid_usd", sc["paid"]),
                ("subsidy_grants_usd", sc["grants_paid"]),
            ):
                key = (metric, "", sc["region"])
                out[key] = out.get(key, 0.0) + v
        return out


_register_simple("subsidies", Subsidies, S.SubsidySpec, named=True)


# ===================================================================== recycling targets
class RecyclingTargets(Instrument):
    """Collection-rate paths.

    Recyclers in a region (or ``all``) collect at least the target rate, rising linearly from
    ``start_share`` at ``start`` to ``target_share`` at
    ``target_month`` and held after.
    """

    name = "recycling_targets"

    def __init__(self, model: SupplyChainModel, specs: dict[str, S.RecyclingTargetSpec]):
        self.paths = []
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
        self.quotas = []
        for name, spec in specs.items():
            r = _region_index(model, spec.region, f"policies.production_quotas.{name}.region")
            nodes = np.flatnonzero(
                (model.nodes.role == ROLES.index(spec.role)) & (model.nodes.region == r)
            )
            self.quotas.append(
                {
                    "name": name,
                    "spec": spec,
                    "nodes": nodes,
                    "used": 0.0,
                    "quota": spec.quota_t_per_yr,
                }
            )

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
            spec: S.ProductionQuotaSpec = qd["spec"]
            sel = np.isin(idx, qd["nodes"])
            if not sel.any() or not spec.active(m):
                continue
            cap_m = self.quota_for(spec, m // 12) / 12.0
            qd["quota"] = cap_m * 12
            per = out_t[sel] * (model.state.in_ratio[idx[sel]] if spec.basis == "input" else 1.0)
            used = float(per.sum())
            if used > cap_m:
                out_t = out_t.copy()
                out_t[sel] *= cap_m / used
                used = cap_m
            qd["used"] = used
        return out_t

    def series(self) -> dict[tuple[str, str, str], float]:
        """Quota (t/yr) and this month's quota use (t), by role output and region."""
        out = {}
        for qd in self.quotas:
            spec = qd["spec"]
            prod = S.STAGE_PRODUCT[spec.role]
            out[("production_quota_t_per_yr", prod, spec.region)] = qd["quota"]
            out[("production_quota_used_t", prod, spec.region)] = qd["used"]
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
