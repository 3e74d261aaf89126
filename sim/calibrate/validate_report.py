"""A hold-out test's outputs: predictions, errors per data point, figures and ``report.md``.

The draws are resampled from the posterior by weight, so each draw counts once: the
posterior-predictive median and 5-95 % band of a data point are plain quantiles of the
draws' simulated values (inverted CDF, as in the calibration report).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa

from sim.calibrate.report import BAND, effective_sample_size, fit_figure, weighted_quantile
from sim.experiments.runner import _atomic_write
from sim.io import shown_path

if TYPE_CHECKING:
    from sim.calibrate.targets import TargetData
    from sim.calibrate.validate import Prepared

ERROR_COLUMNS = [
    "target", "period", "unit", "data", "data_low", "data_high", "median", "p05", "p95",
    "error", "data_in_band", "draws_ok",
]  # fmt: skip


def error_table(targets: list[TargetData], pred: pd.DataFrame) -> pd.DataFrame:
    """Per target and data row: the data, its band, the predictive median and band, the error.

    Args:
        targets: The held-out data.
        pred: ``predictions.parquet``'s rows (target, period, value per draw).

    Returns:
        One row per data point (columns :data:`ERROR_COLUMNS`): ``error`` is median / data - 1;
        ``data_in_band`` whether the data value lies within the draws' 5-95 % band;
        ``draws_ok`` how many draws gave a value (failed runs give none).
    """
    groups = {k: g["value"].to_numpy(float) for k, g in pred.groupby(["target", "period"])}
    rows = []
    for t in targets:
        for j, p in enumerate(t.periods):
            v = groups.get((t.name, p), np.array([]))
            v = v[np.isfinite(v)]
            q = (
                [weighted_quantile(v, np.ones(len(v)), x) for x in (0.5, *BAND)]
                if len(v)
                else [np.nan] * 3
            )
            data = float(t.value[j])
            rows.append(
                {
                    "target": t.name,
                    "period": p,
                    "unit": t.unit,
                    "data": data,
                    "data_low": float(t.low[j]),
                    "data_high": float(t.high[j]),
                    "median": q[0],
                    "p05": q[1],
                    "p95": q[2],
                    "error": q[0] / data - 1 if data else np.nan,
                    "data_in_band": bool(len(v) and q[1] <= data <= q[2]),
                    "draws_ok": len(v),
                }
            )
    return pd.DataFrame(rows, columns=ERROR_COLUMNS)


def _g(x: float) -> str:
    return "–" if not np.isfinite(x) else f"{x:.4g}"


def report_md(
    prep: Prepared, errors: pd.DataFrame, draws: pd.DataFrame, *, wall: float, backend: str,
    figures: bool,
) -> str:  # fmt: skip
    """The Markdown report: what was run, how, and the error per held-out data point."""
    spec, cal = prep.spec, prep.calibration
    cal_spec = cal.get("spec", {})
    cal_end = (cal_spec.get("base") or {}).get("end")
    n_err = int((draws["status"] != "ok").sum())
    post = pd.read_parquet(prep.posterior_dir / "posterior.parquet", columns=["weight"])
    ess = effective_sample_size(post["weight"].to_numpy())
    n_sets = len(draws.drop_duplicates(subset=list(prep.draws[0].values)))
    lines = [
        f"# Hold-out test `{spec.name}`",
        "",
        spec.description,
        "",
        f"- spec: `{shown_path(prep.spec_path)}`; "
        f"base world: `{shown_path(prep.ctx.base.world_file)}`, "
        f"{prep.ctx.base.start or 'its start'} to {prep.ctx.base.end or 'its end'}",
        f"- calibration: `{shown_path(prep.posterior_dir)}` (`{cal.get('name')}`, "
        "fitted to data up to "
        f"{cal_end or 'the end of its period'}; {len(cal_spec.get('parameters', []))} "
        "parameters drawn)",
        f"- fixed in every run: {', '.join(f'`{k}` = {v!r}' for k, v in prep.fixed.items())}"
        if prep.fixed
        else "- fixed in every run: nothing beyond the world file",
        f"- draws: {len(draws)} ({n_err} failed); seed {spec.seed}; wall time {wall:.1f} s "
        f"on {backend}",
        f"- posterior: {len(post)} accepted sets, effective sample size {ess:.1f} (1 / sum of "
        f"squared weights); {n_sets} distinct parameter sets among the draws",
        "",
        "## Method",
        "",
        f"{spec.draws} parameter sets were resampled from the calibration's `posterior.parquet` "
        f"by weight (`SeedSequence({spec.seed})`); each ran once with its own model seed "
        f"(`SeedSequence({spec.seed})`'s child of the same index), so the bands hold parameter "
        "uncertainty and seed noise together. Nothing was refitted. For each held-out data "
        "point the table gives the median and the 5-95 % band of the draws' simulated values "
        "(the posterior-predictive distribution), the error median / data - 1, and whether "
        "the data value lies within the band. A target with `relative_to` is the ratio of "
        "its region's series to that region's (e.g. the ex-China price premium over China).",
        "",
        "## Errors",
        "",
        "| target | period | data | data low | data high | model median | model 5 % | "
        "model 95 % | error | data in band | draws |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---|---:|",
    ]
    for r in errors.itertuples():
        unit = f" {r.unit}" if r.unit else ""
        lines.append(
            f"| {r.target} | {r.period} | {_g(r.data)}{unit} | {_g(r.data_low)} | "
            f"{_g(r.data_high)} | {_g(r.median)} | {_g(r.p05)} | {_g(r.p95)} | "
            f"{r.error:+.1%} | {'yes' if r.data_in_band else 'no'} | {r.draws_ok} |"
        )
    lines += [
        "",
        "| target | points | mean absolute error | data in band |",
        "|---|---:|---:|---:|",
    ]
    for name, g in errors.groupby("target", sort=False):
        lines.append(
            f"| {name} | {len(g)} | {np.nanmean(np.abs(g['error'])):.1%} | "
            f"{int(g['data_in_band'].sum())} of {len(g)} |"
        )
    if ess < 20:
        lines += [
            "",
            f"**Warning:** the posterior's effective sample size is {ess:.1f}: the draws "
            "repeat a few parameter sets, so the bands understate parameter uncertainty.",
        ]
    if cal_end is not None:
        inside = errors[[p[:7] <= cal_end for p in errors["period"]]]
        if len(inside):
            lines += [
                "",
                f"**Note:** {len(inside)} data point(s) lie inside the calibration's period "
                f"(to {cal_end}); they are not out of sample.",
            ]
    if figures:
        lines += ["", "## Figures", ""]
        lines += [f"![{t.name}](figures/holdout_{t.name}.png)" for t in prep.targets]
    lines += [
        "",
        "Files: `predictions.parquet` (draw, seed, target, period, unit, simulated value), "
        "`draws.csv` (each draw's parameters and status), `errors.csv` (the table above).",
        "",
    ]
    return "\n".join(lines)


def write_outputs(
    prep: Prepared, out: Path, pred: pd.DataFrame, draws: pd.DataFrame, *, wall: float,
    backend: str, figures: bool = True,
) -> pd.DataFrame:  # fmt: skip
    """Write predictions, draws, errors, figures and the report into ``out``; return errors."""
    _atomic_write(pa.Table.from_pandas(pred, preserve_index=False), out / "predictions.parquet")
    draws.to_csv(out / "draws.csv", index=False)
    errors = error_table(prep.targets, pred)
    errors.to_csv(out / "errors.csv", index=False)
    if figures:
        for t in prep.targets:
            e = errors[errors["target"] == t.name]
            band = e[["period", "median", "p05", "p95"]].rename(
                columns={"p05": "low", "p95": "high"}
            )
            fit_figure(t, band.reset_index(drop=True), out / "figures" / f"holdout_{t.name}.png")
    text = report_md(prep, errors, draws, wall=wall, backend=backend, figures=figures)
    (out / "report.md").write_text(text)
    return errors


def summary_line(errors: pd.DataFrame) -> str:
    """One line per target: mean absolute error and data points in the band."""
    parts: list[str] = []
    for name, g in errors.groupby("target", sort=False):
        mae: Any = np.nanmean(np.abs(g["error"]))
        parts.append(f"{name}: |error| {mae:.0%}, {int(g['data_in_band'].sum())}/{len(g)} in band")
    return "; ".join(parts)
