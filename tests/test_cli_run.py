"""``callagent run`` through the real command: resume, bad input, reports, signals."""

from __future__ import annotations

import json
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pytest_httpserver import HTTPServer
from typer.testing import CliRunner, Result

from callagent.cli import app
from callagent.contacts import mask_phone

SAMPLE = Path(__file__).resolve().parents[1] / "contacts.csv"
SAMPLE_ROWS = 20
LOG = Path("logs/system.log")
DB = Path(".callagent/state.db")
STATES = ("completed", "failed", "deferred", "invalid", "interrupted")

#: Simulated services that answer at once, so a run takes milliseconds.
INSTANT = """\
services:
  crm: {latency_ms: 0}
  llm: {latency_ms: 0}
  elevenlabs: {latency_ms: 0}
"""

#: A contacts file with a multi-line field, a blank line, and three bad rows. The
#: header is line 1; the first data row spans lines 2 and 3.
MIXED = """\
contact_id,name,phone,note
A1,Ann,+1 202 555 0143,"two
lines"
A2,Bob,not a number,x
A3,Cy,,x
A4,Di,(202) 555-0143,x

A5,Ed,+44 20 7946 0958,x
A6,Fa,+1 415 555 0199,x
"""
MIXED_INVALID = {
    4: "not a phone number",
    5: "missing phone number",
    6: "duplicate of a number on an earlier row",
}

# rich wraps at the terminal width, or at COLUMNS: without either the width is the
# fixed default, the same on every machine.
runner = CliRunner(env={"COLUMNS": None, "LINES": None})


def invoke(*args: str) -> Result:
    return runner.invoke(app, ["run", *args])


def no_traceback(result: Result) -> bool:
    escaped = result.exception is not None and not isinstance(
        result.exception, SystemExit
    )
    return not escaped and "Traceback" not in result.output


def write_settings(text: str = INSTANT, name: str = "settings.yaml") -> str:
    Path(name).write_text(text, encoding="utf-8")
    return name


def copy_sample() -> str:
    shutil.copy(SAMPLE, "contacts.csv")
    return "contacts.csv"


def events(log: Path = LOG) -> list[dict[str, Any]]:
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text("utf-8").splitlines()]


def runs(log: Path = LOG) -> list[list[dict[str, Any]]]:
    """The log's events grouped by run, in the order the runs started."""
    by_run: dict[str, list[dict[str, Any]]] = {}
    for event in events(log):
        by_run.setdefault(event["run_id"], []).append(event)
    return list(by_run.values())


