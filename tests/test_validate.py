"""``ndsim holdout``: spec errors, outputs of a small run, determinism, the error table.

The small runs use the classroom world and a hand-made posterior (two US mine capacities
with weights, as ``ndsim calibrate`` writes them), so every run's parameters are known and
can be checked in the simulated values themselves.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sim.cli import main

ROOT = Path(__file__).resolve().parents[1]
CLASSROOM = ROOT / "models" / "classroom.toml"
MINE = "mines.usa_mine.capacity_t_per_yr"
SEP = "separators.usa_separator.capacity_t_per_yr"
CAPS = [12000.0, 55000.0]  # the posterior's two US mine capacities (t/yr)
SEP_FIXED = 4321.0  # the separator capacity a second calibration's point.toml fixes (t/yr)
MONTHS = ["2025-03", "2025-06"]
# name, metric, product, region, extra keys
TARGETS = [
    ("usa_mine_cap", "capacity_t_per_yr", "concentrate", "usa", {}),
    ("usa_sep_cap", "capacity_t_per_yr", "oxide", "usa", {}),
    ("china_magnet_exports", "exports_t", "magnet", "china", {"aggregation": "sum"}),
    ("ex_china_oxide_price", "price_usd_per_kg", "oxide", "ex_china", {}),
    ("china_oxide_price", "price_usd_per_kg", "oxide", "china", {}),
    ("premium", "price_usd_per_kg", "oxide", "ex_china", {"relative_to": "china"}),
]


def _posterior(d: Path) -> Path:
    """A finished calibration's files as `ndsim calibrate` writes them (two sets, weighted)."""
    d.mkdir(parents=True, exist_ok=True)
    col = MINE.replace(".", "__")
    pd.DataFrame({col: CAPS, "weight": [0.5, 0.5]}).to_parquet(d / "posterior.parquet")
    spec = {"parameters": [{"path": MINE, "name": None}], "base": {"end": "2024-12"}}
    (d / "calibrate.json").write_text(json.dumps({"name": "tiny", "spec": spec}))
    return d


def _spec(d: Path, *, draws: int = 4, extra: str = "", fixed: bool = True) -> Path:
    """A hold-out spec over the classroom world with one data file per target."""
    _posterior(d / "post")
    (d / "licence").mkdir(exist_ok=True)
    (d / "licence" / "point.toml").write_text(f'[values]\n"{SEP}" = {SEP_FIXED}\n')
    lines = [
        'name = "tiny_holdout"',
        "seed = 7",
        'posterior = "post"',
        f"draws = {draws}",
        *(['fixed = ["licence"]'] if fixed else []),
        extra,
        "[base]",
        f'world = "{CLASSROOM}"',
        'start = "2024-01"',
        'end = "2025-06"',
        'overrides = ["calendar.spinup_months=6"]',
    ]
    for name, metric, product, region, more in TARGETS:
        unit = "ratio" if "relative_to" in more else "t" if metric == "exports_t" else "x"
        rows = "\n".join(f"{m},1.0,0.9,1.1,{unit},test" for m in MONTHS)
        (d / f"{name}.csv").write_text(f"period,value,low,high,unit,source\n{rows}\n")
        lines += ["[[targets]]", f'name = "{name}"', f'file = "{name}.csv"']
        lines += [f'metric = "{metric}"', f'product = "{product}"', f'region = "{region}"']
        lines += [f'{k} = "{v}"' for k, v in more.items()]
    p = d / "holdout.toml"
    p.write_text("\n".join(lines) + "\n")
    return p


def _run(spec: Path, out: Path, workers: int = 1) -> int:
    args = ["holdout", str(spec), "--out", str(out), "--workers", str(workers), "--no-progress"]
    return main([*args, "--no-figures"] if workers > 1 else args)


