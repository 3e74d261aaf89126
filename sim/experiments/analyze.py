"""``ndsim analyze DIR``: sensitivity indices, scenario discovery, figures and a report.

Writes ``DIR/analysis/``: ``indices.csv`` (Sobol S1/ST with confidence intervals, or Morris
mu*/sigma, per outcome and parameter), ``prim.csv`` (the peeling trajectory), figures
(``figures/*.png``) and ``report.md``. Replicates are averaged per design row before the
sensitivity analysis; rows with a failed run are reported and that outcome is skipped.
"""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sim.errors import UserError
from sim.experiments.spec import SweepSpec
from sim.io import shown_path

PERCENTILES = (5, 25, 50, 75, 95)


def parse_prim(text: str) -> tuple[str, float, bool]:
    """Parse ``outcome>threshold`` or ``outcome<threshold``."""
    m = re.fullmatch(r"\s*([A-Za-z_][A-Za-z0-9_]*)\s*([<>])\s*(\S+)\s*", text)
    if not m:
        raise UserError(f"--prim {text!r}: expected OUTCOME>THRESHOLD or OUTCOME<THRESHOLD")
    try:
        thr = float(m.group(3))
    except ValueError:
        raise UserError(f"--prim {text!r}: threshold {m.group(3)!r} is not a number") from None
    return m.group(1), thr, m.group(2) == ">"


def _load(out: Path) -> tuple[dict[str, Any], SweepSpec, pd.DataFrame, pd.DataFrame]:
    from sim.experiments.runner import load_runs

    info_path = out / "sweep.json"
    if not info_path.exists():
        raise UserError(f"{out}: not a sweep directory (no sweep.json)")
    info = json.loads(info_path.read_text())
    spec = SweepSpec.model_validate(info["spec"])
    design = pd.read_parquet(out / "design.parquet")
    runs = load_runs(out)
    return info, spec, design, runs


def row_means(spec: SweepSpec, runs: pd.DataFrame, n_rows: int, outcome: str) -> np.ndarray:
    """Outcome per design row, averaged over replicates (NaN where any run failed)."""
    ok = runs[runs["status"] == "ok"]
    y = ok.groupby("row")[outcome].mean().reindex(range(n_rows))
    counts = ok.groupby("row")[outcome].count().reindex(range(n_rows), fill_value=0)
    y[counts < spec.replicates] = np.nan
    return y.to_numpy(float)


CONVERGENCE_TOLERANCE = 0.1
"""Largest change of an index between N/2 and N (Sobol: absolute; Morris: relative to the
largest mu*) above which the report says the indices have not converged."""


BOOTSTRAP_SEED = 1
"""Seed of SALib's bootstrap intervals. Not 0: SALib's Sobol analysis takes a seed of 0 as
no seed (``if seed:``) and then draws its resamples from NumPy's global generator, so the
intervals changed from one analysis to the next."""


