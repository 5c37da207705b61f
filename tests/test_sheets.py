"""logs/sheets.csv: the event log again, as a fixed-column, spreadsheet-safe CSV."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from callagent.cli import app
from callagent.clock import VirtualClock
from callagent.eventlog import SHEETS_COLUMNS, SheetsLog
from callagent.events import EventBus

#: The keys every event log line starts with, in DESIGN.md's order.
DESIGN_KEYS = [
    "timestamp",
    "event",
    "run_id",
    "call_id",
    "service",
    "error_category",
    "retry_count",
    "circuit_state",
]
#: What a spreadsheet reads as the start of a formula.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
SHEET = Path("logs/sheets.csv")
LOG = Path("logs/system.log")

runner = CliRunner()


def simulate(*args: str) -> int:
    """Run ``callagent simulate`` in the test's directory; its exit code."""
    result = runner.invoke(app, ["simulate", "--no-live", *args])
    return result.exit_code


def sheet_rows() -> list[list[str]]:
    with SHEET.open(encoding="utf-8", newline="") as sheet:
        return list(csv.reader(sheet))


def log_records() -> list[dict[str, Any]]:
    return [json.loads(line) for line in LOG.read_text("utf-8").splitlines()]


def as_text(value: Any) -> str:
    """A log value as plain text, before any neutralising."""
    if value is None:
        return ""
    return value if isinstance(value, str) else str(value)


def write_events(*fields: dict[str, Any]) -> list[dict[str, str]]:
    """Emit one ``call_failed`` per mapping of fields; the CSV's data rows read back."""
    sheets = SheetsLog(Path("logs"))
    bus = EventBus(VirtualClock(), "run-sheets")
    bus.subscribe(sheets)
    for extra in fields:
        bus.emit("call_failed", call_id="CALL_000001", service="crm", **extra)
    sheets.close()
    header, *rows = sheet_rows()
    return [dict(zip(header, row, strict=True)) for row in rows]


@pytest.fixture
def logs_dir() -> Path:
    path = Path("logs")
    path.mkdir()
    return path


@pytest.fixture
def outage_run(tmp_path: Path) -> None:
    """A simulated ElevenLabs outage over a contacts file with two bad rows.

    The file's name starts with ``=`` and is not ASCII: it is quoted in each
    ``contact_invalid`` message, so it reaches the sheet through the real command.
    """
    contacts = tmp_path / "=SUM(1) kunden-müller.csv"
    rows = ["phone,name"]
    rows += [f"+1415555{2600 + index:04d},Person {index}" for index in range(20)]
    rows += ["@SUM(A1:A9),Mallory", "not a number,Zoë"]
    contacts.write_text("\n".join(rows) + "\n", encoding="utf-8")
    # Invalid rows are reported, they do not change the exit code.
    assert simulate("--fail", "elevenlabs", "--contacts-file", contacts.name) == 0


class TestHeader:
    def test_columns_start_with_the_event_log_keys_in_order(self) -> None:
        """The first columns are DESIGN.md's required keys, in the same order."""
        assert list(SHEETS_COLUMNS[: len(DESIGN_KEYS)]) == DESIGN_KEYS

    def test_columns_are_unique(self) -> None:
        """No column name appears twice."""
        assert len(set(SHEETS_COLUMNS)) == len(SHEETS_COLUMNS)

    def test_header_row_is_the_fixed_column_list(self, outage_run: None) -> None:
        """The file's first row is SHEETS_COLUMNS, nothing more, nothing less."""
        assert sheet_rows()[0] == list(SHEETS_COLUMNS)

    def test_every_key_of_the_log_has_a_column(self, outage_run: None) -> None:
        """No field of system.log is dropped on the way to the sheet."""
        keys = {key for record in log_records() for key in record}

        assert keys <= set(SHEETS_COLUMNS)

    def test_header_is_written_once_across_appending_runs(self) -> None:
        """Two runs append their rows under the one header of the first."""
        assert simulate("--contacts", "3") == 0
        assert simulate("--contacts", "4") == 0

        header, *rows = sheet_rows()
        assert header == list(SHEETS_COLUMNS)
        assert list(SHEETS_COLUMNS) not in rows
        assert len(rows) == len(log_records())
        run_ids = list(dict.fromkeys(row[header.index("run_id")] for row in rows))
        assert len(run_ids) == 2


