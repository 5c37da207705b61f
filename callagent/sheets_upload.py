"""The Sheets rows, appended in batches to a real Google Sheet, off the campaign's path.

``logs/sheets.csv`` is the complete record of a run; this uploader sends the same rows
(same columns, same neutralised cells) to a worksheet through gspread, an optional
extra (``callagent[sheets]``). It never slows the campaign:

- ``__call__`` turns the event into a row and queues it; nothing on the campaign's
  thread waits on the network;
- the queue is bounded: when it is full the oldest row makes room for the newest, so
  the end of a run (failures, ``campaign_finished``) still reaches the sheet, and
  each row pushed out is counted;
- one background thread appends up to ``batch_size`` rows per request, as soon as a
  batch is full or ``flush_interval_s`` after the first row of a batch arrived;
- the Sheets API allows 60 write requests a minute per user: requests are kept within
  ``max_writes_per_minute``, and a 429 or 5xx is retried with exponential backoff
  (Google's advice for this API), waiting at least what ``Retry-After`` asks;
- a batch that fails for good is counted, the first failure is reported at once and
  every loss is summed up at close: one plain line on stderr each, never an
  exception into the campaign;
- :meth:`SheetUploader.close` lets the queue drain within ``drain_timeout_s`` and
  then gives up on the rest, cutting short any backoff wait.

The flush interval is real time even under a virtual clock: it paces requests to a
real service. Backoff and quota waits go through the injected clock, so tests see
them without sleeping.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import random
import sys
import threading
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Protocol

from callagent.clock import Clock, StoppableClock, Stopped, SystemClock
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
from callagent.eventlog import SHEETS_COLUMNS, sheet_cell
from callagent.events import Event
from callagent.retry import Backoff
from callagent.services.http import redact, retry_after_s

#: The name upload errors carry, as a service's errors carry the service's.
SERVICE = "google_sheets"

_KEY = "logging.google_sheets"
_INSTALL_HINT = f"{_KEY}: install callagent[sheets] (gspread)"

#: Google's advice for the Sheets API: exponential backoff from 1 s, capped at 64 s,
#: with up to a second of random jitter so that clients do not retry in step.
DEFAULT_BACKOFF = Backoff(initial_s=1.0, multiplier=2.0, max_s=64.0, jitter_s=1.0)
#: The Sheets API's write quota per user and project.
SHEETS_WRITES_PER_MINUTE = 60
_QUOTA_WINDOW_S = 60.0
#: How long close() lets a worker unwind once its backoff wait was cut short.
_UNWIND_S = 0.2
#: gspread's requests have no timeout unless given one: (connect, read) seconds.
_REQUEST_TIMEOUT_S = (10.0, 60.0)


class SheetTarget(Protocol):
    """Where batches of rows go: a worksheet, or a fake in tests."""

    def append_rows(self, rows: list[list[str]]) -> None:
        """Append the rows in order, or raise a ServiceError saying why not."""


class GoogleSheetsConfig(Protocol):
    """The shape of ``logging.google_sheets`` in settings."""

    @property
    def spreadsheet_key(self) -> str: ...

    @property
    def worksheet(self) -> str: ...

    @property
    def credentials_env(self) -> str: ...

    @property
    def batch_size(self) -> int: ...

    @property
    def flush_interval_s(self) -> float: ...

    @property
    def queue_size(self) -> int: ...

    @property
    def drain_timeout_s(self) -> float: ...


@dataclass(frozen=True, slots=True)
class UploadStats:
    """What became of the rows offered to the uploader."""

    #: Rows the sheet accepted.
    uploaded: int = 0
    #: Append requests that succeeded.
    batches: int = 0
    #: Waits before a retry of a throttled or failed request.
    retries: int = 0
    #: Rows pushed out of a full queue, or offered after close.
    dropped: int = 0
    #: Rows whose batch failed for good.
    failed: int = 0
    #: Rows still queued or in flight when the drain limit ran out.
    abandoned: int = 0
    #: Why the last batch failed for good.
    last_error: str | None = None

    @property
    def lost(self) -> int:
        return self.dropped + self.failed + self.abandoned

    def summary(self) -> str:
        """One line saying what reached the sheet and what did not."""
        offered = self.uploaded + self.lost
        batches = f"{self.batches} batch" + ("" if self.batches == 1 else "es")
        parts = [f"{self.uploaded} of {offered} rows uploaded in {batches}"]
        if self.dropped:
            parts.append(f"{self.dropped} dropped (queue full)")
        if self.failed:
            parts.append(f"{self.failed} failed (last error: {self.last_error})")
        if self.abandoned:
            parts.append(f"{self.abandoned} not sent before the drain limit")
        return f"{SERVICE}: " + "; ".join(parts)


def warn_on_stderr(text: str) -> None:
    """The default way to report: a plain line on stderr, after the live view's."""
    print(f"warning: {text}", file=sys.stderr)