def _salib(method: str, spec: SweepSpec, problem: dict, X: np.ndarray, y: np.ndarray) -> dict:
    """SALib's indices with 95 % bootstrap intervals (200 resamples)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if method == "sobol":
            from SALib.analyze import sobol

            si = sobol.analyze(
                problem,
                y,
                calc_second_order=spec.design.calc_second_order,
                num_resamples=200,
                conf_level=0.95,
                seed=BOOTSTRAP_SEED,
            )
            keys = ("S1", "S1_conf", "ST", "ST_conf")
        else:
            from SALib.analyze import morris

            si = morris.analyze(
                problem,
                X,
                y,
                num_levels=spec.design.num_levels,
                num_resamples=200,
                conf_level=0.95,
                seed=BOOTSTRAP_SEED,
            )
            keys = ("mu", "mu_star", "mu_star_conf", "sigma")
    return {k: np.asarray(si[k], float) for k in keys}


def rows_per_block(spec: SweepSpec) -> int:
    """Design rows per base sample (Sobol) or trajectory (Morris)."""
    D = len(spec.parameters)
    if spec.design.method == "morris":
        return D + 1
    return 2 * D + 2 if spec.design.calc_second_order else D + 2


def outcome_warnings(method: str, y: np.ndarray, idx: dict, half: dict | None) -> list[str]:
    """Why an outcome's indices should not be trusted (empty: no warning).

    Checks: the outcome is one value in most runs; the intervals are wider than the
    indices (for the leading parameter or for most); the indices moved by more than
    ``CONVERGENCE_TOLERANCE`` between N/2 and N.
    """
    out = []
    _, counts = np.unique(y, return_counts=True)
    top = counts.max() / y.size
    if top > 0.5:
        out.append(
            f"the outcome has the same value in {100 * top:.0f} % of the design rows: the "
            "indices describe the few rows where it differs"
        )
    key, conf = ("ST", "ST_conf") if method == "sobol" else ("mu_star", "mu_star_conf")
    val, ci = np.abs(idx[key]), idx[conf]
    lead = int(np.argmax(val))
    wide = ci[lead] >= val[lead] or (ci >= val).mean() > 0.5
    if method == "sobol":  # the leading parameter's first-order index too
        wide |= bool(idx["S1_conf"][lead] >= abs(idx["S1"][lead]))
    if wide:
        detail = f"{key} {idx[key][lead]:.3g} ± {ci[lead]:.3g}"
        if method == "sobol":
            detail += f", S1 {idx['S1'][lead]:.3g} ± {idx['S1_conf'][lead]:.3g}"
        out.append(
            f"the 95 % intervals are wider than the indices (leading parameter: {detail}): "
            "raise the design's n"
        )
    if half is not None:
        change = np.abs(idx[key] - half[key])
        if method == "morris":
            change = change / max(val.max(), 1e-300)
        if change.max() > CONVERGENCE_TOLERANCE:
            out.append(
                f"not converged: {key} moves by up to {change.max():.2f} between N/2 and N "
                f"(tolerance {CONVERGENCE_TOLERANCE}); raise the design's n"
            )
    return out


def sensitivity(
    spec: SweepSpec, design: pd.DataFrame, runs: pd.DataFrame, log: frozenset[str] = frozenset()
) -> tuple[pd.DataFrame, list[str], dict[str, list[str]]]:
    """Sobol or Morris indices per outcome, at N and N/2 (empty for grid and LHS designs).

    Outcomes named in ``log`` are analysed as ``log(outcome)`` (they must be positive in
    every run); their rows in the returned table carry ``scale = "log"``.

    Returns:
        The indices (``S1, S1_conf, ST, ST_conf, ST_half`` or ``mu, mu_star,
        mu_star_conf, sigma, mu_star_half``; ``*_half``: the same index from the first half
        of the base samples or trajectories), notes on skipped outcomes, and the warnings
        per outcome (see :func:`outcome_warnings`).
    """
    from sim.experiments.design import salib_problem

    method = spec.design.method
    notes: list[str] = []
    warns: dict[str, list[str]] = {}
    rows: list[dict[str, Any]] = []
    if method not in ("sobol", "morris"):
        return (
            pd.DataFrame(),
            [f"design {method!r}: no sensitivity indices (use sobol/morris)"],
            warns,
        )
    problem = salib_problem(spec)
    n_rows = len(design)
    X = design[[f"u_{c}" for c in problem["names"]]].to_numpy(float)
    key = "ST" if method == "sobol" else "mu_star"
    for o in spec.outcomes:
        y = row_means(spec, runs, n_rows, o.name)
        if np.isnan(y).any():
            notes.append(_missing_note(runs, o.name, y))
            continue
        scale = "log" if o.name in log else "linear"
        if scale == "log":
            if (y <= 0).any():
                notes.append(
                    f"{o.name}: {int((y <= 0).sum())} design rows are <= 0, so it has no log "
                    "scale; indices skipped (analyse it on the linear scale)"
                )
                continue
            y = np.log(y)
        if np.nanstd(y) == 0:
            notes.append(f"{o.name}: constant across runs ({y[0]:.4g}); indices skipped")
            continue
        idx = _salib(method, spec, problem, X, y)
        b = rows_per_block(spec)
        n_half = (n_rows // b) // 2 * b
        half = None
        if n_half >= 2 * b and np.nanstd(y[:n_half]) > 0:
            half = _salib(method, spec, problem, X[:n_half], y[:n_half])
        warns[o.name] = outcome_warnings(method, y, idx, half)
        for k, name in enumerate(problem["names"]):
            row = {
                "outcome": o.name,
                "scale": scale,
                "parameter": name,
                **{c: v[k] for c, v in idx.items()},
            }
            row[f"{key}_half"] = half[key][k] if half is not None else np.nan
            rows.append(row)
    return pd.DataFrame(rows), notes, warns


def _missing_note(runs: pd.DataFrame, outcome: str, y: np.ndarray) -> str:
    """Say why an outcome has design rows without a value.

    Failed or missing runs, or runs that finished but where the outcome is undefined (e.g. a
    share of a total that is zero).
    """
    ok = runs[runs["status"] == "ok"]
    undefined = int(ok[outcome].isna().sum())
    why = "failed or missing runs"
    if undefined:
        why = f"{undefined} finished run(s) where it is undefined (NaN), e.g. a share of zero"
    return f"{outcome}: {int(np.isnan(y).sum())} design rows lack results ({why}); indices skipped"


def _fig_indices(
    idx: pd.DataFrame, method: str, fig_dir: Path, warns: dict[str, list[str]]
) -> list[str]:
    import matplotlib.pyplot as plt

    files = []
    for outcome, grp in idx.groupby("outcome", sort=False):
        fig, ax = plt.subplots(figsize=(6.5, 0.4 * len(grp) + 2.0))
        pos = np.arange(len(grp))
        if method == "sobol":
            ax.barh(pos - 0.2, grp["S1"], 0.4, xerr=grp["S1_conf"], label="S1")
            ax.barh(pos + 0.2, grp["ST"], 0.4, xerr=grp["ST_conf"], label="ST")
            ax.set_xlabel("Sobol index (95% CI)")
        else:
            ax.barh(pos - 0.2, grp["mu_star"], 0.4, xerr=grp["mu_star_conf"], label="mu*")
            ax.barh(pos + 0.2, grp["sigma"], 0.4, label="sigma")
            ax.set_xlabel("Morris elementary effects (outcome units per unit range)")
        ax.set_yticks(pos, grp["parameter"])
        ax.invert_yaxis()
        ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
        log = grp["scale"].iloc[0] == "log" if "scale" in grp else False
        ax.set_title(f"log({outcome})" if log else outcome)
        if warns.get(outcome):
            fig.text(
                0.01,
                0.01,
                "WARNING: " + "; ".join(w.split(":")[0] for w in warns[outcome]),
                color="#b00020",
                fontsize=7,
                wrap=True,
            )
        fig.tight_layout(rect=(0, 0.08 if warns.get(outcome) else 0, 1, 1))
        name = f"indices_{outcome}.png"
        fig.savefig(fig_dir / name, dpi=110)
        plt.close(fig)
        files.append(name)
    return files


def _fig_distributions(spec: SweepSpec, runs: pd.DataFrame, fig_dir: Path) -> str | None:
    import matplotlib.pyplot as plt

    names = [o.name for o in spec.outcomes]
    if not names:
        return None
    ok = runs[runs["status"] == "ok"]
    fig, axes = plt.subplots(1, len(names), figsize=(4 * len(names), 3), squeeze=False)
    for ax, name in zip(axes[0], names, strict=True):
        ax.hist(ok[name].dropna(), bins=30, color="#4a7ab5")
        ax.set_title(name, fontsize=9)
        ax.set_ylabel("runs")
    fig.tight_layout()
    fig.savefig(fig_dir / "distributions.png", dpi=110)
    plt.close(fig)
    return "distributions.png"


def fan_table(out: Path, metric: str) -> pd.DataFrame:
    """Percentile bands across runs per series and month, for one kept metric."""
    from sim.experiments.runner import load_timeseries

    ts = load_timeseries(out, metric)
    if ts.empty:
        return pd.DataFrame()
    g = ts.groupby(["product", "region", "sector", "date"])["value"]
    bands = g.quantile([p / 100 for p in PERCENTILES]).unstack()
    bands.columns = [f"p{p}" for p in PERCENTILES]
    return bands.reset_index()


def _fig_fans(out: Path, spec: SweepSpec, fig_dir: Path, max_series: int = 12) -> list[str]:
    import matplotlib.pyplot as plt

    from sim import metrics
    from sim.figures import legend_below, style_dates

    files: list[str] = []
    for metric in sorted({k.metric for k in spec.keep}):
        bands = fan_table(out, metric)
        if bands.empty:
            continue
        for key, grp in bands.groupby(["product", "region", "sector"], sort=True):
            if len(files) >= max_series:
                return files
            fig, ax = plt.subplots(figsize=(6, 3.4))
            d = pd.to_datetime(grp["date"])
            ax.fill_between(d, grp["p5"], grp["p95"], alpha=0.25, color="#4a7ab5", label="5-95 %")
            ax.fill_between(d, grp["p25"], grp["p75"], alpha=0.45, color="#4a7ab5", label="25-75 %")
            ax.plot(d, grp["p50"], color="#1b3d6d", label="median")
            label = " / ".join(x for x in key if x)
            ax.set_title(f"{label}: percentiles across runs", fontsize=9)
            ax.set_ylabel(metrics.get(metric).axis_label(metric.split("_")[0]), fontsize=8)
            style_dates(ax)
            legend_below(fig, ax, ncol=3)
            fig.tight_layout(rect=(0, 0.08, 1, 1))
            name = "fan_" + "_".join([metric, *[x for x in key if x]]) + ".png"
            fig.savefig(fig_dir / name, dpi=110)
            plt.close(fig)
            files.append(name)
    return files


def _md_table(df: pd.DataFrame, floatfmt: str = "{:.3g}") -> str:
    cols = list(df.columns)
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for _, r in df.iterrows():
        cells = [floatfmt.format(v) if isinstance(v, float) else str(v) for v in r]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def analyze(
    out: str | Path,
    *,
    prim: tuple[str, float, bool] | None = None,
    figures: bool = True,
    log_outcomes: list[str] | None = None,
) -> Path:
    """Analyse a sweep directory and write ``analysis/report.md``.

    Args:
        out: The sweep output directory.
        prim: ``(outcome, threshold, above)`` for scenario discovery; default from the
            spec's ``[analysis]`` table.
        figures: Whether to draw figures.
        log_outcomes: Outcomes analysed on the log scale; default from the spec's
            ``[analysis]`` table.

    Returns:
        The path of the report.
    """
    import matplotlib

    matplotlib.use("Agg")
    out = Path(out)
    info, spec, design, runs = _load(out)
    adir = out / "analysis"
    fig_dir = adir / "figures"
    fig_dir.mkdir(parents=True, exist_ok=True)
    n_ok = int((runs["status"] == "ok").sum())
    lines = [
        f"# Sweep report: {spec.name}",
        "",
        spec.description,
        "",
        f"- design: {spec.design.method}, {len(design)} rows x {spec.replicates} "
        f"replicate(s) = {info['n_runs']} runs",
        f"- runs on disk: {len(runs)} ({n_ok} ok, {len(runs) - n_ok} failed)",
        f"- base world: `{shown_path(info['world_file'])}`; "
        f"overrides: {spec.base.overrides or 'none'}",
        f"- root seed {spec.seed}; fingerprint `{info['fingerprint'][:12]}`",
        "",
    ]
    if len(runs) < info["n_runs"]:
        lines += [
            f"**Incomplete sweep**: {info['n_runs'] - len(runs)} runs missing "
            "(run `ndsim sweep --resume`).",
            "",
        ]
    failed = runs[runs["status"] != "ok"]
    if len(failed):
        top = failed["error"].str.slice(0, 120).value_counts().head(5)
        lines += ["## Failed runs", "", _md_table(top.rename_axis("error").reset_index()), ""]

    # outcome summary
    names = [o.name for o in spec.outcomes]
    if names:
        ok = runs[runs["status"] == "ok"][names]
        summ = ok.describe(percentiles=[0.05, 0.5, 0.95]).T[["mean", "std", "5%", "50%", "95%"]]
        lines += ["## Outcomes", "", _md_table(summ.rename_axis("outcome").reset_index()), ""]

    # sensitivity
    log = frozenset(spec.analysis.log_outcomes if log_outcomes is None else log_outcomes)
    unknown = sorted(log - {o.name for o in spec.outcomes})
    if unknown:
        raise UserError(
            f"--log {', '.join(unknown)}: no such outcome in {out / 'sweep.json'} "
            f"(outcomes: {', '.join(o.name for o in spec.outcomes)})"
        )
    idx, notes, warns = sensitivity(spec, design, runs, log)
    if not idx.empty:
        idx.to_csv(adir / "indices.csv", index=False)
        sobol = spec.design.method == "sobol"
        title = "Sobol indices (S1, ST; 95% CI)" if sobol else "Morris screening (mu*, sigma)"
        key = "ST" if sobol else "mu_star"
        lines += [
            f"## {title}",
            "",
            f"Intervals: 95 % bootstrap (200 resamples). `{key}_half`: the same index from "
            f"the first half of the design (N/2); a change above {CONVERGENCE_TOLERANCE} "
            + ("" if sobol else "of the largest mu* ")
            + "means the indices have not converged.",
            "",
        ]
        for outcome, grp in idx.groupby("outcome", sort=False):
            on_log = grp["scale"].iloc[0] == "log"
            lines += [f"### log({outcome})" if on_log else f"### {outcome}", ""]
            if on_log:
                lines += [
                    "Indices of the outcome's logarithm (relative changes; `[analysis] "
                    "log_outcomes`), so that a few runaway runs do not decide them.",
                    "",
                ]
            lines += [f"**Warning**: {w}." for w in warns.get(outcome, [])]
            lines += ["", _md_table(grp.drop(columns=["outcome", "scale"])), ""]
    if notes:
        lines += ["## Notes", "", *[f"- {n}" for n in notes], ""]

    # scenario discovery
    if prim is None and spec.analysis.prim_outcome is not None:
        if spec.analysis.prim_threshold is not None:
            prim = (
                spec.analysis.prim_outcome,
                spec.analysis.prim_threshold,
                spec.analysis.prim_above,
            )
    if prim is not None:
        lines += _prim_section(spec, runs, prim, adir)

    if figures:
        lines += ["## Figures", ""]
        files = []
        if not idx.empty:
            files += _fig_indices(idx, spec.design.method, fig_dir, warns)
        dist = _fig_distributions(spec, runs, fig_dir)
        files += [dist] if dist else []
        files += _fig_fans(out, spec, fig_dir)
        lines += [f"![{f}](figures/{f})" for f in files] + [""]
    report = adir / "report.md"
    report.write_text("\n".join(lines))
    return report


def _prim_section(
    spec: SweepSpec, runs: pd.DataFrame, prim_arg: tuple[str, float, bool], adir: Path
) -> list[str]:
    from sim.experiments.prim import prim

    outcome, thr, above = prim_arg
    if outcome not in [o.name for o in spec.outcomes]:
        raise UserError(
            f"--prim: no outcome {outcome!r}; outcomes are {[o.name for o in spec.outcomes]}"
        )
    ok = runs[(runs["status"] == "ok") & runs[outcome].notna()]
    cols = [p.column for p in spec.parameters]
    y = (ok[outcome] > thr) if above else (ok[outcome] < thr)
    head = [f"## Scenario discovery (PRIM): {outcome} {'>' if above else '<'} {thr:g}", ""]
    if y.sum() == 0 or y.all():
        return head + [
            f"{int(y.sum())} of {len(y)} runs are cases of interest: no box to find.",
            "",
        ]
    res = prim(ok[cols].reset_index(drop=True), y.to_numpy())
    traj = res.trajectory_frame()
    traj.to_csv(adir / "prim.csv", index=False)
    b = res.box
    lim = pd.DataFrame(
        [
            {
                "parameter": c,
                "low": lo,
                "high": hi,
                "range_low": res.bounds[c][0],
                "range_high": res.bounds[c][1],
            }
            for c, (lo, hi) in res.restricted().items()
        ]
    )
    return head + [
        f"{int(y.sum())} of {len(y)} runs are cases of interest (base density "
        f"{res.base_density:.2f}). Chosen box {res.chosen} of {len(traj)}: coverage "
        f"{b.coverage:.2f}, density {b.density:.2f}, mass {b.mass:.2f}.",
        "",
        _md_table(lim) if len(lim) else "(the box restricts no parameter)",
        "",
        "Peeling trajectory: `analysis/prim.csv`.",
        "",
    ]
