"""The Google Sheet uploader: batches, quota, bounds and shutdown, against fakes.

Google's service cannot run on this machine, so the sheet is a fake
:class:`SheetTarget` for the uploader, and a stand-in ``gspread`` module for the
gspread-backed target. Backoff and quota waits run on a virtual clock that records
them; nothing here sleeps for a fixed time.
"""

from __future__ import annotations

import csv
import sys
import threading
import time
import types
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from callagent.clock import SystemClock, VirtualClock
from callagent.errors import (
    AuthenticationFailed,
    InputError,
    NetworkError,
    PermanentError,
    RateLimited,
    ServiceError,
    ServiceTimeout,
    ServiceUnavailable,
    TransientError,
)
from callagent.eventlog import SHEETS_COLUMNS, SheetsLog
from callagent.events import EventBus
from callagent.retry import Backoff
from callagent.sheets_upload import (
    SheetUploader,
    build_sheet_uploader,
    open_google_sheet,
)

#: No jitter, so the waits the tests expect are exact.
BACKOFF = Backoff(initial_s=1.0, multiplier=2.0, max_s=64.0)
#: Long enough that no batch leaves on its timer unless a test wants it to.
NEVER_S = 3600.0
#: How long a test waits for the worker thread before it calls the test failed.
PATIENCE_S = 5.0


class RecordingClock(VirtualClock):
    """A virtual clock that keeps every wait asked of it."""

    def __init__(self) -> None:
        super().__init__()
        self.sleeps: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        super().sleep(seconds)


class FakeSheet:
    """A sheet that records each batch, failing first with the errors it is given."""

    def __init__(
        self, failures: Iterable[Exception] = (), clock: VirtualClock | None = None
    ) -> None:
        self.batches: list[list[list[str]]] = []
        self.attempts = 0
        self.attempted_at: list[float] = []
        self.received = threading.Event()
        self._failures = deque(failures)
        self._clock = clock

    def append_rows(self, rows: list[list[str]]) -> None:
        self.attempts += 1
        if self._clock is not None:
            self.attempted_at.append(self._clock.monotonic())
        if self._failures:
            raise self._failures.popleft()
        self.batches.append([list(row) for row in rows])
        self.received.set()

    @property
    def rows(self) -> list[list[str]]:
        return [row for batch in self.batches for row in batch]


class StalledSheet(FakeSheet):
    """A sheet whose first request hangs until released, like a stalled connection."""

    def __init__(self) -> None:
        super().__init__()
        self.entered = threading.Event()
        self.release = threading.Event()

    def append_rows(self, rows: list[list[str]]) -> None:
        if not self.entered.is_set():
            self.entered.set()
            self.release.wait(PATIENCE_S)
        super().append_rows(rows)


class AlwaysThrottled:
    """A sheet that answers every request with a 429 asking for an hour's pause."""

    def append_rows(self, rows: list[list[str]]) -> None:
        raise RateLimited("google_sheets", "quota exceeded", retry_after=3600)


def uploader(target: Any, **options: Any) -> tuple[SheetUploader, list[str]]:
    """An uploader on a virtual clock, and the list its warnings go to."""
    warnings: list[str] = []
    options.setdefault("clock", VirtualClock())
    options.setdefault("backoff", BACKOFF)
    options.setdefault("flush_interval_s", NEVER_S)
    return SheetUploader(target, warn=warnings.append, **options), warnings


def emit_calls(up: SheetUploader, count: int, start: int = 0) -> None:
    """Send ``count`` call_completed events, with call ids numbered from ``start``."""
    bus = EventBus(VirtualClock(), "run-1")
    bus.subscribe(up)
    for number in range(start, start + count):
        bus.emit("call_completed", call_id=f"CALL_{number:06d}", level="INFO")


def call_ids(rows: list[list[str]]) -> list[int]:
    column = SHEETS_COLUMNS.index("call_id")
    return [int(row[column].removeprefix("CALL_")) for row in rows]


