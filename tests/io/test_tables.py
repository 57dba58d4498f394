"""Table exports (io/tables.py): the bytes the CLI and the app's download buttons write."""

from __future__ import annotations

import csv
import io
import json
import math

import numpy as np
import pandas as pd
import pytest
import torch

from farms_viz import analyze
from farms_viz.cli import main
from farms_viz.errors import FarmsError
from farms_viz.io.tables import TABLE_FORMATS, table_bytes
from farms_viz.pipeline.schema import COLUMNS


@pytest.fixture(autouse=True)
def cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("FARMS_VIZ_CACHE", str(tmp_path / "cache"))


def _src(tmp_path) -> str:
    from safetensors.torch import save_file

    g = torch.Generator().manual_seed(1)
    p = tmp_path / "m.safetensors"
    save_file({"=cmd|' /C calc'!A0.weight": torch.randn(48, 16, generator=g),
               "b.weight": torch.randn(32, 32, generator=g)}, str(p))
    return str(p)


def _table() -> pd.DataFrame:
    return pd.DataFrame({
        "layer": ["a.q", "=SUM(A1)", "naïve \"quoted\", name", "-1.5"],
        "rows": np.array([4096, 11008, 3, 1], dtype=np.int64),
        "alpha": [1.234567890123e-7, np.nan, math.inf, -0.5],
        "xmin": np.array([0.1, 1 / 3, 2e300, 5e-324]),
        "ok": [True, False, True, True],
        "status": ["ok", "no fit: tail < 5", "ok", "ok"],
    })


def test_csv_header_is_the_analyze_commands_header(tmp_path):
    src = _src(tmp_path)
    assert main(["analyze", src, "--out", str(tmp_path / "t.csv"), "--quiet", "--window", "16", "--ops", "3"]) == 0
    written = (tmp_path / "t.csv").read_bytes()
    report = analyze(src, window=16, ops=3)
    mine = table_bytes(report.table, "csv")
    assert mine.split(b"\n")[0] == written.split(b"\n")[0] == ",".join(COLUMNS).encode()
    # every cell but the timing equals the file the CLI wrote
    a, b = pd.read_csv(io.BytesIO(mine)), pd.read_csv(io.BytesIO(written))
    pd.testing.assert_frame_equal(a.drop(columns="seconds"), b.drop(columns="seconds"))
    assert b["layer"].iloc[0].startswith("'=cmd")  # formula-safe, as to_csv


@pytest.mark.parametrize("fmt", list(TABLE_FORMATS))
def test_report_save_writes_exactly_table_bytes(tmp_path, fmt):
    report = analyze(_src(tmp_path), window=16, ops=3)
    report.save(tmp_path / f"r.{fmt}")
    assert (tmp_path / f"r.{fmt}").read_bytes() == table_bytes(report.table, fmt)


def test_json_round_trips_every_value_exactly():
    t = _table()
    records = json.loads(table_bytes(t, "json"))
    assert [list(r) for r in records] == [list(t.columns)] * len(t)
    back = pd.DataFrame.from_records(records, columns=t.columns)
    assert back["layer"].tolist() == t["layer"].tolist()  # text as is (JSON is not a spreadsheet)
    assert back["rows"].tolist() == [4096, 11008, 3, 1] and all(type(v) is int for v in back["rows"])
    assert back["xmin"].tolist() == t["xmin"].tolist()  # bit for bit, the subnormal included
    assert back["ok"].tolist() == [True, False, True, True]
    # NaN and infinities are null: valid JSON for every reader
    assert records[0]["alpha"] == 1.234567890123e-7 and records[1]["alpha"] is None and records[2]["alpha"] is None
    assert pd.read_json(io.BytesIO(table_bytes(t, "json")), orient="records")["rows"].tolist() == [4096, 11008, 3, 1]


def test_json_of_a_real_report_keeps_every_column_and_reads_back(tmp_path):
    report = analyze(_src(tmp_path), window=16, ops=3)
    records = json.loads(table_bytes(report.table, "json"))
    assert list(records[0]) == COLUMNS
    back = pd.DataFrame.from_records(records, columns=COLUMNS)
    for col in ("alpha_raw", "alpha_farms", "xmin_raw", "spectral_norm", "mp_sigma_farms"):
        assert back[col].tolist() == report.table[col].tolist()


def test_csv_is_formula_safe_and_keeps_numbers():
    rows = list(csv.reader(io.StringIO(table_bytes(_table(), "csv").decode())))
    assert rows[0] == list(_table().columns)
    assert [r[0] for r in rows[1:]] == ["a.q", "'=SUM(A1)", "naïve \"quoted\", name", "-1.5"]
    assert rows[4][2] == "-0.5"


def test_unknown_format_is_a_sentence():
    with pytest.raises(FarmsError, match="Unknown table format 'xlsx'; choose one of csv, json"):
        table_bytes(_table(), "xlsx")
