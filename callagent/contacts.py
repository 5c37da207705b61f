"""Contacts: who the campaign calls, read from a CSV file one row at a time.

The file is checked as a whole before the first row is handed out (it exists, is
UTF-8 text, has a header with a phone column), so a bad file fails before anything
is called. Rows are then streamed: a row that cannot become a :class:`Contact` is
an :class:`InvalidRow` with its line number and a reason, and the campaign goes on.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumberFormat

from callagent.errors import InputError

#: Header names (after :func:`_column_key`) that hold the phone number.
PHONE_COLUMNS = ("phone", "phone_number")
_RESERVED = ("contact_id", "name", "timezone")
_CHUNK = 1 << 20

_PARSE_REASONS = {
    NumberParseException.INVALID_COUNTRY_CODE: "unknown or missing country code",
    NumberParseException.NOT_A_NUMBER: "not a phone number",
    NumberParseException.TOO_SHORT_AFTER_IDD: "too short to be a phone number",
    NumberParseException.TOO_SHORT_NSN: "too short to be a phone number",
    NumberParseException.TOO_LONG: "too long to be a phone number",
}


@dataclass(frozen=True, slots=True)
class Contact:
    """One valid row of the contacts file, its number normalised to E.164."""

    row: int
    phone: str
    contact_id: str
    name: str | None = None
    timezone: str | None = None
    #: Every other column of the row, offered to the LLM prompt as a variable.
    variables: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class InvalidRow:
    """A data row that cannot be called, and why."""

    #: The file line the row starts on; the header is line 1.
    row: int
    reason: str
    #: The phone cell as written ("" when missing); mask it before logging.
    raw: str


def mask_phone(phone: str) -> str:
    """A number safe to log: country code and last four digits, e.g. +1******4567."""
    if len(phone) <= 6:
        return "*" * len(phone)
    return phone[:2] + "*" * (len(phone) - 6) + phone[-4:]


def read_contacts(path: Path | str, *, default_region: str) -> ContactsReader:
    """Check a contacts file and return a reader that streams its rows."""
    return ContactsReader(Path(path), default_region=default_region)


class ContactsReader:
    """A checked contacts file; iterating it yields a Contact or InvalidRow per row.

    Construction reads the whole file once to check it (encoding, binary content,
    header) and to fingerprint it, raising :class:`InputError` naming the file.
    Iteration keeps one row in memory at a time, plus one int per valid number to
    catch duplicates. When the file turns out to hold no valid row, iteration
    raises :class:`InputError` after the last row; ``valid`` and ``invalid`` count
    what the last iteration saw.
    """

    def __init__(self, path: Path, *, default_region: str) -> None:
        self.path = path
        self.default_region = default_region.upper()
        self.valid = 0
        self.invalid = 0
        self.digest = _check_bytes(path)
        self._columns = _Columns.from_header(path, self._read_header())

    def __iter__(self) -> Iterator[Contact | InvalidRow]:
        self.valid = 0
        self.invalid = 0
        first_reason: str | None = None
        for item in self._rows():
            if isinstance(item, Contact):
                self.valid += 1
            else:
                self.invalid += 1
                if first_reason is None:
                    first_reason = f"row {item.row}: {item.reason}"
            yield item

        if self.valid == 0:
            raise InputError(self._no_valid_row_message(first_reason))

    def _rows(self) -> Iterator[Contact | InvalidRow]:
        seen: set[int] = set()
        with self._open() as handle:
            records = csv.reader(handle)
            header_seen = False
            line = 0
            for record in self._decoded(records):
                # line_num counts physical lines, so a quoted field that spans
                # lines still gives the line its row starts on.
                start, line = line + 1, records.line_num
                if not any(cell.strip() for cell in record):
                    continue
                if not header_seen:
                    header_seen = True
                    continue
                yield self._parse(start, record, seen)

    def _parse(
        self, row: int, record: list[str], seen: set[int]
    ) -> Contact | InvalidRow:
        columns = self._columns
        raw = _cell(record, columns.phone)
        try:
            phone = _to_e164(raw, self.default_region)
        except _Unusable as exc:
            return InvalidRow(row, str(exc), raw)

        # E.164 is '+' and at most 15 digits, never starting with 0: an int holds
        # it exactly, in a fraction of the memory of the string.
        number = int(phone[1:])
        if number in seen:
            return InvalidRow(row, "duplicate of a number on an earlier row", raw)
        seen.add(number)
        return Contact(
            row=row,
            phone=phone,
            contact_id=_cell(record, columns.contact_id) or f"row-{row}",
            name=_cell(record, columns.name) or None,
            timezone=_cell(record, columns.timezone) or None,
            variables={name: _cell(record, i) for name, i in columns.variables},
        )

    def _read_header(self) -> list[str]:
        with self._open() as handle:
            for record in self._decoded(csv.reader(handle)):
                if any(cell.strip() for cell in record):
                    return record
        raise InputError(f"{self.path}: contacts file has no header row")

    @contextmanager
    def _open(self) -> Iterator[TextIO]:
        try:
            handle = self.path.open(encoding="utf-8-sig", newline="")
        except OSError as exc:
            raise InputError(f"{self.path}: cannot read contacts file ({exc})") from exc
        with handle:
            yield handle

    def _decoded(self, records: Iterator[list[str]]) -> Iterator[list[str]]:
        """The csv records, with low-level read errors turned into InputError."""
        try:
            yield from records
        except csv.Error as exc:
            line = getattr(records, "line_num", "?")
            raise InputError(
                f"{self.path}: line {line}: malformed CSV ({exc})"
            ) from exc
        except UnicodeDecodeError as exc:
            raise InputError(f"{self.path}: not UTF-8 text ({exc.reason})") from exc

    def _no_valid_row_message(self, first_reason: str | None) -> str:
        if first_reason is None:
            return f"{self.path}: no data rows after the header"
        return (
            f"{self.path}: no valid contact in {self.invalid} rows "
            f"(first problem: {first_reason})"
        )


@dataclass(frozen=True, slots=True)
class _Columns:
    """Where each field sits in a record."""

    phone: int
    contact_id: int | None
    name: int | None
    timezone: int | None
    #: (header as written, index) of every other named column.
    variables: tuple[tuple[str, int], ...]

    @classmethod
    def from_header(cls, path: Path, header: list[str]) -> _Columns:
        found: dict[str, int] = {}
        phones: list[int] = []
        variables: dict[str, int] = {}
        for index, name in enumerate(header):
            key = _column_key(name)
            if key in PHONE_COLUMNS:
                phones.append(index)
            elif key in _RESERVED:
                found.setdefault(key, index)
            elif key:
                variables.setdefault(name.strip(), index)

        if not phones:
            raise InputError(
                f"{path}: no phone column in the header "
                "(expected 'phone', 'phone_number' or 'phone number')"
            )
        if len(phones) > 1:
            names = ", ".join(repr(header[i].strip()) for i in phones)
            raise InputError(f"{path}: several phone columns in the header ({names})")
        return cls(
            phone=phones[0],
            contact_id=found.get("contact_id"),
            name=found.get("name"),
            timezone=found.get("timezone"),
            variables=tuple(variables.items()),
        )


def _column_key(name: str) -> str:
    """'  Phone Number ' and 'phone-number' both become 'phone_number'."""
    return re.sub(r"[\s\-]+", "_", name.strip().lower())


def _cell(record: list[str], index: int | None) -> str:
    if index is None or index >= len(record):
        return ""
    return record[index].strip()


class _Unusable(ValueError):
    """A phone cell that cannot be called; the message is the reason."""


def _to_e164(raw: str, region: str) -> str:
    if not raw:
        raise _Unusable("missing phone number")
    try:
        number = phonenumbers.parse(raw, region)
    except NumberParseException as exc:
        reason = _PARSE_REASONS.get(exc.error_type, "not a phone number")
        raise _Unusable(reason) from exc

    if not phonenumbers.is_valid_number(number):
        if raw.startswith("+"):
            raise _Unusable("not a valid phone number")
        raise _Unusable(f"not a valid phone number for region {region}")
    return str(phonenumbers.format_number(number, PhoneNumberFormat.E164))


def _check_bytes(path: Path) -> str:
    """Check the file is non-empty UTF-8 text; return its SHA-256.

    Done in one pass over the raw bytes before any row is parsed, so a stray
    Latin-1 byte on the last line stops the run before the first call, not after.
    """
    digest = hashlib.sha256()
    decoder = codecs.getincrementaldecoder("utf-8")("strict")
    lines = 1
    has_text = False
    try:
        with path.open("rb") as handle:
            while chunk := handle.read(_CHUNK):
                if b"\0" in chunk:
                    raise InputError(f"{path}: binary file, not a CSV (NUL byte found)")
                pending = len(decoder.getstate()[0])
                try:
                    text = decoder.decode(chunk)
                except UnicodeDecodeError as exc:
                    line = lines + chunk.count(b"\n", 0, max(0, exc.start - pending))
                    raise InputError(
                        f"{path}: not UTF-8 text (line {line}); save it as UTF-8"
                    ) from exc
                digest.update(chunk)
                lines += chunk.count(b"\n")
                has_text = has_text or bool(text.lstrip("\ufeff \t\r\n"))
            decoder.decode(b"", final=True)
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not UTF-8 text (truncated at the end)") from exc
    except IsADirectoryError as exc:
        raise InputError(f"{path}: is a directory, not a contacts file") from exc
    except FileNotFoundError as exc:
        raise InputError(f"{path}: contacts file not found") from exc
    except OSError as exc:
        raise InputError(f"{path}: cannot read contacts file ({exc.strerror})") from exc

    if not has_text:
        raise InputError(f"{path}: contacts file is empty")
    return digest.hexdigest()
