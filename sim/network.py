"""The trade network: nodes (agents) and permitted supplier -> buyer links.

networkx holds the topology of record (``build_graph``); the monthly market runs over the flat
numpy arrays of :class:`Links`, rebuilt only when the topology changes.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import networkx as nx
import numpy as np

from sim.world import PRODUCTS, NetworkSpec

ROLES: tuple[str, ...] = ("mine", "separator", "metal_maker", "magnet_plant", "recycler", "oem")
"""Roles of nodes in the trade network, in node order."""

OUTPUTS: dict[str, tuple[str, ...]] = {
    "mine": ("concentrate",),
    "separator": ("oxide",),
    "metal_maker": ("metal",),
    "magnet_plant": ("magnet", "scrap"),
    "recycler": ("oxide",),
    "oem": (),
}
INPUT: dict[str, str | None] = {
    "mine": None,
    "separator": "concentrate",
    "metal_maker": "oxide",
    "magnet_plant": "metal",
    "recycler": "scrap",
    "oem": "magnet",
}
P = {name: k for k, name in enumerate(PRODUCTS)}
NP = len(PRODUCTS)


@dataclass(frozen=True)
class Nodes:
    """Static node table (one row per trading agent), in a fixed, sorted order."""

    ids: tuple[str, ...]
    role: np.ndarray  # int index into ROLES
    region: np.ndarray  # int index into ``regions``
    regions: tuple[str, ...]
    in_product: np.ndarray  # int product index, -1 for none

    @cached_property
    def n(self) -> int:
        """Number of nodes."""
        return len(self.ids)


@dataclass
class Links:
    """Flat link arrays, sorted by buyer then seller then product (deterministic order).

    Attributes:
        src, dst: Seller and buyer node indices.
        product: Product index carried.
        slot: ``src * NP + product``: the seller's offer slot.
        lead_months: Months in transit.
        transport_usd_per_kg: Transport cost per kg.
        international: Whether the link crosses a region border.
        seg_start: Start of each buyer's run of links.
        seg_buyer: The buyer of each run.
        offer_slots: The offer slots links sell from, sorted, and each link's position in them
            (market clearing works over these, not over every node x product slot).
    """

    src: np.ndarray
    dst: np.ndarray
    product: np.ndarray
    slot: np.ndarray
    lead_months: np.ndarray
    transport_usd_per_kg: np.ndarray
    international: np.ndarray
    seg_start: np.ndarray
    seg_buyer: np.ndarray

    @cached_property
    def n(self) -> int:
        """Number of links (the arrays are fixed once built)."""
        return int(self.src.size)

    @cached_property
    def offer_slots(self) -> tuple[np.ndarray, np.ndarray]:
        """The distinct offer slots of the links (sorted) and each link's index into them."""
        return np.unique(self.slot, return_inverse=True)


