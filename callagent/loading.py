"""Loading a contacts file into a journal, logging each invalid row as it goes."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from callagent.contacts import Contact, ContactsReader, InvalidRow, mask_phone
from callagent.events import Emitter
from callagent.journal import MemoryJournal, SqliteJournal


def announce_invalid(
    rows: Iterable[Contact | InvalidRow], events: Emitter, source: str
) -> Iterator[Contact | InvalidRow]:
    """Pass rows through, logging ``contact_invalid`` for each bad one."""
    for row in rows:
        if isinstance(row, InvalidRow):
            events.emit(
                "contact_invalid",
                level="WARNING",
                contact=mask_phone(row.raw) if row.raw else None,
                message=f"{source} row {row.row}: {row.reason}",
            )
        yield row


def load_into_sqlite(
    journal: SqliteJournal, reader: ContactsReader, events: Emitter
) -> bool:
    """Load the file once per campaign; False when the campaign was loaded before."""
    source = str(reader.path)
    rows = announce_invalid(reader, events, source)
    return journal.load_contacts(rows, digest=reader.digest, source=source)


def load_into_memory(
    journal: MemoryJournal, reader: ContactsReader, events: Emitter
) -> None:
    """Queue every valid row of the file and count the invalid ones."""
    for row in announce_invalid(reader, events, str(reader.path)):
        if isinstance(row, InvalidRow):
            journal.add_invalid(row.row, row.reason)
        else:
            journal.add_contacts((row,))
