"""A catalogue of bad world files: clear message (file, key path, expectation, closest key),
exit code 2, no traceback, nothing written."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import CLASSROOM

GOOD = CLASSROOM.read_text()

CASES = {
    "typo_key": (
        GOOD.replace("price_elasticity = -0.05", "price_elastcity = -0.05"),
        ["sectors.wind.price_elastcity", "unknown key", "price_elasticity"],
    ),
    "negative_capacity": (
        GOOD.replace("capacity_t_per_yr = 40000", "capacity_t_per_yr = -5"),
        ["mines[1].capacity_t_per_yr", "greater than or equal to 0"],
    ),
    "wrong_type": (
        GOOD.replace("capacity_t_per_yr = 8000", 'capacity_t_per_yr = "lots"'),
        ["recyclers[0].capacity_t_per_yr", "valid number"],
    ),
    "bad_month": (GOOD.replace('end = "2035-12"', 'end = "2035-13"'), ["calendar.end", "YYYY-MM"]),
    "unknown_sector": (
        GOOD.replace(
            'sector = "ev"\ndemand_t_per_yr = 8000', 'sector = "cars"\ndemand_t_per_yr = 8000'
        ),
        ["oems[2].sector", "ev"],
    ),
    "missing_share": (GOOD.replace("ndpr_share = 0.16\n", ""), ["mines[1].ndpr_share", "required"]),
    "duplicate_id": (
        GOOD.replace('id = "usa_mine"', 'id = "china_mine"'),
        ["duplicate id 'china_mine'"],
    ),
    "bad_toml": (GOOD + "\n[[mines]\n", ["not valid TOML"]),
    "unknown_table": (
        GOOD + "\n[behavior]\nprice_discovery_months = 3\n",
        ["behavior", "unknown key", "behaviour"],
    ),
    "unknown_policy": (GOOD + "\n[policies.export_contrls]\n", ["policies", "export_contrls"]),
    "order_fill_above_capacity": (
        GOOD + "\n[behaviour]\norder_fill_utilisation = { magnet_plant = 1.5 }\n",
        ["behaviour.order_fill_utilisation.magnet_plant", "less than or equal to 1"],
    ),
}


def _ndsim(*args, cwd):
    return subprocess.run(
        [sys.executable, "-m", "sim.cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=120,
    )


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_world_file(name, tmp_path):
    text, needles = CASES[name]
    path = tmp_path / f"{name}.toml"
    path.write_text(text)
    out = tmp_path / "out"
    proc = _ndsim("run", str(path), "--out", str(out), cwd=Path(__file__).parents[1])
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert str(path) in proc.stderr
    for needle in needles:
        assert needle in proc.stderr, proc.stderr
    assert not out.exists()
    assert not any(p.name.startswith(".out") for p in tmp_path.iterdir())
    val = _ndsim("validate", str(path), cwd=Path(__file__).parents[1])
    assert val.returncode == 2 and "Traceback" not in val.stderr


def test_missing_file(tmp_path):
    proc = _ndsim("run", str(tmp_path / "nope.toml"), cwd=tmp_path)
    assert proc.returncode == 2
    assert "file not found" in proc.stderr


def test_bad_set_override(tmp_path):
    proc = _ndsim(
        "run",
        str(CLASSROOM),
        "--set",
        "mines.china_mne.capacity_t_per_yr=1",
        "--out",
        str(tmp_path / "o"),
        cwd=tmp_path,
    )
    assert proc.returncode == 2
    assert "china_mine" in proc.stderr  # closest id suggested
    assert not (tmp_path / "o").exists()


def test_validate_accepts_good_files():
    for world in ("models/classroom.toml", "models/baseline_2024.toml"):
        proc = _ndsim("validate", world, cwd=Path(__file__).parents[1])
        assert proc.returncode == 0, proc.stderr
        assert "valid world" in proc.stdout


@pytest.mark.parametrize(
    "args, needle",
    [
        (["--start", "2024-13"], "--start '2024-13'"),
        (["--end", "soon"], "--end 'soon'"),
        (["--start", "2030-01", "--end", "2025-01"], "before --start"),
    ],
)
def test_bad_period(args, needle, tmp_path):
    proc = _ndsim("run", str(CLASSROOM), *args, "--out", str(tmp_path / "o"), cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert needle in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "o").exists()


def test_messages_name_the_id_and_the_near_miss():
    import copy

    from sim.errors import UserError
    from sim.world import read_toml, validate_world

    raw = read_toml(Path(__file__).resolve().parents[1] / "models" / "classroom.toml")
    neg = copy.deepcopy(raw)
    neg["mines"][0]["capacity_t_per_yr"] = -5
    with pytest.raises(UserError) as exc:
        validate_world(neg)
    mine_id = raw["mines"][0]["id"]
    assert f"mines[0].capacity_t_per_yr (id '{mine_id}')" in str(exc.value)
    typo = copy.deepcopy(raw)
    typo["mines"][0]["ndpr_shar"] = typo["mines"][0].pop("ndpr_share")
    with pytest.raises(UserError) as exc:
        validate_world(typo)
    assert "required key is missing (is 'ndpr_shar' a misspelling of 'ndpr_share'?)" in str(
        exc.value
    )