class SheetUploader:
    """An event subscriber that appends each event's row to a sheet, in batches."""

    def __init__(
        self,
        target: SheetTarget,
        *,
        batch_size: int = 500,
        flush_interval_s: float = 5.0,
        queue_size: int = 10_000,
        drain_timeout_s: float = 10.0,
        max_retries: int = 8,
        backoff: Backoff = DEFAULT_BACKOFF,
        max_writes_per_minute: int = SHEETS_WRITES_PER_MINUTE,
        clock: Clock | None = None,
        rng: random.Random | None = None,
        warn: Callable[[str], None] = warn_on_stderr,
    ) -> None:
        if batch_size < 1 or queue_size < 1 or max_writes_per_minute < 1:
            raise ValueError(
                "batch_size, queue_size and writes per minute must be >= 1"
            )
        if flush_interval_s <= 0:
            raise ValueError("flush_interval_s must be > 0")
        self._target = target
        self._batch_size = batch_size
        self._flush_interval_s = flush_interval_s
        self._drain_timeout_s = drain_timeout_s
        self._max_retries = max_retries
        self._backoff = backoff
        self._max_writes = max_writes_per_minute
        self._rng = rng if rng is not None else random.Random()
        self._warn = warn
        self._abandon = threading.Event()
        # Backoff and quota waits end early, raising Stopped, once close() gives up.
        self._clock = StoppableClock(clock or SystemClock(), self._abandon)
        self._sent_at: deque[float] = deque()

        self._cond = threading.Condition()
        self._rows: deque[list[str]] = deque(maxlen=queue_size)
        self._in_flight = 0
        self._stopping = False
        # Set once close() has counted what is left: the worker's later outcomes are
        # ignored, so that every row is counted once.
        self._muted = False
        self._warned = False
        self._stats = UploadStats()
        self._thread = threading.Thread(
            target=self._run, name="sheets-upload", daemon=True
        )
        self._thread.start()

    def __call__(self, event: Event) -> None:
        """Queue the event's row; never waits on the network."""
        record = event.as_record()
        row = [sheet_cell(record.get(column)) for column in SHEETS_COLUMNS]
        with self._cond:
            if self._stopping:
                self._count(dropped=1)
                return
            if len(self._rows) == self._rows.maxlen:
                self._count(dropped=1)
            self._rows.append(row)
            # Wake the worker only when it has something new to do: a first row
            # starts its flush interval, a full batch ends it.
            if len(self._rows) in (1, self._batch_size):
                self._cond.notify_all()

    def stats(self) -> UploadStats:
        with self._cond:
            return self._stats

    def close(self) -> None:
        """Let the queue drain within the drain limit, then give up on the rest."""
        with self._cond:
            if self._stopping:
                return
            self._stopping = True
            self._cond.notify_all()
        self._thread.join(self._drain_timeout_s)
        # Cuts short a backoff or quota wait; a request already on the wire keeps
        # its own timeout, and its rows are counted as abandoned here.
        self._abandon.set()
        self._thread.join(_UNWIND_S)
        with self._cond:
            self._muted = True
            self._count(abandoned=len(self._rows) + self._in_flight)
            self._rows.clear()
            self._in_flight = 0
            stats = self._stats
        if stats.lost:
            self._report(stats.summary())

    def _run(self) -> None:
        try:
            while (batch := self._next_batch()) is not None:
                self._upload(batch)
        except Stopped:
            # close() ran out of drain time during a wait; it counts what is left.
            return

    def _next_batch(self) -> list[list[str]] | None:
        with self._cond:
            while not self._rows and not self._stopping:
                self._cond.wait()
            if not self._stopping:
                self._cond.wait_for(
                    lambda: self._stopping or len(self._rows) >= self._batch_size,
                    self._flush_interval_s,
                )
            if not self._rows or self._muted:
                return None
            count = min(self._batch_size, len(self._rows))
            batch = [self._rows.popleft() for _ in range(count)]
            self._in_flight = count
            return batch

    def _upload(self, batch: list[list[str]]) -> None:
        """Append one batch, retrying what is worth retrying; count the outcome."""
        retries = 0
        while True:
            if self._abandon.is_set():
                raise Stopped
            self._within_quota()
            try:
                self._target.append_rows(batch)
            except TransientError as error:
                if retries >= self._max_retries:
                    self._finished(failed=len(batch), error=str(error))
                    return
                retries += 1
                with self._cond:
                    self._count(retries=1)
                self._clock.sleep(self._delay(retries, error))
                continue
            except ServiceError as error:
                self._finished(failed=len(batch), error=str(error))
                return
            except Exception as error:
                # A bug in a target must not stop the uploads. Only the class is
                # kept: an unexpected exception's text was not built to be safe to
                # print and may quote a URL or a credential.
                self._finished(
                    failed=len(batch), error=f"unexpected {type(error).__name__}"
                )
                return
            self._finished(uploaded=len(batch))
            return

    def _delay(self, retry_number: int, error: ServiceError) -> float:
        delay = self._backoff.delay(retry_number, self._rng)
        if error.retry_after is not None:
            delay = max(delay, error.retry_after)
        return delay

    def _within_quota(self) -> None:
        """Wait until one more request stays within the per-minute write quota."""
        sent = self._sent_at
        now = self._clock.monotonic()
        while sent and now - sent[0] >= _QUOTA_WINDOW_S:
            sent.popleft()
        if len(sent) >= self._max_writes:
            self._clock.sleep(sent[0] + _QUOTA_WINDOW_S - now)
            sent.popleft()
        # Every attempt counts: Google counts refused requests against the quota.
        sent.append(self._clock.monotonic())

    def _finished(
        self, *, uploaded: int = 0, failed: int = 0, error: str | None = None
    ) -> None:
        with self._cond:
            if self._muted:
                return
            self._in_flight = 0
            if uploaded:
                self._count(uploaded=uploaded, batches=1)
            if failed:
                self._count(failed=failed, last_error=error)
            first_failure = bool(failed) and not self._warned
            self._warned = self._warned or first_failure
        if first_failure:
            self._report(
                f"{SERVICE}: {failed} rows could not be appended ({error}); "
                "the run goes on, sheets.csv has every row, and later losses are "
                "summed up at the end"
            )

    def _count(self, *, last_error: str | None = None, **counts: int) -> None:
        # Called with the lock held. The stats are replaced, never changed in place,
        # so a snapshot handed out by stats() stays as it was.
        current = self._stats
        changes: dict[str, Any] = {
            name: getattr(current, name) + value for name, value in counts.items()
        }
        if last_error is not None:
            changes["last_error"] = last_error
        self._stats = replace(current, **changes)

    def _report(self, text: str) -> None:
        # stderr may be closed or a broken pipe: a report that cannot be printed
        # must not stop the uploads, nor the campaign at close.
        with contextlib.suppress(Exception):
            self._warn(text)