class TestRows:
    def test_one_row_per_log_line_in_the_same_order(self, outage_run: None) -> None:
        """Rows and log lines match one to one: event, call id, run, time."""
        header, *rows = sheet_rows()
        records = log_records()

        assert len(rows) == len(records)
        keys = ("timestamp", "event", "run_id", "call_id")
        in_sheet = [tuple(row[header.index(key)] for key in keys) for row in rows]
        in_log = [tuple(as_text(record[key]) for key in keys) for record in records]
        assert in_sheet == in_log

    def test_the_run_covers_the_interesting_events(self, outage_run: None) -> None:
        """The compared run holds invalid rows, retries, an opening and alerts."""
        events = {record["event"] for record in log_records()}

        assert {
            "contact_invalid", "retry_scheduled", "circuit_opened", "call_skipped",
            "health_check_failed", "circuit_closed", "alert_sent", "call_completed",
        } <= events  # fmt: skip

    def test_every_cell_holds_its_log_value(self, outage_run: None) -> None:
        """Each cell is the log's value as text, quote-prefixed only if formula-like."""
        header, *rows = sheet_rows()

        for row, record in zip(rows, log_records(), strict=True):
            for column, cell in zip(header, row, strict=True):
                text = as_text(record.get(column))
                prefixed = text.startswith(FORMULA_STARTS)
                assert cell == ("'" + text if prefixed else text)

    def test_a_formula_named_file_reaches_the_sheet_defused(
        self, outage_run: None
    ) -> None:
        """The contacts file's name, starting with =, arrives prefixed with a quote."""
        header, *rows = sheet_rows()
        invalid = [
            row for row in rows if row[header.index("event")] == "contact_invalid"
        ]

        messages = [row[header.index("message")] for row in invalid]
        assert len(messages) == 2
        assert all(m.startswith("'=SUM(1) kunden-müller.csv row ") for m in messages)
        contacts = [row[header.index("contact")] for row in invalid]
        assert contacts[0].startswith("'@")

    def test_masked_numbers_do_not_become_formulas(self, outage_run: None) -> None:
        """Masked numbers start with +, so every called contact's cell is prefixed."""
        header, *rows = sheet_rows()
        event, contact = header.index("event"), header.index("contact")

        called = [row[contact] for row in rows if row[event].startswith("call_")]
        assert called
        assert all(cell.startswith("'+1") for cell in called)


class TestCells:
    @pytest.mark.parametrize(
        "value",
        [
            "=1+1",
            '=HYPERLINK("http://attacker.example","click")',
            "+33 1 99 00 00 00",
            "-2+3+cmd|' /C calc'!A0",
            "@SUM(A1:A9)",
            "\t=1+1",
            "\r=1+1",
        ],
        ids=["equals", "hyperlink", "plus", "minus", "at", "tab", "carriage-return"],
    )
    def test_formula_like_text_is_prefixed_in_every_column(
        self, logs_dir: Path, value: str
    ) -> None:
        """Text starting with = + - @, tab or CR gets a leading quote, in any column."""
        [row] = write_events(
            {"message": value, "error": value, "contact": value, "alert_channel": value}
        )

        for column in ("message", "error", "contact", "alert_channel"):
            assert row[column] == "'" + value

    def test_plain_text_and_numbers_are_left_alone(self, logs_dir: Path) -> None:
        """Ordinary text is unchanged and a negative number stays a number."""
        [row] = write_events(
            {"message": "all good = fine", "delay_s": -2.5, "retry_count": 3}
        )

        assert row["message"] == "all good = fine"
        assert row["delay_s"] == "-2.5"
        assert row["retry_count"] == "3"

    def test_unused_columns_are_empty(self, logs_dir: Path) -> None:
        """A field the event does not carry is an empty cell, not 'None'."""
        [row] = write_events({"message": "x"})

        assert row["error_category"] == ""
        assert row["duration_ms"] == ""

    def test_text_is_utf8_and_survives_the_round_trip(self, logs_dir: Path) -> None:
        """Accents, CJK and emoji are written as UTF-8 and read back unchanged."""
        text = "Zoë Müller — 東京 📞 ✓"

        [row] = write_events({"message": text})

        assert row["message"] == text
        raw = SHEET.read_bytes()
        assert text.encode("utf-8") in raw
        raw.decode("utf-8")

    def test_a_carriage_return_stays_inside_its_cell(self, logs_dir: Path) -> None:
        """A message holding a bare CR is one cell of one row."""
        text = "first part\rsecond part"

        rows = write_events({"message": text}, {"message": "next"})

        assert [row["message"] for row in rows] == [text, "next"]

    def test_commas_quotes_and_newlines_stay_inside_one_cell(
        self, logs_dir: Path
    ) -> None:
        """A message with a comma, quotes and a line break is still one row."""
        text = 'first line, with "quotes"\nsecond line'

        rows = write_events({"message": text}, {"message": "next"})

        assert [row["message"] for row in rows] == [text, "next"]