class TestBatching:
    def test_rows_leave_in_full_batches_then_the_rest_at_close(self) -> None:
        """1200 rows with batches of 500 make three requests: 500, 500 and 200."""
        sheet = FakeSheet()
        up, _ = uploader(sheet, batch_size=500)

        emit_calls(up, 1200)
        up.close()

        assert [len(batch) for batch in sheet.batches] == [500, 500, 200]
        assert up.stats().batches == 3
        assert up.stats().uploaded == 1200

    def test_rows_keep_their_order(self) -> None:
        """Rows reach the sheet once each, in the order the events happened."""
        sheet = FakeSheet()
        up, _ = uploader(sheet, batch_size=7)

        emit_calls(up, 50)
        up.close()

        assert call_ids(sheet.rows) == list(range(50))

    def test_a_partial_batch_leaves_after_the_flush_interval(self) -> None:
        """Rows short of a batch are sent once the flush interval has passed."""
        sheet = FakeSheet()
        up, _ = uploader(sheet, batch_size=500, flush_interval_s=0.2)

        emit_calls(up, 3)

        assert sheet.received.wait(PATIENCE_S)
        assert [len(batch) for batch in sheet.batches] == [3]
        up.close()

    def test_rows_are_the_sheets_csv_rows(self, tmp_path: Path) -> None:
        """The uploaded rows are sheets.csv's data rows: same columns, same cells."""
        sheet = FakeSheet()
        up, _ = uploader(sheet)
        csv_log = SheetsLog(tmp_path)
        bus = EventBus(VirtualClock(), "run-1")
        bus.subscribe(csv_log)
        bus.subscribe(up)

        for message in ('=HYPERLINK("http://x")', "+1 555", "-2", "@sum", "plain"):
            bus.emit(
                "call_failed",
                call_id="CALL_000001",
                service="crm",
                retry_count=-1,
                message=message,
                delay_s=-0.5,
            )
        up.close()
        csv_log.close()

        with csv_log.path.open(encoding="utf-8", newline="") as file:
            header, *data = list(csv.reader(file))
        assert header == list(SHEETS_COLUMNS)
        assert sheet.rows == data
        messages = [row[SHEETS_COLUMNS.index("message")] for row in sheet.rows]
        assert messages[:4] == ['\'=HYPERLINK("http://x")', "'+1 555", "'-2", "'@sum"]
        # Numbers stay numbers: a negative one is data, not a formula.
        assert sheet.rows[0][SHEETS_COLUMNS.index("retry_count")] == "-1"