# ------------------------------------------------------------------------------ spec errors
def test_unknown_key_and_missing_posterior_are_clear_errors(tmp_path, capsys):
    spec = _spec(tmp_path, extra="drawz = 3")
    assert _run(spec, tmp_path / "out") == 2
    err = capsys.readouterr().err
    assert "hold-out spec" in err and "drawz" in err and "unknown key" in err
    assert "Traceback" not in err and not (tmp_path / "out").exists()

    spec = _spec(tmp_path)
    (tmp_path / "post" / "posterior.parquet").unlink()
    assert _run(spec, tmp_path / "out") == 2
    err = capsys.readouterr().err
    assert "posterior: no finished calibration in 'post'" in err and "posterior.parquet" in err
    assert "Traceback" not in err and not (tmp_path / "out").exists()
    assert main(["validate", str(spec)]) == 2  # `ndsim validate` checks the same way


def test_bad_ratio_and_clashing_fixed_values_are_clear_errors(tmp_path, capsys):
    spec = _spec(tmp_path)
    text = spec.read_text()
    bad = text.replace('region = "ex_china"\nrelative_to = "china"', 'region = "ex_china"\n'
                       'relative_to = "ex_china"')  # fmt: skip
    spec.write_text(bad)
    assert _run(spec, tmp_path / "out") == 2
    assert "targets[5]: 'relative_to' needs 'region', and another region" in (
        capsys.readouterr().err
    )
    spec.write_text(text)
    (tmp_path / "licence" / "point.toml").write_text(f'[values]\n"{MINE}" = 1.0\n')
    assert _run(spec, tmp_path / "out") == 2
    assert f"fixed: {MINE} is a parameter of the calibration" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------------------------ a small run
@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    d = tmp_path_factory.mktemp("holdout")
    spec = _spec(d)
    assert _run(spec, d / "out") == 0
    return d, spec


def test_small_run_writes_tidy_predictions_errors_report_and_figures(small_run):
    d, spec = small_run
    assert main(["validate", str(spec)]) == 0  # checks the spec, runs nothing
    out = d / "out"
    pred = pd.read_parquet(out / "predictions.parquet")
    assert list(pred.columns) == ["draw", "seed", "target", "period", "unit", "value"]
    assert len(pred) == 4 * len(TARGETS) * len(MONTHS)
    errors = pd.read_csv(out / "errors.csv")
    from sim.calibrate.validate_report import ERROR_COLUMNS

    assert list(errors.columns) == ERROR_COLUMNS and len(errors) == len(TARGETS) * len(MONTHS)
    draws = pd.read_csv(out / "draws.csv")
    assert list(draws["draw"]) == [0, 1, 2, 3] and (draws["status"] == "ok").all()
    # each draw's mine capacity comes from the posterior, and its runs simulate with it
    assert set(draws[MINE]) <= set(CAPS)
    cap = pred[pred["target"] == "usa_mine_cap"].groupby("draw")["value"].first()
    assert np.array_equal(cap.to_numpy(), draws[MINE].to_numpy())
    # the fixed point.toml value is set in every run
    assert (pred[pred["target"] == "usa_sep_cap"]["value"] == SEP_FIXED).all()
    # run seeds: SeedSequence(7)'s children, one per draw
    seeds = [int(c.generate_state(1)[0]) for c in np.random.SeedSequence(7).spawn(4)]
    assert list(draws["seed"]) == seeds
    report = (out / "report.md").read_text()
    assert "| premium | 2025-03 |" in report and "median / data - 1" in report
    for name, *_ in TARGETS:
        assert (out / "figures" / f"holdout_{name}.png").stat().st_size > 10_000


def test_relative_target_is_the_ratio_of_the_two_regions(small_run):
    d, _ = small_run
    pred = pd.read_parquet(d / "out" / "predictions.parquet")
    v = pred.pivot_table(index=["draw", "period"], columns="target", values="value")
    ratio = v["ex_china_oxide_price"] / v["china_oxide_price"]
    assert np.allclose(v["premium"], ratio, rtol=1e-12)
    assert not np.allclose(v["premium"], 1.0)  # the two prices differ: a real ratio


