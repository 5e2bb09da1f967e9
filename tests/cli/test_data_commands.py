"""`shoprec data validate|stats` as an operator uses them on a file with bad rows."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from shoprec.cli import app

runner = CliRunner()

EVENTS = """user_id,item_id,event_type,timestamp
u1,i1,view,1700000000
u1,i2,cart,1700000060
,i3,view,1700000120
u2,i1,purchase,not-a-time
u2,i2,teleport,1700000180
u2,i3,view,1700000240
u1,i2,cart,1700000060
u3,i1,view,2024-01-05T10:00:00Z
"""


def test_validate_keeps_good_rows_and_reports_every_bad_one_by_line(tmp_path: Path) -> None:
    events = tmp_path / "events.csv"
    events.write_text(EVENTS)
    result = runner.invoke(app, ["data", "validate", str(events)])
    assert result.exit_code == 0, result.output
    assert "loaded 4 rows, rejected 4" in result.output
    rejects = [json.loads(line) for line in (tmp_path / "events.rejects.jsonl").read_text().splitlines()]
    assert [r["line"] for r in rejects] == [4, 5, 6, 8]
    reasons = " ".join(r["reason"] for r in rejects)
    assert "timestamp" in reasons and "event type" in reasons and "duplicate" in reasons


def test_validate_fails_on_a_schema_error_without_traceback(tmp_path: Path) -> None:
    events = tmp_path / "events.csv"
    events.write_text("who,what\nu1,i1\n")
    result = runner.invoke(app, ["data", "validate", str(events)])
    assert result.exit_code == 2
    assert "user_id" in result.output and "Traceback" not in result.output


def test_stats_reports_counts_of_a_shipped_slice(beauty_dir: Path) -> None:
    result = runner.invoke(app, ["data", "stats", str(beauty_dir)])
    assert result.exit_code == 0, result.output
    assert "2,000" in result.output and "items with title" in result.output
