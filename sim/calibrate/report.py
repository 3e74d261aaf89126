"""A calibration's outputs: runs, posterior, point estimate, fit figures and ``report.md``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa

from sim.experiments.runner import _atomic_write
from sim.io import shown_path

if TYPE_CHECKING:
    from sim.calibrate.run import Prepared, RunStore
    from sim.calibrate.targets import TargetData

BAND = (0.05, 0.95)  # posterior-predictive band: weighted 5 % and 95 % quantiles


def effective_sample_size(w: np.ndarray) -> float:
    """Kish's effective sample size of weights ``w``: 1 / sum of squared normalised weights."""
    w = np.asarray(w, float)
    w = w / w.sum()
    return float(1.0 / np.sum(w * w))


def weighted_quantile(x: np.ndarray, w: np.ndarray, q: float) -> float:
    """The weighted ``q`` quantile of ``x`` (inverted CDF, as for unweighted samples)."""
    return float(np.quantile(np.asarray(x, float), q, weights=np.asarray(w, float),
                             method="inverted_cdf"))  # fmt: skip


def posterior_frame(prep: Prepared, store: RunStore, history: Any) -> pd.DataFrame:
    """The last population: one row per accepted run, in key order, with its weight.

    Columns: ``generation``, ``index``, ``run_id``, the parameters, ``weight`` (sums to 1),
    ``distance``.
    """
    cols = [p.column for p in prep.spec.parameters]
    t = int(history.max_t)
    pop = history.get_population(t)
    acc = pd.DataFrame(
        [
            {**{c: float(p.parameter[c]) for c in cols}, "weight": float(p.weight)}
            for p in pop.particles
        ]
    )
    runs = store.frame()
    gen = runs[runs["generation"] == t][["generation", "index", "run_id", *cols, "distance"]]
    post = gen.merge(acc, on=cols, how="inner", validate="one_to_one")
    if len(post) != len(acc):  # pragma: no cover - the store must hold every accepted run
        raise RuntimeError(f"{len(acc) - len(post)} accepted runs are missing from the store")
    post = post.sort_values("index", kind="stable").reset_index(drop=True)
    post["weight"] = post["weight"] / post["weight"].sum()
    return post[["generation", "index", "run_id", *cols, "weight", "distance"]]


def point_estimate(prep: Prepared, post: pd.DataFrame) -> dict[str, float]:
    """Weighted posterior median of each parameter, by key path."""
    w = post["weight"].to_numpy()
    return {
        p.path: weighted_quantile(post[p.column].to_numpy(), w, 0.5) for p in prep.spec.parameters
    }


def point_toml(prep: Prepared, point: dict[str, float], out: Path) -> str:
    """``point.toml``: the point estimate as ``"key.path" = value`` under ``[values]``."""
    lines = [
        f"# Point estimate (weighted posterior median) of calibration {prep.spec.name!r}",
        f"# written by `ndsim calibrate {prep.spec_path}` into {out}; use it from a world",
        '# with calibration = "<this file or its folder>".',
        "[values]",
    ]
    lines += [f'"{k}" = {v!r}' for k, v in point.items()]
    return "\n".join(lines) + "\n"


