"""The machine-readable records of a run: ``logs/system.log`` and ``logs/sheets.csv``.

``system.log`` is one flat JSON object per line, written through loguru (which also
rotates it by size). ``sheets.csv`` holds the same events with a fixed header and
column order, ready to import into Google Sheets. Both are line-buffered, so a
``kill -9`` loses at most the line being written.
"""

from __future__ import annotations

import csv
import json
import threading
from pathlib import Path
from typing import IO, Any

from loguru import logger

from callagent.events import OPTIONAL_FIELDS, REQUIRED_FIELDS, Event

SHEETS_COLUMNS = REQUIRED_FIELDS + OPTIONAL_FIELDS

#: A spreadsheet treats a cell starting with one of these as a formula.
_FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def sheet_cell(value: Any) -> str:
    """A value as a CSV cell that no spreadsheet will evaluate."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int | float):
        # Numbers stay numbers: a negative number is data, not a formula.
        return repr(value) if isinstance(value, float) else str(value)
    text = str(value)
    if text.startswith(_FORMULA_PREFIXES):
        return "'" + text
    return text


class EventLog:
    """Writes each event as one JSON line to ``<dir>/system.log``."""

    def __init__(self, directory: Path, *, rotation_mb: float = 50.0) -> None:
        self.path = directory / "system.log"
        self._sink_id = logger.add(
            str(self.path),
            format="{message}",
            filter=self._is_ours,
            level=0,
            rotation=int(rotation_mb * 1024 * 1024),
            encoding="utf-8",
            buffering=1,
            catch=False,
        )
        self._log = logger.bind(callagent_sink=self._sink_id)

    def _is_ours(self, record: Any) -> bool:
        return bool(record["extra"].get("callagent_sink") == self._sink_id)

    def __call__(self, event: Event) -> None:
        line = json.dumps(event.as_record(), ensure_ascii=False, default=str)
        # raw: the line is already formatted, and JSON braces must not be read as
        # format fields.
        self._log.opt(raw=True).log("INFO", line + "\n")

    def close(self) -> None:
        logger.remove(self._sink_id)


class SheetsLog:
    """Writes each event as a CSV row to ``<dir>/sheets.csv``."""

    def __init__(self, directory: Path) -> None:
        self.path = directory / "sheets.csv"
        fresh = not self.path.exists() or self.path.stat().st_size == 0
        self._file: IO[str] = self.path.open(
            "a", encoding="utf-8", newline="", buffering=1
        )
        # "\r\n", as RFC 4180 has it: with a bare "\n" the csv module leaves a lone
        # "\r" inside a value unquoted, and readers end the row there.
        self._writer = csv.writer(self._file, lineterminator="\r\n")
        self._lock = threading.Lock()
        if fresh:
            self._writer.writerow(SHEETS_COLUMNS)

    def __call__(self, event: Event) -> None:
        record = event.as_record()
        row = [sheet_cell(record.get(column)) for column in SHEETS_COLUMNS]
        with self._lock:
            self._writer.writerow(row)

    def close(self) -> None:
        self._file.close()