def named(run: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [event for event in run if event["event"] == name]


def call_events(log: Path = LOG) -> list[dict[str, Any]]:
    return [event for event in events(log) if event["event"].startswith("call_")]


def contact_states(campaign: str, db: Path = DB) -> dict[int, tuple[str, str | None]]:
    """(state, phone) of each contact by file line, read with plain sqlite3."""
    if not db.exists():
        return {}
    with closing(sqlite3.connect(db)) as connection:
        rows = connection.execute(
            "SELECT c.line, c.state, c.phone FROM contact c "
            "JOIN campaign k ON k.id = c.campaign_id WHERE k.name = ?",
            (campaign,),
        ).fetchall()
    return {line: (state, phone) for line, state, phone in rows}


def contact_rows(db: Path = DB) -> int:
    if not db.exists():
        return 0
    with closing(sqlite3.connect(db)) as connection:
        tables = connection.execute(
            "SELECT name FROM sqlite_master WHERE name = 'contact'"
        ).fetchall()
        if not tables:
            return 0
        return int(connection.execute("SELECT COUNT(*) FROM contact").fetchone()[0])


def flat(text: str) -> str:
    return " ".join(text.split())


class TestSampleCampaign:
    def test_sample_file_completes_every_contact_and_exits_0(self) -> None:
        """The sample file completes all its contacts on instant simulated services."""
        result = invoke(copy_sample(), "--settings", write_settings(), "--no-live")

        assert result.exit_code == 0
        assert no_traceback(result)
        assert "Campaign 'contacts'" in result.output
        assert "\x1b[" not in result.output
        completed = named(runs()[0], "call_completed")
        assert len(completed) == SAMPLE_ROWS
        assert len({event["contact"] for event in completed}) == SAMPLE_ROWS
        states = contact_states("contacts")
        assert Counter(state for state, _ in states.values()) == {
            "completed": SAMPLE_ROWS
        }

    def test_second_run_calls_nobody_and_says_complete(self) -> None:
        """Run again, the finished campaign dials no one and still exits 0."""
        args = (copy_sample(), "--settings", write_settings(), "--no-live")
        assert invoke(*args).exit_code == 0
        logged = call_events()

        again = invoke(*args)

        assert again.exit_code == 0
        assert "already complete" in flat(again.output)
        assert "20 completed" in flat(again.output)
        assert call_events() == logged

    def test_fresh_calls_everyone_again(self) -> None:
        """--fresh forgets the campaign's state and calls every contact again."""
        args = (copy_sample(), "--settings", write_settings(), "--no-live")
        assert invoke(*args).exit_code == 0

        again = invoke(*args, "--fresh")

        assert again.exit_code == 0
        second = runs()[1]
        assert len(named(second, "call_completed")) == SAMPLE_ROWS
        first_ids = {e["call_id"] for e in named(runs()[0], "call_started")}
        second_ids = {e["call_id"] for e in named(second, "call_started")}
        assert first_ids.isdisjoint(second_ids)

    def test_campaign_name_keeps_separate_state(self) -> None:
        """A run under --campaign NAME neither sees nor touches the default one."""
        args = (copy_sample(), "--settings", write_settings(), "--no-live")
        assert invoke(*args).exit_code == 0

        other = invoke(*args, "--campaign", "autumn", "--json-report", "autumn.json")
        default_again = invoke(*args)

        assert other.exit_code == 0
        assert "Campaign 'autumn'" in other.output
        report = json.loads(Path("autumn.json").read_text("utf-8"))
        assert report["campaign"] == "autumn"
        assert report["contacts"]["completed"] == SAMPLE_ROWS
        assert len(named(runs()[1], "call_completed")) == SAMPLE_ROWS
        assert default_again.exit_code == 0
        assert "already complete" in flat(default_again.output)
        assert len(contact_states("contacts")) == SAMPLE_ROWS
        assert len(contact_states("autumn")) == SAMPLE_ROWS


class TestJsonReport:
    def test_report_follows_the_schema_and_states_add_up(self) -> None:
        """--json-report has DESIGN.md's keys and types; states sum to the data rows."""
        Path("mixed.csv").write_text(MIXED, encoding="utf-8")

        result = invoke(
            "mixed.csv", "--settings", write_settings(), "--no-live",
            "--json-report", "out/report.json",
        )  # fmt: skip

        assert result.exit_code == 0
        report = json.loads(Path("out/report.json").read_text("utf-8"))
        assert set(report) == {
            "run_id", "command", "campaign", "started_at", "finished_at",
            "duration_s", "contacts", "services", "alerts",
        }  # fmt: skip
        assert report["command"] == "run"
        assert report["campaign"] == "mixed"
        assert report["run_id"] == events()[0]["run_id"]
        iso_utc = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z"
        assert re.fullmatch(iso_utc, report["started_at"])
        assert re.fullmatch(iso_utc, report["finished_at"])
        assert isinstance(report["duration_s"], float)
        contacts = report["contacts"]
        assert set(contacts) == {"total", *STATES}
        assert all(type(n) is int for n in contacts.values())
        assert contacts["total"] == 6
        assert sum(contacts[state] for state in STATES) == contacts["total"]
        assert contacts["invalid"] == len(MIXED_INVALID)
        assert contacts["completed"] == 3
        assert set(report["services"]) == {"crm", "llm", "elevenlabs"}
        for service in report["services"].values():
            assert set(service) == {
                "requests", "failures", "retries", "times_opened", "circuit_state",
            }  # fmt: skip
            assert service["circuit_state"] in {"CLOSED", "OPEN", "HALF_OPEN"}
        assert report["services"]["llm"]["requests"] == 3
        assert set(report["alerts"]) == {"sent", "failed", "suppressed"}
        assert all(type(n) is int for n in report["alerts"].values())


class TestInvalidRows:
    def test_invalid_and_duplicate_rows_are_logged_counted_and_skipped(self) -> None:
        """Bad rows are logged with line and reason; the valid rest completes."""
        Path("mixed.csv").write_text(MIXED, encoding="utf-8")

        result = invoke(
            "mixed.csv", "--settings", write_settings(), "--no-live",
            "--json-report", "report.json",
        )  # fmt: skip

        assert result.exit_code == 0
        assert no_traceback(result)
        logged = named(events(), "contact_invalid")
        assert len(logged) == len(MIXED_INVALID)
        for event, (row, reason) in zip(logged, MIXED_INVALID.items(), strict=True):
            assert event["message"] == f"mixed.csv row {row}: {reason}"
            assert event["call_id"] is None
        duplicate = logged[-1]["contact"]
        assert duplicate is not None
        assert "0143" in duplicate
        assert "202" not in duplicate
        report = json.loads(Path("report.json").read_text("utf-8"))
        assert report["contacts"]["invalid"] == 3
        states = contact_states("mixed")
        assert {line: state for line, (state, _) in states.items()} == {
            2: "completed",
            4: "invalid",
            5: "invalid",
            6: "invalid",
            8: "completed",
            9: "completed",
        }
        assert len(named(events(), "call_completed")) == 3


@dataclass(frozen=True)
class BadInput:
    """A bad-input case: what to put in the directory, how to run, what to name."""

    id: str
    setup: Callable[[], None]
    args: tuple[str, ...]
    names: tuple[str, ...]
    #: Where the case's settings put the state database.
    db: Path = DB


def file(name: str, data: bytes) -> Callable[[], None]:
    def setup() -> None:
        write_settings()
        Path(name).write_bytes(data)

    return setup


def directory(name: str) -> Callable[[], None]:
    def setup() -> None:
        write_settings()
        Path(name).mkdir()

    return setup


def sample_with_settings(text: str) -> Callable[[], None]:
    def setup() -> None:
        copy_sample()
        write_settings(text, "bad.yaml")
        Path("blocker").write_text("a file where a directory should be\n", "utf-8")

    return setup


RUN = ("--settings", "settings.yaml", "--no-live")
BAD = ("contacts.csv", "--settings", "bad.yaml", "--no-live")

BAD_INPUTS = [
    BadInput("missing file", write_settings, ("nowhere.csv", *RUN),
             ("nowhere.csv", "not found")),
    BadInput("directory", directory("folder.csv"), ("folder.csv", *RUN),
             ("folder.csv", "directory")),
    BadInput("binary file",
             file("logo.csv", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x01"),
             ("logo.csv", *RUN), ("logo.csv", "binary")),
    BadInput("latin-1 bytes",
             file("latin.csv", b"phone,name\n+1 202 555 0143,Jos\xe9\n"),
             ("latin.csv", *RUN), ("latin.csv", "UTF-8", "line 2")),
    BadInput("empty file", file("empty.csv", b""), ("empty.csv", *RUN),
             ("empty.csv", "empty")),
    BadInput("header only", file("header.csv", b"phone,name\n"),
             ("header.csv", *RUN), ("header.csv", "no data rows")),
    BadInput("no phone column",
             file("people.csv", b"name,email\nAnn,ann@example.com\n"),
             ("people.csv", *RUN), ("people.csv", "no phone column")),
    BadInput("only bad rows",
             file("bad.csv", b"phone,name\nabc,Ann\n,Bob\n123,Cy\n"),
             ("bad.csv", *RUN), ("bad.csv", "no valid contact", "row 2")),
    BadInput("log dir blocked by a file",
             sample_with_settings(INSTANT + "logging: {dir: blocker/logs}\n"), BAD,
             ("logging.dir", "blocker/logs")),
    BadInput("state dir blocked by a file",
             sample_with_settings(INSTANT + "storage: {path: blocker/state.db}\n"),
             BAD, ("blocker/state.db", "state database"),
             db=Path("blocker/state.db")),
    BadInput("settings value out of range",
             sample_with_settings("retry: {max_retries: -1}\n"), BAD,
             ("bad.yaml", "retry.max_retries", ">= 0")),
    BadInput("settings unknown key",
             sample_with_settings("campaign: {max_call_atempts: 2}\n"), BAD,
             ("bad.yaml", "campaign.max_call_atempts")),
    BadInput("settings wrong type",
             sample_with_settings("services: {crm: {latency_ms: fast}}\n"), BAD,
             ("bad.yaml", "services.crm.latency_ms")),
]  # fmt: skip


class TestBadInput:
    @pytest.mark.parametrize("case", BAD_INPUTS, ids=lambda case: case.id)
    def test_bad_input_exits_2_naming_the_fault_and_calls_nobody(
        self, case: BadInput
    ) -> None:
        """Bad input: exit 2, one error line naming file, row or key; nobody called."""
        case.setup()

        result = invoke(*case.args)

        assert result.exit_code == 2
        assert no_traceback(result)
        lines = result.output.splitlines()
        assert [line for line in lines if "error" in line] == lines[-1:]
        assert lines[-1].startswith("error: ")
        for name in case.names:
            assert name in lines[-1]
        assert result.stderr == lines[-1] + "\n"
        assert call_events() == []
        assert contact_rows(case.db) == 0

    def test_only_bad_rows_logs_each_row_and_loads_nothing(self) -> None:
        """A file with no valid row logs every bad row but journals none of them."""
        write_settings()
        Path("bad.csv").write_text("phone\nabc\n\n123\n", encoding="utf-8")

        result = invoke("bad.csv", *RUN)

        assert result.exit_code == 2
        messages = [e["message"] for e in named(events(), "contact_invalid")]
        assert messages == [
            "bad.csv row 2: not a phone number",
            "bad.csv row 4: not a valid phone number for region US",
        ]
        assert contact_rows() == 0


# Signals -----------------------------------------------------------------------

#: Slow enough that a signal lands in the middle of a call.
SLOW = """\
services:
  crm: {latency_ms: 100}
  llm: {latency_ms: 100}
  elevenlabs: {latency_ms: 100}
"""


def command(*args: str) -> list[str]:
    return [sys.executable, "-m", "callagent", "run", *args]


def count_in_log(name: str) -> int:
    if not LOG.exists():
        return 0
    return LOG.read_text("utf-8").count(f'"event": "{name}"')


def wait_until(
    proc: subprocess.Popen[str], ready: Callable[[], bool], timeout_s: float = 15.0
) -> None:
    """Poll ``ready`` while the process runs; fail if it exits or time runs out."""
    deadline = time.monotonic() + timeout_s
    while not ready():
        assert time.monotonic() < deadline, "timed out waiting on the run"
        try:
            proc.wait(timeout=0.02)
        except subprocess.TimeoutExpired:
            continue
        raise AssertionError(f"the run ended early with code {proc.returncode}")


def in_flight_after_a_completion() -> bool:
    completed = count_in_log("call_completed")
    return completed >= 1 and count_in_log("call_started") > completed


class TestStopSignals:
    @pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=str)
    def test_signal_flushes_journal_reports_and_exits_130(
        self, signum: signal.Signals
    ) -> None:
        """SIGINT or SIGTERM mid-call: partial report, exit 130, clean resume."""
        copy_sample()
        write_settings(SLOW, "slow.yaml")
        write_settings(INSTANT)
        proc = subprocess.Popen(
            command("contacts.csv", "--settings", "slow.yaml", "--no-live",
                    "--json-report", "stopped.json"),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        try:
            # A call is in flight after one that completed: the signal lands mid-call.
            wait_until(proc, in_flight_after_a_completion)
            proc.send_signal(signum)
            out, err = proc.communicate(timeout=15)
        finally:
            proc.kill()

        assert proc.returncode == 130
        assert "Traceback" not in err
        assert "Campaign 'contacts'" in out
        assert "completed" in out
        states = contact_states("contacts")
        by_state = Counter(state for state, _ in states.values())
        assert set(by_state) <= {"completed", "pending", "interrupted"}
        assert by_state["completed"] >= 1
        partial = json.loads(Path("stopped.json").read_text("utf-8"))["contacts"]
        assert partial["completed"] == by_state["completed"]
        assert partial["interrupted"] == by_state["interrupted"]
        assert partial["deferred"] == by_state["pending"]
        assert partial["total"] == SAMPLE_ROWS
        assert named(runs()[0], "campaign_finished") != []

        resumed = subprocess.run(
            command("contacts.csv", "--settings", "settings.yaml", "--no-live"),
            capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip

        assert resumed.returncode == (1 if by_state["interrupted"] else 0)
        assert "Traceback" not in resumed.stderr
        final = Counter(state for state, _ in contact_states("contacts").values())
        assert final == Counter(
            completed=SAMPLE_ROWS - by_state["interrupted"],
            interrupted=by_state["interrupted"],
        )
        completed_masks = Counter(
            e["contact"] for e in named(events(), "call_completed")
        )
        assert set(completed_masks.values()) == {1}
        expected = {
            mask_phone(phone)
            for state, phone in contact_states("contacts").values()
            if state == "completed" and phone is not None
        }
        assert len(expected) == final["completed"]
        assert set(completed_masks) == expected


class TestStorageFailure:
    def test_audio_that_cannot_be_written_stops_the_run_with_one_line(
        self, httpserver: HTTPServer, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A local disk failure ends the run: exit 1, one error line, nobody lost."""
        monkeypatch.setenv("ELEVENLABS_API_KEY", "el-test-key")
        httpserver.expect_request("/v1/text-to-speech/v1").respond_with_data(
            b"mp3", content_type="audio/mpeg"
        )
        base = httpserver.url_for("").rstrip("/")
        write_settings(
            INSTANT.replace(
                "elevenlabs: {latency_ms: 0}",
                f"elevenlabs: {{provider: elevenlabs, base_url: '{base}', "
                "voice_id: v1, output_dir: audio}",
            )
        )
        # The first call's partial file cannot be created: a directory is in the way.
        Path("audio/CALL_000001.mp3.part").mkdir(parents=True)

        result = invoke(copy_sample(), "--settings", "settings.yaml", "--no-live")

        assert result.exit_code == 1
        assert "error: audio/CALL_000001.mp3: cannot write audio" in result.output
        assert no_traceback(result)
        states = Counter(state for state, _ in contact_states("contacts").values())
        assert states == {"pending": SAMPLE_ROWS}