def make_links(
    nodes: Nodes, spec: NetworkSpec, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Choose permitted links (src, dst, product) according to the network spec.

    With ``suppliers_per_buyer == 0`` every seller of a product links to every buyer of it
    (minus excluded region pairs); otherwise each buyer draws that many distinct sellers from
    the model's generator (used for large synthetic worlds).
    """
    role_names = np.array(ROLES)[nodes.role]
    regions = np.array(nodes.regions)
    srcs, dsts, prods = [], [], []
    for prod in PRODUCTS:
        p = P[prod]
        sellers = np.flatnonzero([prod in OUTPUTS[r] for r in role_names])
        buyers = np.flatnonzero(nodes.in_product == p)
        if sellers.size == 0 or buyers.size == 0:
            continue
        k = spec.suppliers_per_buyer
        if k == 0 or k >= sellers.size:
            s = np.tile(sellers, buyers.size)
            d = np.repeat(buyers, sellers.size)
        else:
            # k distinct sellers per buyer: sort random keys per row (vectorised, seeded)
            keys = rng.random((buyers.size, sellers.size)) if sellers.size <= 64 else None
            if keys is not None:
                pick = np.argsort(keys, axis=1)[:, :k]
            else:
                pick = _distinct_draws(rng, buyers.size, sellers.size, k)
            s = sellers[pick.ravel()]
            d = np.repeat(buyers, k)
        if spec.exclude:
            keep = np.ones(s.size, bool)
            for rule in spec.exclude:
                if rule.product not in ("*", prod):
                    continue
                hit = np.ones(s.size, bool)
                if rule.source_region != "*":
                    hit &= regions[nodes.region[s]] == rule.source_region
                if rule.target_region != "*":
                    hit &= regions[nodes.region[d]] == rule.target_region
                keep &= ~hit
            s, d = s[keep], d[keep]
        srcs.append(s)
        dsts.append(d)
        prods.append(np.full(s.size, p))
    if not srcs:
        e = np.zeros(0, np.int64)
        return e, e, e
    return np.concatenate(srcs), np.concatenate(dsts), np.concatenate(prods)


def _distinct_draws(rng: np.random.Generator, rows: int, n: int, k: int) -> np.ndarray:
    """``k`` distinct integers in ``[0, n)`` per row, vectorised (rejection of duplicates)."""
    out = rng.integers(0, n, size=(rows, k))
    for _ in range(100):
        srt = np.sort(out, axis=1)
        dup_rows = np.flatnonzero((srt[:, 1:] == srt[:, :-1]).any(axis=1))
        if dup_rows.size == 0:
            return out
        out[dup_rows] = rng.integers(0, n, size=(dup_rows.size, k))
    raise RuntimeError("could not draw distinct suppliers")


def build_links(
    nodes: Nodes, spec: NetworkSpec, src: np.ndarray, dst: np.ndarray, product: np.ndarray
) -> Links:
    """Turn chosen (src, dst, product) triples into sorted, costed link arrays."""
    order = np.lexsort((product, src, dst))
    src, dst, product = src[order], dst[order], product[order]
    intl = nodes.region[src] != nodes.region[dst]
    lead = np.where(intl, spec.international_lead_time_months, spec.domestic_lead_time_months)
    transport = np.where(
        intl, spec.international_transport_usd_per_kg, spec.domestic_transport_usd_per_kg
    )
    conc = product == P["concentrate"]
    transport = np.where(conc & intl, spec.concentrate_transport_usd_per_kg, transport)
    transport = np.where(conc & ~intl, spec.domestic_transport_usd_per_kg * 0.5, transport)
    if dst.size:
        change = np.flatnonzero(np.diff(dst)) + 1
        seg_start = np.concatenate([[0], change]).astype(np.int64)
    else:
        seg_start = np.zeros(0, np.int64)
    return Links(
        src=src.astype(np.int64),
        dst=dst.astype(np.int64),
        product=product.astype(np.int64),
        slot=(src * NP + product).astype(np.int64),
        lead_months=lead.astype(np.int64),
        transport_usd_per_kg=transport.astype(float),
        international=intl,
        seg_start=seg_start,
        seg_buyer=dst[seg_start] if dst.size else seg_start,
    )


STAGE_X = {"mine": 0, "separator": 1, "metal_maker": 2, "magnet_plant": 3, "oem": 4, "recycler": 5}
"""Left-to-right stage position of each role in network drawings."""


def stage_layout(nodes: Nodes) -> dict[str, tuple[float, float]]:
    """Deterministic positions: x = stage, y = rank within the stage (sorted by region, id)."""
    pos: dict[str, tuple[float, float]] = {}
    for k, role in enumerate(ROLES):
        members = sorted(
            np.flatnonzero(nodes.role == k),
            key=lambda i: (nodes.regions[int(nodes.region[i])], nodes.ids[i]),
        )
        n = max(len(members), 1)
        for rank, i in enumerate(members):
            pos[nodes.ids[i]] = (float(STAGE_X[role]), 1.0 - (rank + 0.5) / n)
    return pos


def build_graph(nodes: Nodes, links: Links, names: dict[str, str] | None = None) -> nx.DiGraph:
    """The topology of record: a DiGraph with node and link attributes (units in names)."""
    g = nx.DiGraph()
    names = names or {}
    for i, node_id in enumerate(nodes.ids):
        g.add_node(
            node_id,
            index=i,
            role=ROLES[int(nodes.role[i])],
            region=nodes.regions[int(nodes.region[i])],
            name=names.get(node_id, node_id),
        )
    ids = nodes.ids
    for e in range(links.n):
        a, b = ids[int(links.src[e])], ids[int(links.dst[e])]
        g.add_edge(
            a,
            b,
            index=e,
            product=PRODUCTS[int(links.product[e])],
            lead_time_months=int(links.lead_months[e]),
            transport_usd_per_kg=float(links.transport_usd_per_kg[e]),
        )
    return g
