"""One ledger for money and the NdPr element.

Money is double entry: nothing changes a party's balance except a posted transfer with a
payer and a payee (:meth:`Ledger.post`, vectorised over arrays of parties). Parties are the
nodes (firms and OEMs, by node index), then ``government:<region>``, ``households:<region>``
(consumers and suppliers of labour, energy and construction), ``carriers``, ``lenders`` and
the funds that instruments register (``vault:<region>``, ``stockpile:<holder>``,
``subsidy:<name>``). A fund receives its budget from its government when it is set up and may
never go below zero.

NdPr contents (t NdPr element per t of product) follow from stoichiometry: NdPr oxide is
``OXIDE_NDPR`` t NdPr per t (Nd2O3 85.7 % and Pr6O11 82.8 % metal by mass, IUPAC atomic weights,
Nd:Pr 75:25); metal and scrap are counted in t NdPr; a magnet holds
``behaviour.magnet_ndpr_share`` t per t; concentrate holds its mine's ``ndpr_share`` (t NdPr
oxide per t REO) x ``OXIDE_NDPR``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from sim.network import INPUT, NP, OUTPUTS, ROLES, P
from sim.world import OXIDE_NDPR

if TYPE_CHECKING:
    from sim.model import SupplyChainModel

KG_PER_T = 1000.0

KINDS = (
    "trade",  # buyer -> seller: goods at the seller's ask
    "border_rent",  # buyer -> seller: scarcity rent of a binding link cap
    "tariff",  # buyer -> importing government
    "export_duty",  # buyer -> exporting government
    "transport",  # buyer -> carriers
    "magnet_use",  # households -> OEM: magnets put into products, at the OEM's cost
    "operating_cost",  # firm -> households of its region: conversion cost of output
    "stockpile_purchase",  # stockpile fund -> seller (+ levies and transport as above)
    "stockpile_release",  # buyer -> stockpile fund: released material at the market price
    "budget",  # government -> its fund (budget at set-up)
    "price_floor",  # vault fund -> covered firm
    "vault_disbursement",  # vault fund -> firm (milestone tranche or gap loan)
    "loan_repayment",  # firm -> vault fund
    "subsidy",  # subsidy fund -> firm (production incentive)
    "capital_grant",  # subsidy fund -> firm
    "capex",  # firm -> households of its region (construction)
    "credit",  # lenders -> firm (debt drawn)
    "debt_repayment",  # firm -> lenders
    "interest",  # firm -> lenders
    "dividend",  # firm -> households of its region (cash above the firm's target)
)
KIND = {k: i for i, k in enumerate(KINDS)}

NET_RESIDUAL_REL = 1e-9
"""Largest sum of a netted posting taken for rounding, relative to its entries before netting.

