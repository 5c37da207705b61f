"""The event log and the Sheets CSV: every line carries the contract's keys."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from callagent.clock import VirtualClock
from callagent.eventlog import SHEETS_COLUMNS, EventLog, SheetsLog, sheet_cell
from callagent.events import REQUIRED_FIELDS, EventBus


@pytest.fixture
def bus(clock: VirtualClock, tmp_path: Path) -> EventBus:
    return EventBus(clock, "run-1", lambda service: "OPEN")


def test_every_line_is_flat_json_with_required_keys(
    bus: EventBus, clock: VirtualClock, tmp_path: Path
) -> None:
    """Each event is one JSON line with all required keys, null where unused."""
    log = EventLog(tmp_path)
    bus.subscribe(log)
    bus.emit("campaign_started", message="go")
    clock.advance(1.5)
    bus.emit(
        "retry_scheduled", call_id="CALL_000001", service="llm",
        error_category="Transient", retry_count=1, delay_s=5,
    )  # fmt: skip
    log.close()
    lines = (tmp_path / "system.log").read_text(encoding="utf-8").splitlines()
    records = [json.loads(line) for line in lines]
    assert [list(r)[: len(REQUIRED_FIELDS)] for r in records] == [
        list(REQUIRED_FIELDS)
    ] * 2
    first, second = records
    assert first["call_id"] is None
    assert first["circuit_state"] is None
    assert first["timestamp"] == "2026-01-05T09:00:00.000Z"
    assert second["timestamp"] == "2026-01-05T09:00:01.500Z"
    assert second["circuit_state"] == "OPEN"
    assert (second["retry_count"], second["delay_s"]) == (1, 5)
    assert all(value is not None for key, value in second.items())


def test_log_appends_across_runs(clock: VirtualClock, tmp_path: Path) -> None:
    """A second run appends; lines are told apart by run_id."""
    for run_id in ("run-1", "run-2"):
        bus = EventBus(clock, run_id)
        log = EventLog(tmp_path)
        bus.subscribe(log)
        bus.emit("campaign_started")
        log.close()
    lines = (tmp_path / "system.log").read_text(encoding="utf-8").splitlines()
    assert [json.loads(line)["run_id"] for line in lines] == ["run-1", "run-2"]


def test_unknown_event_name_is_a_bug(bus: EventBus) -> None:
    """Only the contract's event names may be emitted."""
    with pytest.raises(ValueError, match="unknown event name"):
        bus.emit("call_exploded")


def test_sheets_csv_has_fixed_header_and_neutralised_cells(
    clock: VirtualClock, tmp_path: Path
) -> None:
    """The CSV keeps its header once across runs and defuses formula-like text."""
    for run_id in ("run-1", "run-2"):
        bus = EventBus(clock, run_id)
        sheets = SheetsLog(tmp_path)
        bus.subscribe(sheets)
        bus.emit(
            "call_failed",
            call_id="CALL_000002",
            service="crm",
            message='=HYPERLINK("http://evil")',
            retry_count=3,
        )
        sheets.close()
    with (tmp_path / "sheets.csv").open(encoding="utf-8", newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == list(SHEETS_COLUMNS)
    assert len(rows) == 3
    header = rows[0]
    data = dict(zip(header, rows[1], strict=True))
    assert data["message"].startswith("'=")
    assert data["retry_count"] == "3"
    assert data["call_id"] == "CALL_000002"


@pytest.mark.parametrize(
    ("value", "cell"),
    [
        ("=1+1", "'=1+1"),
        ("+33 1 99", "'+33 1 99"),
        ("-cmd", "'-cmd"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("plain", "plain"),
        (-3, "-3"),
        (None, ""),
        (2.5, "2.5"),
    ],
)
def test_sheet_cell(value: object, cell: str) -> None:
    """Text starting with = + - @ is prefixed; numbers stay numbers."""
    assert sheet_cell(value) == cell
