"""Instrument registry: world/scenario ``[policies]`` tables -> instrument objects."""

from __future__ import annotations

import difflib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from sim.errors import UserError
from sim.policies.base import Instrument

if TYPE_CHECKING:
    from sim.model import SupplyChainModel

Builder = Callable[["SupplyChainModel", Any], list[Instrument]]
BUILDERS: dict[str, Builder] = {}


def register(name: str) -> Callable[[Builder], Builder]:
    """Register a builder for ``[policies.<name>]``."""

    def deco(fn: Builder) -> Builder:
        BUILDERS[name] = fn
        return fn

    return deco


def _load_builtin() -> None:
    """Import the built-in instrument modules so that they register themselves."""
    import importlib

    for mod in (
        "sim.policies.instruments",
        "sim.policies.stockpiles",
        "sim.policies.vault",
        "sim.policies.subsidies",
        "sim.policies.programmes",
    ):
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError as exc:  # pragma: no cover - until instruments exist
            if exc.name != mod:
                raise


def _hint(name: str) -> str:
    near = difflib.get_close_matches(name, sorted(BUILDERS), n=1)
    if near:
        return f"did you mean {near[0]!r}?"
    return f"known instruments: {', '.join(sorted(BUILDERS)) or 'none'}"


def validate_policies(policies: dict[str, Any]) -> None:
    """Check instrument names (and, where a builder declares one, their schema).

    Raises:
        ValueError: ``policies.<name>...: message`` for the first problem found.
    """
    _load_builtin()
    for name in sorted(policies):
        if name not in BUILDERS:
            raise ValueError(f"unknown policy instrument {name!r}; {_hint(name)}")
        check = VALIDATORS.get(name)
        if check is not None:
            check(policies[name])


VALIDATORS: dict[str, Callable[[Any], None]] = {}


def build_instruments(model: SupplyChainModel, policies: dict[str, Any]) -> list[Instrument]:
    """Build every instrument declared in ``policies`` in sorted key order."""
    _load_builtin()
    out: list[Instrument] = []
    for name in sorted(policies):
        if name not in BUILDERS:
            raise UserError(f"policies.{name}: unknown policy instrument; {_hint(name)}")
        out += BUILDERS[name](model, policies[name])
    for ins in out:
        attach(model, ins)
    return out


def attach(model: SupplyChainModel, ins: Instrument) -> None:
    """Give an instrument to the government(s) of the region(s) it belongs to.

    An instrument names its ``regions`` (or one ``region``); a world-wide one (``"world"``)
    is held by a government of the pseudo-region ``world``.
    """
    from sim.government import government_of

    if getattr(ins, "government", None) is not None:
        return  # attached when built (e.g. export-control rules)
    members = getattr(ins, "rules", None)
    if members and all(getattr(m, "government", None) is not None for m in members):
        return
    regions = getattr(ins, "regions", None) or [getattr(ins, "region", None) or "world"]
    for r in regions:
        government_of(model, r).hold(ins)