def build_sheet_uploader(
    config: GoogleSheetsConfig,
    environ: Mapping[str, str] | None = None,
    *,
    warn: Callable[[str], None] = warn_on_stderr,
) -> SheetUploader:
    """The uploader ``logging.google_sheets`` describes, writing to its worksheet.

    Raises InputError before the campaign starts when gspread is missing or the
    credentials cannot be read: better to refuse at start than to lose the sheet
    silently. Nothing here touches the network.
    """
    target = open_google_sheet(
        config.spreadsheet_key, config.worksheet, config.credentials_env, environ
    )
    return SheetUploader(
        target,
        batch_size=config.batch_size,
        flush_interval_s=config.flush_interval_s,
        queue_size=config.queue_size,
        drain_timeout_s=config.drain_timeout_s,
        warn=warn,
    )


def open_google_sheet(
    spreadsheet_key: str,
    worksheet: str,
    credentials_env: str,
    environ: Mapping[str, str] | None = None,
) -> GoogleSheet:
    """A worksheet reached with the service account whose key file the variable names.

    The variable holds the path of the JSON key file, never the key: the settings
    file names the variable, as it does for every other secret.
    """
    try:
        # Imported here, and only when configured: gspread is an optional extra.
        # import_module returns an untyped module (gspread ships no stubs), so its
        # API is Any here and checked by the tests' stand-in instead.
        gspread: Any = importlib.import_module("gspread")
    except ImportError as exc:
        raise InputError(_INSTALL_HINT) from exc

    env = os.environ if environ is None else environ
    path = env.get(credentials_env, "")
    if not path.strip():
        raise InputError(
            f"{_KEY}.credentials_env: environment variable {credentials_env} is not "
            "set; it must hold the path of a service account's JSON key file"
        )
    try:
        client = gspread.service_account(filename=path)
    except (OSError, ValueError, KeyError) as exc:
        # The exception's text is not shown: a malformed key file's content could
        # be quoted in it.
        raise InputError(
            f"{_KEY}.credentials_env: {credentials_env} does not point to a readable "
            f"service account JSON key file ({type(exc).__name__})"
        ) from exc
    client.set_timeout(_REQUEST_TIMEOUT_S)
    return GoogleSheet(gspread, client, spreadsheet_key, worksheet)