def predictive(prep: Prepared, store: RunStore, post: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Per target and data row: weighted median and band of the accepted runs' values."""
    runs = store.frame().set_index("run_id")
    w = post["weight"].to_numpy()
    out = {}
    for t in prep.targets:
        rows = []
        for p in t.periods:
            v = runs.loc[post["run_id"], f"sim__{t.name}__{p}"].to_numpy(float)
            ok = np.isfinite(v)
            if not ok.any():
                rows.append((p, np.nan, np.nan, np.nan))
                continue
            rows.append((p, *(weighted_quantile(v[ok], w[ok], q) for q in (0.5, *BAND))))
        out[t.name] = pd.DataFrame(rows, columns=["period", "median", "low", "high"])
    return out


def _title(t: TargetData) -> str:
    s = t.spec
    if s.metric == "exports_t":
        what = f"{s.product} exports from {s.region}" + (
            f" to {s.to_region}" if s.to_region else ""
        )
    else:
        what = f"{s.metric} {s.product} {s.region or 'world'}".replace("  ", " ")
        if getattr(s, "relative_to", None):  # a hold-out ratio target (sim.calibrate.validate)
            what += f" over {s.relative_to}"
    return f"{t.name}: {what} ({'share of world' if s.aggregation == 'share' else s.aggregation})"


def fit_figure(t: TargetData, pred: pd.DataFrame, path: Path) -> None:
    """Data (with its band) against the posterior-predictive median and 5-95 % band.

    Annual and monthly rows go to separate panels (a year's sum is not a month's).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    annual = np.array([len(p) == 4 for p in t.periods])
    panels = [(m, lab) for m, lab in ((annual, "annual"), (~annual, "monthly")) if m.any()]
    fig, axes = plt.subplots(1, len(panels), figsize=(5.0 * len(panels) + 2.6, 4.2), squeeze=False)
    per = {"annual": "/yr", "monthly": "/month"} if t.spec.aggregation == "sum" else {}
    for ax, (mask, label) in zip(axes[0], panels, strict=True):
        idx = np.flatnonzero(mask)
        x = np.arange(len(idx), dtype=float)  # one slot per period, labelled YYYY or YYYY-MM
        shift = 0.12
        med = pred["median"].to_numpy()[idx]
        band = [med - pred["low"].to_numpy()[idx], pred["high"].to_numpy()[idx] - med]
        ax.errorbar(x + shift, med, yerr=band, fmt="o", color="tab:blue", ms=4, capsize=3,
                    label="model: posterior median, 5-95 % band")  # fmt: skip
        lo = np.where(np.isfinite(t.low[idx]), t.value[idx] - t.low[idx], 0.0)
        hi = np.where(np.isfinite(t.high[idx]), t.high[idx] - t.value[idx], 0.0)
        ax.errorbar(x - shift, t.value[idx], yerr=[lo, hi], fmt="s", color="black", ms=4,
                    capsize=3, label="data: value, published low-high")  # fmt: skip
        ax.set_ylabel(f"{t.name}, {label} ({t.unit or 'value'}{per.get(label, '')})")
        ax.set_xticks(x, [t.periods[k] for k in idx], rotation=30 if len(idx) > 6 else 0)
        ax.set_xlim(-0.6, len(idx) - 0.4)
        ax.set_xlabel("year" if label == "annual" else "month")
        ax.set_ylim(bottom=0, top=ax.get_ylim()[1] * 1.05)  # markers at the top stay whole
        ax.grid(alpha=0.3)
    axes[0][-1].legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=8, frameon=False)
    fig.suptitle(_title(t), fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_outputs(
    prep: Prepared, out: Path, store: RunStore, history: Any, info: dict[str, Any], *,
    figures: bool = True,
) -> None:  # fmt: skip
    """Write ``runs.parquet``, ``posterior.parquet``, ``point.toml``, figures, ``report.md``."""
    runs = store.frame()
    _atomic_write(pa.Table.from_pandas(runs, preserve_index=False), out / "runs.parquet")
    post = posterior_frame(prep, store, history)
    _atomic_write(pa.Table.from_pandas(post, preserve_index=False), out / "posterior.parquet")
    point = point_estimate(prep, post)
    (out / "point.toml").write_text(point_toml(prep, point, out))
    pred = predictive(prep, store, post)
    if figures:
        for t in prep.targets:
            fit_figure(t, pred[t.name], out / "figures" / f"fit_{t.name}.png")
    (out / "report.md").write_text(report_md(prep, runs, post, point, pred, history, info, figures))


def report_md(
    prep: Prepared, runs: pd.DataFrame, post: pd.DataFrame, point: dict[str, float],
    pred: dict[str, pd.DataFrame], history: Any, info: dict[str, Any], figures: bool,
) -> str:  # fmt: skip
    """The Markdown report: budget used, thresholds, posterior, fit per target."""
    spec = prep.spec
    lib = info.get("library", {})
    sessions = info.get("sessions", [])
    wall = sum(float(s["wall_seconds"]) for s in sessions)
    pops = history.get_all_populations()
    pops = pops[pops["t"] >= 0]
    n_err = int((runs["status"] != "ok").sum()) if len(runs) else 0
    lines = [
        f"# Calibration `{spec.name}`",
        "",
        spec.description,
        "",
        f"- spec: `{shown_path(info.get('spec_file', ''))}`; "
        f"base world: `{shown_path(info.get('world_file', ''))}`",
        f"- library: {lib.get('name')} {lib.get('version')} (ABC-SMC; sim/calibrate/run.py)",
        f"- simulations: {len(runs)} ({n_err} failed)"
        + (f", each the mean of {spec.replicates} seeded runs" if spec.replicates > 1 else "")
        + f", in {len(sessions)} session(s); "
        f"wall time {wall:.1f} s ({', '.join(str(s['backend']) for s in sessions)})",
        f"- generations: {len(pops)}; population size {spec.budget.population_size}; "
        f"seed {spec.seed}",
        "",
        "## Thresholds",
        "",
        "| generation | epsilon | simulations | accepted | effective sample size |",
        "|---:|---:|---:|---:|---:|",
    ]
    ess = {}
    for _, r in pops.iterrows():
        t = int(r["t"])
        ess[t] = effective_sample_size(history.get_distribution(0, t)[1])
        lines.append(
            f"| {t} | {r['epsilon']:.4g} | {int(r['samples'])} | "
            f"{spec.budget.population_size} | {ess[t]:.1f} |"
        )
    last = ess[max(ess)] if ess else float("nan")
    if last < spec.budget.population_size / 10:
        lines += [
            "",
            f"**Warning:** the last generation's effective sample size (1 / sum of squared "
            f"weights) is {last:.1f} of {spec.budget.population_size}: the posterior rests on "
            "a few runs, and its quantiles below are not to be trusted. More runs per "
            "generation, fewer parameters, or a model that fits the data better help.",
        ]
    lines += [
        "",
        "## Posterior (last generation)",
        "",
        "| parameter | prior | source | median | 5 % | 95 % |",
        "|---|---|---|---:|---:|---:|",
    ]
    w = post["weight"].to_numpy()
    for p in spec.parameters:
        v = post[p.column].to_numpy()
        q = [weighted_quantile(v, w, x) for x in (0.5, *BAND)]
        lines.append(
            f"| `{p.path}` | {p.prior} [{p.low:g}, {p.high:g}] | {p.source} | "
            f"{q[0]:.4g} | {q[1]:.4g} | {q[2]:.4g} |"
        )
    lines += [
        "",
        "Point estimate (weighted median) in `point.toml`; accepted sets with weights in "
        "`posterior.parquet`; every simulation in `runs.parquet`.",
        "",
        "## Fit per target",
        "",
        "Posterior-predictive median and 5-95 % band of the accepted runs against the data. "
        "`in band`: the median lies within the data's low..high (or within "
        f"±{spec.distance.relative_floor:.0%} where none is published).",
        "",
        "| target | period | data | low | high | model median | model 5 % | model 95 % | "
        "error | in band |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    floor = spec.distance.relative_floor
    for t in prep.targets:
        pr = pred[t.name]
        for j, p in enumerate(t.periods):
            m = float(pr["median"].iloc[j])
            lo = t.low[j] if np.isfinite(t.low[j]) else t.value[j] * (1 - floor)
            hi = t.high[j] if np.isfinite(t.high[j]) else t.value[j] * (1 + floor)
            err = (m - t.value[j]) / abs(t.value[j]) if t.value[j] else float("nan")
            lines.append(
                f"| {t.name} | {p} | {t.value[j]:.4g} | {t.low[j]:.4g} | {t.high[j]:.4g} | "
                f"{m:.4g} | {pr['low'].iloc[j]:.4g} | {pr['high'].iloc[j]:.4g} | "
                f"{err:+.1%} | {'yes' if lo <= m <= hi else 'no'} |"
            )
    if figures:
        lines += ["", "## Figures", ""]
        lines += [f"![{t.name}](figures/fit_{t.name}.png)" for t in prep.targets]
    lines += ["", "## Sessions", "", "```json", json.dumps(sessions, indent=1), "```", ""]
    return "\n".join(lines)
