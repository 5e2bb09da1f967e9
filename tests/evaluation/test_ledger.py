"""The test-read ledger: one line per read, counted per (data, configuration)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from shoprec.evaluation.ledger import LEDGER_ENV, Ledger, config_key
from shoprec.evaluation.report import ledger_table


def read(ledger: Ledger, data: str = "d" * 64, model: str = "pop", **config: object) -> int:
    return ledger.record(
        data_name="beauty",
        data_fingerprint=data,
        model=model,
        config={"model": model, **config},
        split="loo",
        n_users=9,
    )


def test_each_record_is_one_json_line_and_the_count_is_per_data_and_config(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "runs" / "reads.jsonl")
    assert ledger.entries() == [] and ledger.summary() == []
    assert [read(ledger), read(ledger), read(ledger, shrink=10), read(ledger, data="e" * 64)] == [1, 2, 1, 1]
    lines = (tmp_path / "runs" / "reads.jsonl").read_text().splitlines()
    assert len(lines) == 4
    first = json.loads(lines[0])
    assert first["data_fingerprint"] == "d" * 64 and first["split"] == "loo" and first["n_users"] == 9
    assert first["time"].endswith("Z") and "git_commit" in first
    assert [reads for _, reads in ledger.summary()] == [2, 1, 1]


def test_config_key_ignores_key_order_and_sees_every_value() -> None:
    assert config_key({"a": 1, "b": [1, 2]}) == config_key({"b": [1, 2], "a": 1})
    assert config_key({"a": 1}) != config_key({"a": 2})


def test_default_ledger_follows_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(LEDGER_ENV, str(tmp_path / "elsewhere.jsonl"))
    assert Ledger.default().path == tmp_path / "elsewhere.jsonl"
    monkeypatch.delenv(LEDGER_ENV)
    assert Ledger.default().path == Path("runs/test_reads.jsonl")


def test_ledger_table_has_one_row_per_data_and_config(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "reads.jsonl")
    read(ledger)
    read(ledger)
    read(ledger, model="itemknn")
    lines = ledger_table(ledger.summary()).splitlines()
    assert lines[0] == "| data | fingerprint | model | split | config | reads | last read |"
    assert [line.split(" | ")[2] for line in lines[2:]] == ["pop", "itemknn"]
    assert [line.split(" | ")[5] for line in lines[2:]] == ["2", "1"]