A posting of transfers with amounts summing to ``gross`` has entries (+ at the payee, - at
the payer) whose absolute values sum to 2 x gross. Each net entry is a float64 sum of at most
N of them, and the residual a sum of the net entries, so rounding leaves at most about
(N + log2 parties) x 1.1e-16 x 2 x gross. 1e-9 covers N up to 9 million entries per party;
a real imbalance, even one of 1e-6 of what moved, is far above it. The tolerance adds 1e-9
USD for postings of nothing.
"""


@dataclass
class Transfer:
    """An instrument's payment effect, posted by the model (arrays broadcast together).

    Attributes:
        kind: One of :data:`KINDS`.
        payer: Party index (or array of indices).
        payee: Party index (or array of indices).
        usd: Amount(s), >= 0.
    """

    kind: str
    payer: int | np.ndarray
    payee: int | np.ndarray
    usd: float | np.ndarray


@dataclass
class Capacity:
    """Capacity an instrument commissions at a firm now (e.g. a Vault project).

    Attributes:
        node: Firm index.
        capacity_t_per_yr: Capacity added.
        origin: Label recorded with the change (``vault``).
    """

    node: int
    capacity_t_per_yr: float
    origin: str


@dataclass
class Delivery:
    """Goods an instrument ships to buyers (nodes); they arrive after ``lead_months``.

    Attributes:
        product: Product index.
        nodes: Receiving node indices.
        tonnes: Tonnes per receiving node.
        lead_months: Months in transit (>= 1).
        source: Label of the sender in ``flows`` (e.g. ``stockpile:usa``).
        source_region: Region of the sender.
        value_usd: What each receiver pays for it (reported in ``flows``).
    """

    product: int
    nodes: np.ndarray
    tonnes: np.ndarray
    lead_months: int
    source: str
    source_region: str
    value_usd: np.ndarray


class Ledger:
    """Balances of every party (USD, cumulative net receipts) and the entries posted.

    Postings are buffered and applied together when a balance is read, so a month's many
    array postings cost one ``bincount``.

    Attributes:
        parties: Party names; the first ``n_nodes`` are node ids.
        record: Whether to keep the entries (for ``transfers.parquet``).
        rows: Kept entries: (month row, payer, payee, kind, usd) arrays.
        funds: Parties whose balance may never go below zero.
        month_row: Recorded month the postings belong to (-1: not reported).
    """

    def __init__(self, parties: list[str], n_nodes: int, *, record: bool = True):
        self.parties = list(parties)
        self.n_nodes = n_nodes
        self.record = record
        self.index = {p: i for i, p in enumerate(self.parties)}
        self._balance = np.zeros(len(self.parties))
        self._buf: list[tuple[np.ndarray, np.ndarray]] = []  # (party, signed USD)
        self.rows: list[tuple[int, np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []
        self.funds: list[int] = []
        self.budget: dict[int, float] = {}  # net budget each fund received from its government
        self.month_row = -1
        self._kinds: dict[tuple[str, int], np.ndarray] = {}

    @property
    def balance(self) -> np.ndarray:
        """Net USD received since the start of the run, per party."""
        if self._buf:
            self._flush()
        return self._balance

    def _flush(self) -> None:
        who = np.concatenate([e[0] for e in self._buf])
        usd = np.concatenate([e[1] for e in self._buf])
        self._buf.clear()
        self._balance += np.bincount(who, usd, minlength=self._balance.size)
        if self.funds:
            low = self._balance[self.funds]
            if low.min() < -1e-6 * max(1.0, float(np.abs(usd).sum())):
                worst = self.funds[int(np.argmin(low))]
                raise ValueError(f"ledger: {self.parties[worst]} paid more than it held")

    def mark_opening(self) -> None:
        """Remember balances and entries now (the start of the recorded period)."""
        self.opening = self.balance.copy()
        self.rows_at_opening = len(self.rows)

    def net_of_rows(self, start: int = 0) -> np.ndarray:
        """Net receipts per party of the kept entries from ``rows[start]`` on."""
        n = self.balance.size
        net = np.zeros(n)
        for _, payer, payee, _, usd in self.rows[start:]:
            net += np.bincount(payee, usd, minlength=n) - np.bincount(payer, usd, minlength=n)
        return net

    def party(self, name: str) -> int:
        """Index of party ``name``, added if new."""
        k = self.index.get(name)
        if k is None:
            k = len(self.parties)
            self.parties.append(name)
            self.index[name] = k
            self._balance = np.append(self.balance, 0.0)
        return k

    def fund(self, name: str, government: str, budget_usd: float) -> int:
        """Register a budget-limited fund, paid its budget by ``government`` now.

        A fund registered again (an instrument re-stated mid-run) is topped up or drawn down
        by its government so that what it has paid out plus what it holds is the new budget.
        """
        k = self.party(name)
        gov = self.party(government)
        if k not in self.funds:
            self.funds.append(k)
            self.budget[k] = 0.0
        paid_out = self.budget[k] - self.balance[k]
        change = max(budget_usd - paid_out, 0.0) - self.balance[k]
        if change > 0:
            self.post("budget", gov, k, change)
        elif change < 0:
            self.post("budget", k, gov, -change)
        self.budget[k] += change
        return k

    def available(self, party: int) -> float:
        """Money a party holds now (funds: budget left)."""
        return float(self.balance[party])

    def post(
        self,
        kind: str | np.ndarray,
        payer: int | np.ndarray,
        payee: int | np.ndarray,
        usd: float | np.ndarray,
    ) -> None:
        """Post transfers; ``payer``, ``payee``, ``usd`` (and an array ``kind``) broadcast.

        Raises:
            ValueError: On a negative or non-finite amount; when balances are next read, if
                a fund paid more than it held.
        """
        usd = np.asarray(usd, dtype=float).reshape(-1)
        n = usd.size
        if n == 0:
            return
        payer_a = np.asarray(payer, dtype=np.int64).reshape(-1)
        payee_a = np.asarray(payee, dtype=np.int64).reshape(-1)
        if payer_a.size != n:
            payer_a = np.broadcast_to(payer_a, (n,))
        if payee_a.size != n:
            payee_a = np.broadcast_to(payee_a, (n,))
        if usd.min() < 0 or not np.isfinite(usd.sum()):
            raise ValueError(f"ledger: {kind} amounts must be finite and >= 0")
        self._buf.append((payee_a, usd))
        self._buf.append((payer_a, -usd))
        self.keep(kind, payer_a, payee_a, usd)

    def keep(
        self, kind: str | np.ndarray, payer: np.ndarray, payee: np.ndarray, usd: np.ndarray
    ) -> None:
        """Keep entries for ``transfers.parquet`` (when recording) without touching balances.

        Used with :meth:`post_net`, which applies the same transfers netted per party.
        """
        if self.record and self.month_row >= 0:
            if isinstance(kind, str):  # one constant array per (kind, size): rows share it
                kinds = self._kinds.get((kind, usd.size))
                if kinds is None:
                    kinds = self._kinds[kind, usd.size] = np.full(usd.size, KIND[kind], np.int64)
            else:
                kinds = np.asarray(kind, np.int64).reshape(-1)
            self.rows.append((self.month_row, payer, payee, kinds, usd))

    def post_net(self, net: np.ndarray, gross_usd: float) -> None:
        """Apply transfers already netted per party (a dense signed vector that sums to zero).

        The hot paths (trade, running costs, settling) post this way, and :meth:`keep` their
        entries when recording: the same money, fewer array operations.

        Netting leaves a rounding residual that scales with the amounts netted, not with the
        net: a firm that borrows what it pays in interest nets to about zero, yet its two
        transfers may move hundreds of millions of USD. So the residual is judged against the
        entries before netting, twice ``gross_usd`` (see :data:`NET_RESIDUAL_REL`).

        Args:
            net: Net USD received per party (parties beyond its size receive nothing).
            gross_usd: Sum of the amounts of the transfers netted into ``net`` (>= 0).

        Raises:
            ValueError: If ``net`` does not sum to zero within rounding of ``gross_usd``.
        """
        residual = float(np.add.reduce(net))
        if not abs(residual) <= NET_RESIDUAL_REL * (2.0 * gross_usd + 1.0):  # NaN fails
            raise ValueError(
                f"ledger: netted transfers do not balance ({residual:.6g} USD off "
                f"{gross_usd:.6g} USD transferred)"
            )
        self._balance[: net.size] += net

    def post_effects(self, effects: list[Transfer]) -> None:
        """Post the transfers instruments returned."""
        for e in effects:
            self.post(e.kind, e.payer, e.payee, e.usd)


def ndpr_content(model: SupplyChainModel) -> np.ndarray:
    """T NdPr per t of each product (concentrate: the capacity-weighted world average)."""
    c = np.ones(NP)
    c[P["oxide"]] = OXIDE_NDPR
    c[P["magnet"]] = model.world.behaviour.magnet_ndpr_share
    c[P["concentrate"]] = model.state.feed_share0.max(initial=0.2) * OXIDE_NDPR
    return c


@dataclass
class NdprTally:
    """NdPr element flows of the current month (t NdPr), world totals.

    Attributes:
        mined: NdPr in concentrate mined.
        recovered: NdPr in end-of-life scrap collected by recyclers.
        lost: Process losses, by stage (separator, metal_maker, magnet_plant, recycler).
        to_products: NdPr in magnets OEMs put into products.
    """

    mined: float = 0.0
    recovered: float = 0.0
    lost: np.ndarray = field(default_factory=lambda: np.zeros(4))
    to_products: float = 0.0


LOSS_STAGES = ("separator", "metal_maker", "magnet_plant", "recycler")


def tally_ndpr(model: SupplyChainModel) -> NdprTally:
    """This month's NdPr flows from production, collection and use (after those phases).

    Losses are measured per stage from what each firm consumed and produced, with the contents
    above; a recipe that makes more NdPr than it takes in shows as a negative loss.
    """
    s, k = model.state, model.ndpr_contents
    cin = k.cin  # separators' entries are this month's (set below), the rest constant
    sep = model.sep_span
    # separators' input ratio is 1 / (feed NdPr oxide share x recovery) for this month's feed
    ratio = s.in_ratio[sep] * s.recovery[sep]
    cin[sep] = np.divide(OXIDE_NDPR, ratio, out=np.zeros(ratio.size), where=ratio > 0)
    loss = s.consumed * cin
    loss -= s.produced * (k.cout + s.scrap_ratio)
    return NdprTally(
        mined=float(s.produced @ k.mined),
        recovered=float(s.collected.sum()),
        lost=np.bincount(k.stage, loss, minlength=len(LOSS_STAGES) + 1)[: len(LOSS_STAGES)],
        to_products=float(s.consumed @ k.used),
    )


@dataclass
class NdprContents:
    """t NdPr per t of what each stock holds (constant over a run).

    Attributes:
        out: Per node and product, output stocks (mines: their own concentrate).
        inp: Per node, input stocks (separators: 0; their feed is tracked in ``feed_ndpr``).
        link: Per link, goods in transit.
        product: Per product (stockpiles, deliveries).
        mined: Per node, NdPr per t output of mines (0 elsewhere).
        used: Per node, NdPr per t of magnets OEMs use (0 elsewhere).
        cin: Per node, NdPr per t of input consumed by converters (separators: set monthly).
        cout: Per node, NdPr per t of main output of converters (magnet plants: in the magnet;
            their swarf is added from ``scrap_ratio``).
        stage: Per node, index into ``LOSS_STAGES`` (``len(LOSS_STAGES)``: not a converter).
    """

    out: np.ndarray
    inp: np.ndarray
    link: np.ndarray
    product: np.ndarray
    mined: np.ndarray
    used: np.ndarray
    cin: np.ndarray
    cout: np.ndarray
    stage: np.ndarray


def ndpr_contents(model: SupplyChainModel) -> NdprContents:
    """The contents tables of a built model."""
    s, links = model.state, model.links
    c = ndpr_content(model)
    conc = P["concentrate"]
    mines = model.idx["mine"]
    out = np.tile(c, (s.inv_out.shape[0], 1))
    out[mines, conc] = s.ore_ndpr_share[mines] * OXIDE_NDPR
    buyers = (s.in_product >= 0) & (model.nodes.role != ROLES.index("separator"))
    inp = np.zeros(s.inv_in.size)
    inp[buyers] = c[s.in_product[buyers]]
    link = np.where(links.product == conc, model.link_ndpr_share * OXIDE_NDPR, c[links.product])
    n = model.nodes.n
    mined = np.zeros(n)
    mined[mines] = s.ore_ndpr_share[mines] * OXIDE_NDPR
    used = np.zeros(n)
    used[model.idx["oem"]] = c[P["magnet"]]
    cin, cout = np.zeros(n), np.zeros(n)
    stage = np.full(n, len(LOSS_STAGES), np.int64)
    for k, role in enumerate(LOSS_STAGES):
        idx = model.idx[role]
        stage[idx] = k
        cin[idx] = c[P[INPUT[role]]]
        cout[idx] = c[P[OUTPUTS[role][0]]]
    return NdprContents(out, inp, link, c, mined, used, cin, cout, stage)


@dataclass
class Stocks:
    """Goods outside firms' own stocks now, computed once for every total that needs them.

    Attributes:
        transit_link: Tonnes in transit per link.
        transit_p: Tonnes in transit over links, per product.
        delivered_p: Tonnes instruments have shipped that are still in transit, per product.
        policy_p: Tonnes held by instruments (strategic stockpiles), per product.
    """

    transit_link: np.ndarray
    transit_p: np.ndarray
    delivered_p: np.ndarray
    policy_p: np.ndarray


def stocks_now(model: SupplyChainModel) -> Stocks:
    """Transit, deliveries and instruments' stocks of the model now."""
    transit_link = model.transit.sum(axis=0)
    return Stocks(
        transit_link=transit_link,
        transit_p=np.bincount(model.links.product, transit_link, minlength=NP),
        delivered_p=model.delivery_stock_by_product(),
        policy_p=model.policies_stock_by_product(),
    )


def tonnes_by_product(model: SupplyChainModel, st: Stocks) -> np.ndarray:
    """Total stock per product: firms' input and output stocks, transit, stockpiles (t)."""
    s = model.state
    inv = s.inv_out.sum(axis=0)
    inv += np.bincount(s.in_product[model.buyer_span], s.inv_in[model.buyer_span], minlength=NP)
    inv += st.transit_p
    inv += st.delivered_p
    inv += st.policy_p
    return inv


def ndpr_stock_t(model: SupplyChainModel, st: Stocks | None = None) -> float:
    """NdPr in every stock: firms' input and output stocks, transit, stockpiles (t NdPr)."""
    if st is None:
        st = stocks_now(model)
    s = model.state
    k = model.ndpr_contents
    total = float(np.vdot(s.inv_out, k.out)) + float(s.inv_in @ k.inp)
    total += float(s.feed_ndpr[model.sep_span].sum()) * OXIDE_NDPR
    total += float(st.transit_link @ k.link)
    total += float(st.delivered_p @ k.product)
    total += float(st.policy_p @ k.product)
    return total