def test_same_spec_gives_the_same_bytes_on_the_pool(small_run):
    d, spec = small_run
    assert _run(spec, d / "again", workers=2) == 0
    a = (d / "out" / "predictions.parquet").read_bytes()
    assert a == (d / "again" / "predictions.parquet").read_bytes()
    assert (d / "out" / "errors.csv").read_text() == (d / "again" / "errors.csv").read_text()
    assert _run(spec, d / "again") == 2  # an output folder that holds files is refused


def test_other_seed_gives_other_draws(tmp_path, small_run):
    from sim.calibrate.validate import prepare

    d, spec = small_run
    a = prepare(spec).draws
    other = tmp_path / "other.toml"
    other.write_text(spec.read_text().replace("seed = 7", "seed = 8"))
    for f in d.glob("*.csv"):
        (tmp_path / f.name).write_text(f.read_text())
    _posterior(tmp_path / "post")
    (tmp_path / "licence").mkdir()
    (tmp_path / "licence" / "point.toml").write_text((d / "licence" / "point.toml").read_text())
    b = prepare(other).draws
    assert [x.seed for x in a] != [x.seed for x in b]


def test_sigterm_stops_with_exit_130_and_writes_nothing(tmp_path):
    spec = _spec(tmp_path, draws=200)
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "sim.cli", "holdout", str(spec), "--out", str(out),
           "--workers", "1"]  # fmt: skip
    proc = subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    seen = ""
    deadline = time.monotonic() + 300
    while "1/200" not in seen and time.monotonic() < deadline:  # a run has finished
        seen += proc.stderr.read(1)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, seen + err
    assert "interrupted: nothing written" in err and "Traceback" not in err
    assert not out.exists() and not list(tmp_path.glob(".out*"))


# ------------------------------------------------------------------------------ errors
def test_error_table_against_a_hand_made_case(tmp_path):
    from sim.calibrate.spec import TargetSpec
    from sim.calibrate.targets import TargetData
    from sim.calibrate.validate_report import error_table

    spec = TargetSpec(name="x", file="x.csv", metric="exports_t", region="china")
    t = TargetData(
        spec=spec,
        periods=("2025-06", "2025-07", "2025-08"),
        value=np.array([12.0, 25.0, 5.0]),
        low=np.array([11.0, 24.0, np.nan]),
        high=np.array([13.0, 26.0, np.nan]),
        unit="t",
        sources=("a", "b", "c"),
    )
    rows = []
    for draw in range(20):  # draw k simulates k + 1 in June and July; August has 2 failures
        rows += [(draw, "x", "2025-06", draw + 1.0), (draw, "x", "2025-07", draw + 1.0)]
        rows.append((draw, "x", "2025-08", np.nan if draw < 2 else 10.0))
    pred = pd.DataFrame(rows, columns=["draw", "target", "period", "value"])
    e = error_table([t], pred).set_index("period")
    # 20 values 1..20: inverted-CDF quantiles are the 1st, 10th and 19th smallest
    assert list(e.loc["2025-06", ["median", "p05", "p95"]]) == [10.0, 1.0, 19.0]
    assert e.loc["2025-06", "error"] == pytest.approx(10.0 / 12.0 - 1)
    assert e.loc["2025-06", "data_in_band"] and not e.loc["2025-07", "data_in_band"]  # 25 > 19
    assert e.loc["2025-07", "error"] == pytest.approx(10.0 / 25.0 - 1)
    assert e.loc["2025-08", "draws_ok"] == 18 and e.loc["2025-08", "median"] == 10.0
    assert e.loc["2025-08", "error"] == pytest.approx(1.0) and not e.loc["2025-08", "data_in_band"]
    assert np.isnan(e.loc["2025-08", "data_low"]) and e.loc["2025-06", "data_high"] == 13.0