class TestQuota:
    def test_quota_errors_are_retried_honouring_retry_after(self) -> None:
        """Three 429s then success: rows arrive once, each wait honours Retry-After."""
        clock = RecordingClock()
        failures = [
            RateLimited("google_sheets", "quota", status=429, retry_after=7),
            RateLimited("google_sheets", "quota", status=429),
            RateLimited("google_sheets", "quota", status=429, retry_after=30),
        ]
        sheet = FakeSheet(failures)
        up, warnings = uploader(sheet, clock=clock)

        emit_calls(up, 10)
        up.close()

        assert clock.sleeps == [7, 2, 30]
        assert sheet.attempts == 4
        assert call_ids(sheet.rows) == list(range(10))
        assert up.stats().retries == 3
        assert up.stats().lost == 0
        assert warnings == []

    def test_requests_stay_within_the_per_minute_write_quota(self) -> None:
        """With three writes a minute allowed, the fourth waits for the minute's end."""
        clock = RecordingClock()
        sheet = FakeSheet(clock=clock)
        up, _ = uploader(sheet, clock=clock, batch_size=1, max_writes_per_minute=3)

        emit_calls(up, 5)
        up.close()

        assert sheet.attempted_at == [0, 0, 0, 60, 60]
        assert call_ids(sheet.rows) == list(range(5))

    def test_a_batch_is_given_up_after_its_retries_and_the_next_one_goes(
        self,
    ) -> None:
        """A batch failing past max_retries is failed; the next one still goes."""
        failures = [ServiceUnavailable("google_sheets", "busy", status=503)] * 3
        sheet = FakeSheet(failures)
        up, warnings = uploader(sheet, batch_size=2, max_retries=2)

        emit_calls(up, 4)
        up.close()

        assert sheet.attempts == 4
        assert call_ids(sheet.rows) == [2, 3]
        stats = up.stats()
        assert (stats.uploaded, stats.failed, stats.retries) == (2, 2, 2)
        assert stats.last_error == "google_sheets 503: busy"
        assert len(warnings) == 2
        assert "2 rows could not be appended (google_sheets 503: busy)" in warnings[0]
        assert warnings[1] == (
            "google_sheets: 2 of 4 rows uploaded in 1 batch; "
            "2 failed (last error: google_sheets 503: busy)"
        )

    def test_a_permanent_error_is_not_retried(self) -> None:
        """A refused key fails its batch at once, without a wait."""
        clock = RecordingClock()
        sheet = FakeSheet([AuthenticationFailed("google_sheets", "denied", status=403)])
        up, _ = uploader(sheet, clock=clock, batch_size=2)

        emit_calls(up, 4)
        up.close()

        assert sheet.attempts == 2
        assert clock.sleeps == []
        assert (up.stats().failed, up.stats().uploaded) == (2, 2)

    def test_an_unexpected_error_is_counted_by_its_class_only(self) -> None:
        """A bug in the target fails its batch; its text, maybe secret, is not shown."""
        sheet = FakeSheet([RuntimeError("token ya29.secret-value")])
        up, warnings = uploader(sheet)

        emit_calls(up, 3)
        up.close()

        assert up.stats().last_error == "unexpected RuntimeError"
        assert warnings
        assert not any("ya29" in warning for warning in warnings)


class TestNeverBlocks:
    def test_a_stalled_sheet_never_blocks_the_caller(self) -> None:
        """While a request hangs, events queue at once and the overflow is dropped."""
        sheet = StalledSheet()
        up, warnings = uploader(sheet, batch_size=5, queue_size=10, drain_timeout_s=0.2)
        try:
            emit_calls(up, 5)
            assert sheet.entered.wait(PATIENCE_S)
            emit_calls(up, 995, start=5)

            started = time.monotonic()
            up.close()
            closing = time.monotonic() - started
        finally:
            sheet.release.set()

        assert closing < 0.2 + 1.0
        stats = up.stats()
        assert (stats.uploaded, stats.dropped, stats.abandoned) == (0, 985, 15)
        assert warnings == [
            "google_sheets: 0 of 1000 rows uploaded in 0 batches; "
            "985 dropped (queue full); 15 not sent before the drain limit"
        ]

    def test_a_full_queue_drops_its_oldest_rows(self) -> None:
        """When the queue is full the oldest rows go, so the latest still arrive."""
        sheet = StalledSheet()
        up, _ = uploader(sheet, batch_size=1, queue_size=3)

        emit_calls(up, 1)
        assert sheet.entered.wait(PATIENCE_S)
        emit_calls(up, 9, start=1)
        sheet.release.set()
        up.close()

        assert call_ids(sheet.rows) == [0, 7, 8, 9]
        assert up.stats().dropped == 6

    def test_close_cuts_a_long_backoff_short_within_the_drain_limit(self) -> None:
        """A sheet that always throttles: close returns on time, rows counted lost."""
        up, warnings = uploader(
            AlwaysThrottled(), clock=SystemClock(), drain_timeout_s=0.3
        )

        emit_calls(up, 50)
        started = time.monotonic()
        up.close()

        assert time.monotonic() - started < 0.3 + 1.0
        assert up.stats().abandoned == 50
        assert warnings[-1].endswith("50 not sent before the drain limit")

    def test_rows_offered_after_close_are_dropped_quietly(self) -> None:
        """An event after close is counted as dropped and raises nothing."""
        sheet = FakeSheet()
        up, _ = uploader(sheet)
        up.close()

        emit_calls(up, 2)
        up.close()

        assert up.stats().dropped == 2
        assert sheet.attempts == 0


