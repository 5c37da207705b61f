"""The SQLite journal: the call queue of ``callagent run``, durable across crashes.

One database file (``storage.path``) holds every campaign, in WAL mode so a reader
(``callagent health``, a test, a second connection) never blocks the campaign. Each
method that changes a contact commits before it returns, so what the caller logs
next is already on disk; with ``synchronous=FULL`` (the default) it survives a power
cut too, not only a killed process.

Opening a campaign applies the resume rules in one transaction::

    in_progress, stage dial    ─▶ pending       nothing irreversible happened
    in_progress, stage record  ─▶ interrupted   the person may have been dialled
    interrupted                ─▶ pending       only with redial_interrupted
    deferred                   ─▶ pending       the service may be back

Completed, failed and invalid contacts are never handed out again.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import sqlite3
import sys
import threading
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, TypedDict

from callagent.contacts import Contact, InvalidRow
from callagent.errors import InputError, StorageError
from callagent.journal.base import ContactState, Job, Stage

if sys.platform != "win32":
    import fcntl

_SCHEMA_VERSION = 1
#: Rows per executemany while loading a file: large enough to amortise the call,
#: small enough that a batch of a million-row file stays a few megabytes.
_BATCH = 5000
#: Call ids reserved per commit; a restart skips the unused rest of a block.
_CALL_ID_BLOCK = 100
_BUSY_TIMEOUT_S = 10.0
_STATES = ", ".join(f"'{state}'" for state in ContactState)

_SCHEMA = (
    """
CREATE TABLE IF NOT EXISTS campaign (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    -- Never reset, not even by --fresh: call ids stay unique in logs that span runs.
    next_call INTEGER NOT NULL DEFAULT 1,
    -- SHA-256 of the contacts file; NULL until its rows are loaded.
    digest TEXT,
    source TEXT
)
""",
    f"""
CREATE TABLE IF NOT EXISTS contact (
    id INTEGER PRIMARY KEY,
    campaign_id INTEGER NOT NULL REFERENCES campaign (id),
    line INTEGER NOT NULL,
    state TEXT NOT NULL CHECK (state IN ({_STATES})),
    phone TEXT,
    contact_id TEXT,
    name TEXT,
    timezone TEXT,
    variables TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    stage TEXT NOT NULL DEFAULT 'dial' CHECK (stage IN ('dial', 'record')),
    outcome TEXT,
    reason TEXT
)
""",
    """
CREATE INDEX IF NOT EXISTS contact_queue ON contact (campaign_id, state, id)
""",
    """
CREATE TABLE IF NOT EXISTS breaker_state (
    service TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    changed_at TEXT NOT NULL
)
""",
    """
CREATE TABLE IF NOT EXISTS health_check (
    service TEXT PRIMARY KEY,
    healthy INTEGER NOT NULL,
    latency_ms REAL,
    error TEXT,
    checked_at TEXT NOT NULL
)
""",
)

_INSERT = """
INSERT INTO contact (campaign_id, line, state, phone, contact_id, name, timezone,
                     variables, reason)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
