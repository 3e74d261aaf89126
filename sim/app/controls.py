"""The page's levers: :class:`Controls`, their ``[policies]`` tables and the lesson presets.

:func:`policy_tables` is the one place where controls become world ``[policies]`` tables (the
same tables a world or scenario file declares); :mod:`sim.app.live` applies them to a running
model from the next month on. :data:`PRESETS` holds one scenario per lesson exercise.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from sim.calendar import parse_month

ROOT = Path(__file__).resolve().parents[2]
WORLD_ENV = "NDSIM_UI_WORLD"
WORLDS: dict[str, Path] = {
    "classroom": ROOT / "models" / "classroom.toml",
    "baseline": ROOT / "models" / "baseline_2024.toml",
}

# ------------------------------------------------------------------------------ controls
EXPORT_CONTROLS_START = "2025-04"
RECYCLING_TARGET_MONTH = "2030-01"
STOCKPILE_BUDGET_USD = 5e9
# Vault candidates: assumed capital cost per t/yr of new capacity (order of magnitude as in
# experiments/project_vault.toml; assumptions, not sourced figures) and default project size.
VAULT_CAPEX_USD_PER_T_PER_YR = {
    "separator": 250_000.0,
    "metal_maker": 60_000.0,
    "magnet_plant": 100_000.0,
}
VAULT_DEFAULT_PROJECT_T_PER_YR = 3000.0
VAULT_STAGE_TABLES = {
    "separator": "separators",
    "metal_maker": "metal_makers",
    "magnet_plant": "magnet_plants",
}

# which registered instrument each control needs (None: plain world override)
CONTROL_INSTRUMENT = {
    "export_controls": "export_controls",
    "approval_rate": "export_controls",
    "stockpile_days": "stockpiles",
    "vault_budget_busd": "vault",
    "recycling_rate": "recycling_targets",
    "demand_growth": None,
}


@dataclass(frozen=True)
class Controls:
    """The page's controls (also :class:`ClassroomModel`'s parameters), with units."""

    world: str = "classroom"
    seed: int = 0
    export_controls: bool = False  # China's magnet export licensing from 2025-04
    approval_rate: float = 0.5  # share of licence applications approved
    stockpile_days: int = 0  # target of a US magnet stockpile, days of use (0: none)
    vault_budget_busd: float = 0.0  # Vault fund budget, billion USD (0: none)
    recycling_rate: float = 0.0  # end-of-life collection share reached by 2030 (0: as is)
    demand_growth: float = 1.0  # multiplier on every sector's demand growth rate


def available_instruments() -> set[str]:
    """Names of the policy instruments registered by :mod:`sim.policies`."""
    try:
        from sim.policies.registry import BUILDERS, _load_builtin

        _load_builtin()
        return set(BUILDERS)
    except ImportError:  # pragma: no cover - policies package incomplete
        return set()


def unavailable_controls() -> dict[str, str]:
    """Controls whose instrument is not registered yet -> a note shown on the page."""
    have = available_instruments()
    return {
        c: f"'{ins}' policy instrument not available yet; control disabled"
        for c, ins in CONTROL_INSTRUMENT.items()
        if ins is not None and ins not in have
    }


def _regions(raw: dict[str, Any]) -> list[str]:
    regions = {g.get("region") for g in raw.get("governments", [])}
    for table in ("mines", *VAULT_STAGE_TABLES.values(), "recyclers", "oems"):
        regions |= {f.get("region") for f in raw.get(table, [])}
    return sorted(r for r in regions if r)


def _importer(raw: dict[str, Any]) -> str | None:
    """The region that holds the stockpile and the Vault: ``usa``, else the first foreign one."""
    dom = raw.get("market", {}).get("domestic_region", "china")
    regions = _regions(raw)
    if "usa" in regions:
        return "usa"
    foreign = [
        r for r in regions if r != dom and any(o.get("region") == r for o in raw.get("oems", []))
    ]
    return foreign[0] if foreign else None


def _later(a: str, b: str) -> str:
    return a if parse_month(a) >= parse_month(b) else b


def policy_tables(
    c: Controls, raw: dict[str, Any], from_month: str | None = None
) -> dict[str, Any]:
    """The ``[policies]`` tables switched on by the controls, for world ``raw``.

    Args:
        c: The controls.
        raw: The world's TOML tables.
        from_month: First month the tables may act (``YYYY-MM``; default: the world's start).
            A control changed during a run acts from the next month on.

    Controls whose instrument is not registered are left out (see :func:`unavailable_controls`).
    """
    have = available_instruments()
    cal = raw.get("calendar", {})
    start = (
        _later(from_month, str(cal.get("start", "2024-01")))
        if from_month
        else str(cal.get("start", "2024-01"))
    )
    dom = raw.get("market", {}).get("domestic_region", "china")
    regions = _regions(raw)
    importer = _importer(raw)
    out: dict[str, Any] = {}
    if c.export_controls and "export_controls" in have and dom in regions:
        out["export_controls"] = {
            "start": _later(EXPORT_CONTROLS_START, start),
            "exporter": dom,
            "products": ["magnet"],
            "approval_probability": float(min(max(c.approval_rate, 0.0), 1.0)),
        }
    if c.stockpile_days > 0 and "stockpiles" in have and importer:
        out["stockpiles"] = {
            importer: {
                "product": "magnet",
                "budget_usd": STOCKPILE_BUDGET_USD,
                "target_days": float(c.stockpile_days),
                "build_months": 12.0,
                "start": start,
            }
        }
    if c.vault_budget_busd > 0 and "vault" in have and importer:
        cands = []
        for role, table in VAULT_STAGE_TABLES.items():
            for f in sorted(raw.get(table, []), key=lambda f: f["id"]):
                if f.get("region") == dom:
                    continue
                size = float(f.get("capacity_t_per_yr", 0.0)) or VAULT_DEFAULT_PROJECT_T_PER_YR
                cands.append(
                    {
                        "firm": f["id"],
                        "capacity_t_per_yr": size,
                        "capex_usd_per_t_per_yr": VAULT_CAPEX_USD_PER_T_PER_YR[role],
                    }
                )
        if cands:
            out["vault"] = {
                "region": importer,
                "start": start,
                "budget_usd": float(c.vault_budget_busd) * 1e9,
                "exclude_regions": [dom],
                "candidates": cands,
            }
    if c.recycling_rate > 0 and "recycling_targets" in have and raw.get("recyclers"):
        out["recycling_targets"] = {
            "all": {
                "start": start,
                "target_share": float(min(max(c.recycling_rate, 0.0), 1.0)),
                "target_month": _later(RECYCLING_TARGET_MONTH, start),
            }
        }
    return out


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(float(v)) if isinstance(v, float) else str(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, list | tuple):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k} = {_toml_value(x)}" for k, x in v.items()) + "}"
    raise TypeError(f"cannot write {type(v).__name__} as TOML")


def _flatten(prefix: str, table: dict[str, Any]) -> list[str]:
    out: list[str] = []
    for key, value in table.items():
        if isinstance(value, dict):
            out += _flatten(f"{prefix}.{key}", value)
        else:
            out.append(f"{prefix}.{key}={_toml_value(value)}")
    return out


def controls_to_overrides(c: Controls | dict[str, Any], raw: dict[str, Any]) -> list[str]:
    """All world overrides (``key.path=value``, as ``ndsim run --set``) the controls produce."""
    if isinstance(c, dict):
        c = Controls(**{k: v for k, v in c.items() if k in Controls.__dataclass_fields__})
    out = [f"behaviour.demand_growth_multiplier={float(max(c.demand_growth, 0.0))!r}"]
    out += _flatten("policies", policy_tables(c, raw))
    return out


def describe(c: Controls) -> str:
    """The levers of a run, in words."""
    parts = []
    if c.export_controls:
        parts.append(f"export controls on ({c.approval_rate:.0%} of licences approved)")
    else:
        parts.append("no export controls")
    parts.append(f"stockpile {c.stockpile_days} days" if c.stockpile_days > 0 else "no stockpile")
    parts.append(
        f"Vault {c.vault_budget_busd:g} billion USD" if c.vault_budget_busd > 0 else "no Vault"
    )
    if c.recycling_rate > 0:
        parts.append(f"recycling {c.recycling_rate:.0%} by 2030")
    parts.append(f"demand growth x{c.demand_growth:.1f}")
    return ", ".join(parts)


@dataclass(frozen=True)
class Preset:
    """A lesson scenario: the levers at the start and the two charts shown above the fold."""

    name: str
    controls: Controls
    charts: tuple[str, str]
    note: str


PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        Preset(
            "Free play: no policy",
            Controls(),
            ("prices", "shortages"),
            "The reference run: no policy. Press Play and watch prices and shortages.",
        ),
        Preset(
            "Exercise 1: export controls",
            Controls(export_controls=True, approval_rate=0.5),
            ("prices", "shortages"),
            "China licenses magnet exports from April 2025. Who runs short first, and why?",
        ),
        Preset(
            "Exercise 2: stockpile",
            Controls(export_controls=True, approval_rate=0.2, stockpile_days=90),
            ("shortages", "stockpiles"),
            "A US magnet stockpile against export controls. How many days buy how much?",
        ),
        Preset(
            "Exercise 3: Vault fund",
            Controls(export_controls=True, approval_rate=0.5, vault_budget_busd=2.0),
            ("capacity", "money"),
            "A 2 billion USD fund builds capacity outside China. When do the tonnes arrive?",
        ),
    )
}


def with_world(c: Controls, world: str, seed: int | None = None) -> Controls:
    """The same levers in another world (and seed)."""
    return replace(c, world=world, seed=c.seed if seed is None else int(seed))


def world_choices() -> dict[str, Path]:
    """Worlds offered in the selector: those that exist, plus ``$NDSIM_UI_WORLD``."""
    out = {k: p for k, p in WORLDS.items() if p.exists()}
    env = os.environ.get(WORLD_ENV)
    if env:
        p = Path(env).resolve()
        same = [k for k, q in out.items() if q.resolve() == p]
        if not same:
            out = {p.stem: p, **out}
    return out


def default_world() -> str:
    """The world selected when the page opens."""
    choices = world_choices()
    env = os.environ.get(WORLD_ENV)
    if env:
        p = Path(env).resolve()
        for k, q in choices.items():
            if q.resolve() == p:
                return k
    return "classroom" if "classroom" in choices else next(iter(choices), "classroom")