# --- the gspread-backed target, against a stand-in gspread module -----------------


class FakeAPIError(Exception):
    """gspread's APIError: the HTTP response and its parsed error body."""

    def __init__(
        self,
        status: int,
        message: str = "refused",
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.response = types.SimpleNamespace(status_code=status, headers=headers or {})
        self.error = {"code": status, "message": message, "status": "SOME_STATUS"}
        self.code = status


class WorksheetNotFound(Exception):
    pass


class SpreadsheetNotFound(Exception):
    pass


class FakeWorksheet:
    def __init__(self) -> None:
        self.values: list[list[str]] = []
        self.calls: list[dict[str, Any]] = []
        self._failures: deque[Exception] = deque()

    def fail_with(self, *errors: Exception) -> None:
        """Answer the next appends with these errors, one each."""
        self._failures.extend(errors)

    def row_values(self, row: int) -> list[str]:
        return list(self.values[row - 1]) if len(self.values) >= row else []

    def append_rows(self, values: list[list[str]], **options: Any) -> None:
        self.calls.append({"values": values, **options})
        if self._failures:
            raise self._failures.popleft()
        self.values.extend(list(row) for row in values)


class FakeSpreadsheet:
    def __init__(self, worksheets: dict[str, FakeWorksheet]) -> None:
        self.worksheets = worksheets

    def worksheet(self, title: str) -> FakeWorksheet:
        if title not in self.worksheets:
            raise WorksheetNotFound(title)
        return self.worksheets[title]

    def add_worksheet(self, title: str, rows: int, cols: int) -> FakeWorksheet:
        self.worksheets[title] = FakeWorksheet()
        return self.worksheets[title]


class FakeClient:
    def __init__(self, spreadsheet: FakeSpreadsheet) -> None:
        self.spreadsheet = spreadsheet
        self.timeout: Any = None
        self.opened: list[str] = []

    def set_timeout(self, timeout: Any) -> None:
        self.timeout = timeout

    def open_by_key(self, key: str) -> FakeSpreadsheet:
        self.opened.append(key)
        return self.spreadsheet


@dataclass(frozen=True)
class SheetsConfig:
    """What logging.google_sheets holds in settings."""

    spreadsheet_key: str = "sheet-key-1"
    worksheet: str = "callagent"
    credentials_env: str = "SHEETS_KEY_FILE"
    batch_size: int = 500
    flush_interval_s: float = NEVER_S
    queue_size: int = 10_000
    drain_timeout_s: float = 5.0


class FakeGspread(types.ModuleType):
    """A stand-in gspread module holding one spreadsheet with an empty worksheet."""

    def __init__(self) -> None:
        super().__init__("gspread")
        self.exceptions = types.SimpleNamespace(
            APIError=FakeAPIError,
            WorksheetNotFound=WorksheetNotFound,
            SpreadsheetNotFound=SpreadsheetNotFound,
        )
        self.client = FakeClient(FakeSpreadsheet({"callagent": FakeWorksheet()}))
        self.key_files: list[str] = []

    def service_account(self, filename: str) -> FakeClient:
        if not Path(filename).is_file():
            raise FileNotFoundError(filename)
        self.key_files.append(filename)
        return self.client


@pytest.fixture
def gspread(monkeypatch: pytest.MonkeyPatch) -> FakeGspread:
    """gspread, as far as the uploader uses it, installed for the test."""
    module = FakeGspread()
    monkeypatch.setitem(sys.modules, "gspread", module)
    return module


@pytest.fixture
def key_file(tmp_path: Path) -> dict[str, str]:
    """An environment whose SHEETS_KEY_FILE names a (made-up) key file."""
    path = tmp_path / "service-account.json"
    path.write_text('{"type": "service_account"}', encoding="utf-8")
    return {"SHEETS_KEY_FILE": str(path)}


def sheet_of(gspread: FakeGspread, title: str = "callagent") -> FakeWorksheet:
    return gspread.client.spreadsheet.worksheets[title]


ROW = ["2026-01-05T09:00:00.000Z", "call_completed", *[""] * (len(SHEETS_COLUMNS) - 2)]


class TestGoogleSheet:
    def test_missing_gspread_asks_for_the_extra(
        self, monkeypatch: pytest.MonkeyPatch, key_file: dict[str, str]
    ) -> None:
        """Without gspread installed, configuring the sheet is an InputError."""
        monkeypatch.setitem(sys.modules, "gspread", None)

        with pytest.raises(InputError) as caught:
            build_sheet_uploader(SheetsConfig(), key_file)

        assert str(caught.value) == (
            "logging.google_sheets: install callagent[sheets] (gspread)"
        )

    @pytest.mark.usefixtures("gspread")
    def test_missing_credentials_variable_is_named(self) -> None:
        """An unset credentials variable is an InputError naming it and its key."""
        with pytest.raises(InputError) as caught:
            build_sheet_uploader(SheetsConfig(), {})

        message = str(caught.value)
        assert message.startswith("logging.google_sheets.credentials_env:")
        assert "SHEETS_KEY_FILE is not set" in message

    @pytest.mark.usefixtures("gspread")
    def test_unreadable_key_file_is_an_input_error(self, tmp_path: Path) -> None:
        """A variable naming no key file is an InputError naming the variable."""
        environ = {"SHEETS_KEY_FILE": str(tmp_path / "missing.json")}

        with pytest.raises(InputError) as caught:
            open_google_sheet("key", "callagent", "SHEETS_KEY_FILE", environ)

        assert "SHEETS_KEY_FILE does not point to a readable" in str(caught.value)

    def test_key_file_path_comes_from_the_named_variable(
        self, gspread: FakeGspread, key_file: dict[str, str]
    ) -> None:
        """The key file is the one the variable names; requests get a timeout."""
        open_google_sheet("key", "callagent", "SHEETS_KEY_FILE", key_file)

        assert gspread.key_files == [key_file["SHEETS_KEY_FILE"]]
        assert gspread.client.timeout is not None

    def test_first_append_writes_the_header_then_rows_as_raw_text(
        self, gspread: FakeGspread, key_file: dict[str, str]
    ) -> None:
        """An empty worksheet gets the header once; rows go RAW, inserted from A1."""
        sheet = open_google_sheet("key-1", "callagent", "SHEETS_KEY_FILE", key_file)

        sheet.append_rows([ROW])
        sheet.append_rows([ROW, ROW])

        worksheet = sheet_of(gspread)
        assert worksheet.values == [list(SHEETS_COLUMNS), ROW, ROW, ROW]
        assert gspread.client.opened == ["key-1"]
        first = worksheet.calls[0]
        assert first["value_input_option"] == "RAW"
        assert first["insert_data_option"] == "INSERT_ROWS"
        assert first["table_range"] == "A1"

    def test_a_missing_worksheet_is_created(
        self, gspread: FakeGspread, key_file: dict[str, str]
    ) -> None:
        """A worksheet that does not exist yet is added, with the header row."""
        sheet = open_google_sheet("key-1", "new tab", "SHEETS_KEY_FILE", key_file)

        sheet.append_rows([ROW])

        assert sheet_of(gspread, "new tab").values == [list(SHEETS_COLUMNS), ROW]

    @pytest.mark.parametrize(
        ("error", "expected", "retry_after"),
        [
            (
                FakeAPIError(429, "Quota exceeded", {"Retry-After": "12"}),
                RateLimited,
                12,
            ),
            (FakeAPIError(429, "Quota exceeded"), RateLimited, None),
            (FakeAPIError(503, "Backend busy"), ServiceUnavailable, None),
            (
                FakeAPIError(403, "The caller does not have permission"),
                AuthenticationFailed,
                None,
            ),
            (FakeAPIError(400, "Invalid range"), PermanentError, None),
            (PermissionError(), AuthenticationFailed, None),
            (
                ConnectionResetError("https://sheets.googleapis.com/..."),
                NetworkError,
                None,
            ),
        ],
    )
    def test_errors_are_translated_into_the_taxonomy(
        self,
        gspread: FakeGspread,
        key_file: dict[str, str],
        error: Exception,
        expected: type[Exception],
        retry_after: float | None,
    ) -> None:
        """gspread's and the transport's errors become callagent's, quota retryable."""
        sheet = open_google_sheet("key-1", "callagent", "SHEETS_KEY_FILE", key_file)
        sheet_of(gspread).fail_with(error)

        with pytest.raises(expected) as caught:
            sheet.append_rows([ROW])

        assert type(caught.value) is expected
        assert isinstance(caught.value, ServiceError)
        assert caught.value.retry_after == retry_after
        assert caught.value.__cause__ is error
        assert "googleapis" not in str(caught.value)

    def test_timeouts_and_refused_keys_from_google_auth_are_told_apart(
        self, gspread: FakeGspread, key_file: dict[str, str]
    ) -> None:
        """A read timeout is retryable; google-auth's refused key is not."""
        read_timeout = type("ReadTimeout", (OSError,), {})()
        refused = type(
            "RefreshError", (Exception,), {"__module__": "google.auth.exceptions"}
        )("invalid_grant")
        sheet = open_google_sheet("key-1", "callagent", "SHEETS_KEY_FILE", key_file)
        sheet_of(gspread).fail_with(read_timeout, refused)

        with pytest.raises(ServiceTimeout):
            sheet.append_rows([ROW])
        with pytest.raises(AuthenticationFailed) as caught:
            sheet.append_rows([ROW])

        assert not isinstance(caught.value, TransientError)

    def test_header_is_resent_when_the_first_append_was_refused(
        self, gspread: FakeGspread, key_file: dict[str, str]
    ) -> None:
        """A throttled first append retried later still starts with the header."""
        sheet = open_google_sheet("key-1", "callagent", "SHEETS_KEY_FILE", key_file)
        sheet_of(gspread).fail_with(FakeAPIError(429))

        with pytest.raises(RateLimited):
            sheet.append_rows([ROW])
        sheet.append_rows([ROW])

        assert sheet_of(gspread).values == [list(SHEETS_COLUMNS), ROW]

    def test_settings_build_an_uploader_that_fills_the_worksheet(
        self, gspread: FakeGspread, key_file: dict[str, str]
    ) -> None:
        """From settings to sheet: the header, then every event's row in order."""
        warnings: list[str] = []
        up = build_sheet_uploader(
            SheetsConfig(batch_size=4), key_file, warn=warnings.append
        )

        emit_calls(up, 10)
        up.close()

        values = sheet_of(gspread).values
        assert values[0] == list(SHEETS_COLUMNS)
        assert call_ids(values[1:]) == list(range(10))
        assert warnings == []

    def test_a_quota_error_from_gspread_is_waited_out(
        self, gspread: FakeGspread, key_file: dict[str, str]
    ) -> None:
        """A 429 from the API is retried after its Retry-After; rows arrive once."""
        clock = RecordingClock()
        sheet = open_google_sheet("key-1", "callagent", "SHEETS_KEY_FILE", key_file)
        sheet_of(gspread).fail_with(
            FakeAPIError(429, "Quota exceeded", {"Retry-After": "5"})
        )
        up, _ = uploader(sheet, clock=clock)

        emit_calls(up, 3)
        up.close()

        assert clock.sleeps == [5]
        assert call_ids(sheet_of(gspread).values[1:]) == [0, 1, 2]