class GoogleSheet:
    """One worksheet of a Google spreadsheet, through gspread.

    The worksheet is opened on the first append, on the uploader's thread, so a
    slow or unreachable Google never delays the start of a campaign. A missing
    worksheet is created, and an empty one gets the header row first.
    """

    def __init__(
        self, gspread: Any, client: Any, spreadsheet_key: str, worksheet: str
    ) -> None:
        self._gspread = gspread
        self._client = client
        self._spreadsheet_key = spreadsheet_key
        self._title = worksheet
        self._worksheet: Any = None
        self._needs_header = False

    def append_rows(self, rows: list[list[str]]) -> None:
        try:
            worksheet = self._open()
            values = [list(SHEETS_COLUMNS), *rows] if self._needs_header else rows
            worksheet.append_rows(
                values,
                # RAW: Sheets stores the text as given and evaluates nothing.
                value_input_option="RAW",
                insert_data_option="INSERT_ROWS",
                # Without it, Sheets guesses the table from the data and may start
                # a row in a later column when earlier rows have empty cells.
                table_range="A1",
            )
        except Exception as exc:
            error = self._translate(exc)
            if error is None:
                raise
            raise error from exc
        self._needs_header = False

    def _open(self) -> Any:
        if self._worksheet is not None:
            return self._worksheet
        spreadsheet = self._client.open_by_key(self._spreadsheet_key)
        try:
            worksheet = spreadsheet.worksheet(self._title)
        except self._gspread.exceptions.WorksheetNotFound:
            worksheet = spreadsheet.add_worksheet(
                title=self._title, rows=1000, cols=len(SHEETS_COLUMNS)
            )
        self._needs_header = not worksheet.row_values(1)
        self._worksheet = worksheet
        return worksheet

    def _translate(self, exc: Exception) -> ServiceError | None:
        """The taxonomy's error for what gspread, google-auth or requests raised."""
        errors = self._gspread.exceptions
        if isinstance(exc, errors.APIError):
            return api_error(exc)
        if isinstance(exc, errors.SpreadsheetNotFound):
            return PermanentError(
                SERVICE,
                f"spreadsheet {self._spreadsheet_key} not found "
                "(check logging.google_sheets.spreadsheet_key)",
                status=404,
            )
        return _client_error(exc)


#: What to do about a 403, said with every one of them.
_SHARE_HINT = (
    "share the spreadsheet with the service account's client_email as an editor"
)


def _client_error(exc: Exception) -> ServiceError | None:
    """The taxonomy's error for what gspread's HTTP stack raised short of an answer."""
    # gspread turns a 403 on opening into a bare PermissionError; it must be told
    # apart before OSError, of which it is a subclass.
    if isinstance(exc, PermissionError):
        return AuthenticationFailed(
            SERVICE, f"permission denied: {_SHARE_HINT}", status=403
        )
    if _is_google_auth_error(exc, "RefreshError"):
        return AuthenticationFailed(
            SERVICE, "the service account's key was refused", code="refresh"
        )
    if _is_google_auth_error(exc, "TransportError") or isinstance(exc, OSError):
        # requests' errors derive from OSError. Only the class is kept: their text
        # quotes the request's URL.
        kind = type(exc).__name__
        if "Timeout" in kind:
            return ServiceTimeout(SERVICE, f"no answer in time ({kind})")
        return NetworkError(SERVICE, kind, code="network")
    return None


def api_error(exc: Any) -> ServiceError:
    """The taxonomy's error for a gspread APIError, from its status and body."""
    response = getattr(exc, "response", None)
    status = getattr(response, "status_code", None) or getattr(exc, "code", None)
    headers = getattr(response, "headers", None) or {}
    body = getattr(exc, "error", None)
    detail = body.get("message") if isinstance(body, Mapping) else None
    code = body.get("status") if isinstance(body, Mapping) else None
    message = redact(str(detail)) if detail else "request refused"
    if status == 429:
        # Sheets' per-minute write quota: it clears within a minute.
        return RateLimited(
            SERVICE, message, status=429, code=code, retry_after=retry_after_s(headers)
        )
    if status == 408:
        return ServiceTimeout(SERVICE, message, status=408, code=code)
    if isinstance(status, int) and status >= 500:
        return ServiceUnavailable(
            SERVICE,
            message,
            status=status,
            code=code,
            retry_after=retry_after_s(headers),
        )
    if status in (401, 403):
        # A 403 is most often a spreadsheet not shared with the service account,
        # but also a Sheets API not enabled in the project: Google's text tells.
        hint = (
            f" (if the spreadsheet is not shared: {_SHARE_HINT})"
            if status == 403
            else ""
        )
        return AuthenticationFailed(SERVICE, message + hint, status=status, code=code)
    return PermanentError(SERVICE, message, status=status, code=code)


def _is_google_auth_error(exc: Exception, name: str) -> bool:
    # google-auth comes with gspread; its exceptions are matched by their public
    # names rather than imported, so that nothing else needs to be installed or
    # faked for gspread to be optional.
    return any(
        cls.__name__ == name and cls.__module__.startswith("google.auth")
        for cls in type(exc).__mro__
    )