"""
_SELECT_PENDING = """
SELECT id, line, phone, contact_id, name, timezone, variables, attempts, stage, outcome
FROM contact WHERE campaign_id = ? AND state = 'pending' ORDER BY id LIMIT ?
"""

# The resume rules, in the order they apply.
_REQUEUE = """
UPDATE contact SET state = 'pending'
WHERE campaign_id = ? AND state = 'in_progress' AND stage = 'dial'
"""
_INTERRUPT = """
UPDATE contact SET state = 'interrupted', reason = 'the run stopped after the dial'
WHERE campaign_id = ? AND state = 'in_progress' AND stage = 'record'
"""
_REDIAL = """
UPDATE contact SET state = 'pending', stage = 'dial', outcome = NULL, reason = NULL
WHERE campaign_id = ? AND state = 'interrupted'
"""
_RELEASE = """
UPDATE contact SET state = 'pending' WHERE campaign_id = ? AND state = 'deferred'
"""

Synchronous = Literal["FULL", "NORMAL"]


class _Database:
    """One connection, shared by worker threads behind a lock."""

    def __init__(self, path: Path, connection: sqlite3.Connection) -> None:
        self.path = path
        self._connection = connection
        self.lock = threading.RLock()

    @classmethod
    def open(cls, path: Path, *, synchronous: Synchronous) -> _Database:
        """Open or create the database; InputError naming it if it is not usable."""
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            connection = sqlite3.connect(
                path,
                timeout=_BUSY_TIMEOUT_S,
                isolation_level=None,
                check_same_thread=False,
            )
        except (OSError, sqlite3.Error) as exc:
            raise InputError(f"{path}: cannot open the state database ({exc})") from exc

        db = cls(path, connection)
        try:
            db._prepare(synchronous)
        except (sqlite3.Error, StorageError) as exc:
            connection.close()
            raise InputError(f"{path}: cannot use the state database ({exc})") from exc
        except BaseException:
            connection.close()
            raise
        return db

    def _prepare(self, synchronous: Synchronous) -> None:
        connection = self._connection
        connection.execute("PRAGMA journal_mode = WAL")
        connection.execute(f"PRAGMA synchronous = {synchronous}")
        (version,) = connection.execute("PRAGMA user_version").fetchone()
        if version > _SCHEMA_VERSION:
            raise InputError(
                f"{self.path}: written by a newer callagent (schema {version})"
            )
        with self.transaction() as tx:
            for statement in _SCHEMA:
                tx.execute(statement)
            # Always written, so a read-only file fails here, before any call.
            tx.execute(f"PRAGMA user_version = {_SCHEMA_VERSION}")

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """Commit what the block did, or roll all of it back.

        sqlite3's errors become StorageError naming the file, so a full disk mid-run
        is one clear line rather than a traceback.
        """
        connection = self._connection
        with self.lock:
            try:
                connection.execute("BEGIN IMMEDIATE")
                try:
                    yield connection
                    connection.execute("COMMIT")
                except BaseException:
                    # A failed COMMIT (disk full) leaves the transaction open; the
                    # next BEGIN would fail on it.
                    if connection.in_transaction:
                        connection.execute("ROLLBACK")
                    raise
            except sqlite3.Error as exc:
                raise StorageError(
                    f"{self.path}: state database error ({exc})"
                ) from exc

    def read(self, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        with self.lock:
            try:
                return self._connection.execute(sql, params).fetchall()
            except sqlite3.Error as exc:
                raise StorageError(
                    f"{self.path}: state database error ({exc})"
                ) from exc

    def close(self) -> None:
        with self.lock:
            self._connection.close()


class _CampaignLock:
    """An exclusive lock on one campaign for as long as its journal is open.

    Two processes resuming the same campaign would each take the other's calls in
    progress for crashed ones and dial those people again. The kernel drops a
    ``flock`` when its holder dies, even by SIGKILL, so a crash never leaves the
    campaign locked.
    """

    def __init__(self, fd: int | None) -> None:
        self._fd = fd

    @classmethod
    def acquire(cls, db_path: Path, campaign: str) -> _CampaignLock:
        if sys.platform == "win32":
            return cls(None)
        tag = hashlib.sha256(campaign.encode()).hexdigest()[:16]
        path = db_path.with_name(f"{db_path.name}.{tag}.lock")
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise InputError(
                f"{path}: cannot create the campaign lock ({exc})"
            ) from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            raise InputError(
                f"{db_path}: campaign {campaign!r} is open in another process"
            ) from exc
        return cls(fd)

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


@dataclass(frozen=True, slots=True)
class Recovery:
    """What opening the campaign changed, for the resume message."""

    #: In progress before the dial: back in the queue.
    requeued: int = 0
    #: In progress after the dial: now interrupted, not called again.
    interrupted: int = 0
    #: Interrupted contacts sent back to the queue by ``redial_interrupted``.
    redialled: int = 0
    #: Deferred contacts back in the queue.
    released: int = 0


class BreakerRecord(TypedDict):
    state: str
    changed_at: str


class HealthRecord(TypedDict):
    healthy: bool
    latency_ms: float | None
    error: str | None
    checked_at: str


class ServiceStatusStore:
    """The last known breaker state and health-check result of each service.

    Shared by every campaign in the database: a service is down whichever list is
    being called. ``callagent health`` opens it on its own; a running campaign
    reaches it as :attr:`SqliteJournal.status`.
    """

    def __init__(self, db: _Database, *, owns_db: bool) -> None:
        self._db = db
        self._owns_db = owns_db

    @classmethod
    def open(
        cls, path: Path | str, *, synchronous: Synchronous = "FULL"
    ) -> ServiceStatusStore:
        return cls(_Database.open(Path(path), synchronous=synchronous), owns_db=True)

    def save_breaker_state(self, service: str, state: str, changed_at: str) -> None:
        with self._db.transaction() as tx:
            tx.execute(
                "INSERT OR REPLACE INTO breaker_state VALUES (?, ?, ?)",
                (service, state, changed_at),
            )

    def save_health(
        self,
        service: str,
        healthy: bool,
        latency_ms: float | None,
        error: str | None,
        checked_at: str,
    ) -> None:
        with self._db.transaction() as tx:
            tx.execute(
                "INSERT OR REPLACE INTO health_check VALUES (?, ?, ?, ?, ?)",
                (service, healthy, latency_ms, error, checked_at),
            )

    def breaker_states(self) -> dict[str, BreakerRecord]:
        rows = self._db.read("SELECT service, state, changed_at FROM breaker_state")
        return {
            service: BreakerRecord(state=state, changed_at=changed_at)
            for service, state, changed_at in rows
        }

    def health_results(self) -> dict[str, HealthRecord]:
        rows = self._db.read(
            "SELECT service, healthy, latency_ms, error, checked_at FROM health_check"
        )
        return {
            service: HealthRecord(
                healthy=bool(healthy),
                latency_ms=latency_ms,
                error=error,
                checked_at=checked_at,
            )
            for service, healthy, latency_ms, error, checked_at in rows
        }

    def close(self) -> None:
        if self._owns_db:
            self._db.close()


class SqliteJournal:
    """The durable queue and contact states of one campaign; use :meth:`open`."""

    def __init__(
        self, db: _Database, lock: _CampaignLock, campaign: str, recovery: Recovery
    ) -> None:
        self._db = db
        self._lock = lock
        self._campaign = campaign
        self.recovery = recovery
        self.status = ServiceStatusStore(db, owns_db=False)
        (self._id, self._digest), *_ = db.read(
            "SELECT id, digest FROM campaign WHERE name = ?", (campaign,)
        )
        # Handed out by next_pending and not finished yet: with several workers,
        # a contact still pending in the database must not be handed out twice.
        self._claimed: set[int] = set()
        self._next_call = self._call_limit = 0
        # counts() is polled by the live view from another thread several times a
        # second; it reads these, never the database, and never waits on a commit.
        self._counts_lock = threading.Lock()
        self._counts: Counter[ContactState] = Counter()
        self._seed_counts()

    @classmethod
    def open(
        cls,
        path: Path | str,
        campaign: str,
        *,
        fresh: bool = False,
        redial_interrupted: bool = False,
        synchronous: Synchronous = "FULL",
    ) -> SqliteJournal:
        """Open (or create) a campaign and apply the resume rules.

        ``fresh`` deletes the campaign's contacts first (its call-id counter stays).
        Raises :class:`InputError` naming the path when the database cannot be
        created or written, or when another process has the campaign open.
        """
        path = Path(path)
        with ExitStack() as cleanup:
            db = _Database.open(path, synchronous=synchronous)
            cleanup.callback(db.close)
            lock = _CampaignLock.acquire(path, campaign)
            cleanup.callback(lock.release)
            recovery = _recover(db, campaign, fresh, redial_interrupted)
            journal = cls(db, lock, campaign, recovery)
            cleanup.pop_all()
        return journal

    @property
    def campaign(self) -> str:
        return self._campaign

    @property
    def loaded(self) -> bool:
        """Whether a contacts file has been loaded into this campaign."""
        return self._digest is not None

    # Loading -------------------------------------------------------------------

    def load_contacts(
        self, rows: Iterable[Contact | InvalidRow], *, digest: str, source: str
    ) -> bool:
        """Load a contacts file once; True if loaded now, False if resuming.

        All rows go in one transaction: an error from ``rows`` (such as the
        reader's "no valid contact") leaves the campaign as it was. A campaign
        loaded from a file with another ``digest`` raises :class:`InputError`.
        """
        with self._db.lock:
            if self._digest == digest:
                return False
            if self._digest is not None:
                raise InputError(
                    f"{source}: the file changed since campaign {self._campaign!r} "
                    "was loaded; use --fresh to start it over or --campaign to "
                    "start a new one"
                )
            with self._db.transaction() as tx:
                added = self._insert(tx, rows)
                tx.execute(
                    "UPDATE campaign SET digest = ?, source = ? WHERE id = ?",
                    (digest, source, self._id),
                )
            self._digest = digest
        self._shift_many(added)
        return True

    def add_contacts(self, contacts: Iterable[Contact]) -> int:
        with self._db.transaction() as tx:
            added = self._insert(tx, contacts)
        self._shift_many(added)
        return added.total()

    def add_invalid(self, row: int, reason: str) -> None:
        with self._db.transaction() as tx:
            self._insert(tx, [InvalidRow(row, reason, "")])
        self._shift(None, ContactState.INVALID)

    def _insert(
        self, tx: sqlite3.Connection, rows: Iterable[Contact | InvalidRow]
    ) -> Counter[ContactState]:
        added: Counter[ContactState] = Counter()
        items = iter(rows)
        while batch := [self._values(item) for item in itertools.islice(items, _BATCH)]:
            tx.executemany(_INSERT, batch)
            added.update(values[2] for values in batch)
        return added

    def _values(self, item: Contact | InvalidRow) -> tuple[Any, ...]:
        if isinstance(item, InvalidRow):
            invalid = ContactState.INVALID
            return (
                self._id,
                item.row,
                invalid,
                None,
                None,
                None,
                None,
                None,
                item.reason,
            )
        variables = json.dumps(item.variables) if item.variables else None
        return (
            self._id,
            item.row,
            ContactState.PENDING,
            item.phone,
            item.contact_id,
            item.name,
            item.timezone,
            variables,
            None,
        )

    # The queue -----------------------------------------------------------------

    def next_pending(self) -> Job | None:
        with self._db.lock:
            rows = self._db.read(_SELECT_PENDING, (self._id, len(self._claimed) + 1))
            for row in rows:
                if row[0] not in self._claimed:
                    self._claimed.add(row[0])
                    return _job(row)
        return None

    def new_call_id(self) -> str:
        with self._db.lock:
            if self._next_call == self._call_limit:
                self._reserve_call_ids()
            number = self._next_call
            self._next_call += 1
        return f"CALL_{number:06d}"

    def _reserve_call_ids(self) -> None:
        with self._db.transaction() as tx:
            (limit,) = tx.execute(
                "UPDATE campaign SET next_call = next_call + ? WHERE id = ? "
                "RETURNING next_call",
                (_CALL_ID_BLOCK, self._id),
            ).fetchall()[0]
        self._next_call, self._call_limit = limit - _CALL_ID_BLOCK, limit

    def start(self, job: Job) -> None:
        self._move(job, ContactState.IN_PROGRESS, (ContactState.PENDING,), None)

    def mark_dialled(self, job: Job, outcome: str) -> None:
        with self._db.transaction() as tx:
            changed = tx.execute(
                "UPDATE contact SET stage = ?, outcome = ? "
                "WHERE id = ? AND campaign_id = ? AND state = 'in_progress'",
                (Stage.RECORD, outcome, job.key, self._id),
            ).rowcount
            if changed != 1:
                raise ValueError(f"contact {job.key} is not in progress")
        job.stage = Stage.RECORD
        job.outcome = outcome

    def finish(
        self, job: Job, state: ContactState, *, reason: str | None = None
    ) -> None:
        if state in (ContactState.IN_PROGRESS, ContactState.INVALID):
            raise ValueError(f"finish() cannot move a contact to {state}")
        active = (ContactState.PENDING, ContactState.IN_PROGRESS)
        self._move(job, state, active, reason)
        with self._db.lock:
            self._claimed.discard(job.key)

    def _move(
        self,
        job: Job,
        new: ContactState,
        allowed: tuple[ContactState, ...],
        reason: str | None,
    ) -> None:
        with self._db.transaction() as tx:
            found = tx.execute(
                "SELECT state FROM contact WHERE id = ? AND campaign_id = ?",
                (job.key, self._id),
            ).fetchone()
            if found is None:
                raise ValueError(f"no contact {job.key} in {self._campaign!r}")
            old = ContactState(found[0])
            if old not in allowed:
                raise ValueError(f"contact {job.key} is {old}, cannot become {new}")
            tx.execute(
                "UPDATE contact SET state = ?, attempts = ?, stage = ?, outcome = ?, "
                "reason = ? WHERE id = ?",
                (new, job.attempts, job.stage, job.outcome, reason, job.key),
            )
        self._shift(old, new)

    def release_deferred(self) -> int:
        with self._db.transaction() as tx:
            released = tx.execute(_RELEASE, (self._id,)).rowcount
        self._shift(ContactState.DEFERRED, ContactState.PENDING, released)
        return released

    # Reading -------------------------------------------------------------------

    def deferred_count(self) -> int:
        with self._counts_lock:
            return self._counts[ContactState.DEFERRED]

    def counts(self) -> dict[ContactState, int]:
        with self._counts_lock:
            return {state: self._counts[state] for state in ContactState}

    def is_complete(self) -> bool:
        """Loaded, and nothing is left to call without ``redial_interrupted``."""
        waiting = (
            ContactState.PENDING,
            ContactState.IN_PROGRESS,
            ContactState.DEFERRED,
        )
        with self._counts_lock:
            left = sum(self._counts[state] for state in waiting)
        return self.loaded and left == 0

    def invalid_rows(self, limit: int | None = None) -> list[tuple[int, str]]:
        """(line, reason) of the invalid rows, in file order."""
        return self._db.read(
            "SELECT line, reason FROM contact WHERE campaign_id = ? "
            "AND state = 'invalid' ORDER BY id LIMIT ?",
            (self._id, -1 if limit is None else limit),
        )

    def close(self) -> None:
        self._db.close()
        self._lock.release()

    def __enter__(self) -> SqliteJournal:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    # Counters ------------------------------------------------------------------

    def _seed_counts(self) -> None:
        rows = self._db.read(
            "SELECT state, COUNT(*) FROM contact WHERE campaign_id = ? GROUP BY state",
            (self._id,),
        )
        with self._counts_lock:
            self._counts = Counter({ContactState(state): n for state, n in rows})

    def _shift(self, old: ContactState | None, new: ContactState, n: int = 1) -> None:
        with self._counts_lock:
            if old is not None:
                self._counts[old] -= n
            self._counts[new] += n

    def _shift_many(self, added: Counter[ContactState]) -> None:
        with self._counts_lock:
            self._counts.update(added)


def _recover(
    db: _Database, campaign: str, fresh: bool, redial_interrupted: bool
) -> Recovery:
    """Create the campaign if new, wipe it if ``fresh``, apply the resume rules."""
    with db.transaction() as tx:
        tx.execute("INSERT OR IGNORE INTO campaign (name) VALUES (?)", (campaign,))
        (campaign_id,) = tx.execute(
            "SELECT id FROM campaign WHERE name = ?", (campaign,)
        ).fetchone()
        if fresh:
            tx.execute("DELETE FROM contact WHERE campaign_id = ?", (campaign_id,))
            tx.execute(
                "UPDATE campaign SET digest = NULL, source = NULL WHERE id = ?",
                (campaign_id,),
            )

        def count(sql: str) -> int:
            return tx.execute(sql, (campaign_id,)).rowcount

        requeued = count(_REQUEUE)
        interrupted = count(_INTERRUPT)
        redialled = count(_REDIAL) if redial_interrupted else 0
        released = count(_RELEASE)
    return Recovery(requeued, interrupted, redialled, released)


def _job(row: tuple[Any, ...]) -> Job:
    key, line, phone, contact_id, name, tz, variables, attempts, stage, outcome = row
    contact = Contact(
        row=line,
        phone=phone,
        contact_id=contact_id,
        name=name,
        timezone=tz,
        variables=json.loads(variables) if variables else {},
    )
    return Job(key, contact, attempts=attempts, stage=Stage(stage), outcome=outcome)
