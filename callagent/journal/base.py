"""The journal: the call queue and every contact's state.

The orchestrator talks to this interface only, so the in-memory queue of a simulation,
the SQLite journal of ``run`` and a shared store for several machines are
interchangeable. The rules every implementation keeps:

- each contact is in exactly one :class:`ContactState`;
- a state change is durable when the method returns, before the caller logs it;
- ``call_id`` values are unique within a campaign, across runs;
- a contact whose call got as far as dialling carries :attr:`Stage.RECORD`, so a
  later attempt only records the outcome and never dials again.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from callagent.contacts import Contact


class ContactState(StrEnum):
    PENDING = "pending"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    FAILED = "failed"
    DEFERRED = "deferred"
    INVALID = "invalid"
    INTERRUPTED = "interrupted"


#: The states a report counts; pending and in_progress are not final.
FINAL_STATES = (
    ContactState.COMPLETED,
    ContactState.FAILED,
    ContactState.DEFERRED,
    ContactState.INVALID,
    ContactState.INTERRUPTED,
)


class Stage(StrEnum):
    """How far a contact's call has got."""

    #: Nothing irreversible yet: the whole call may run (again).
    DIAL = "dial"
    #: The contact was dialled; only recording the outcome in the CRM remains.
    RECORD = "record"


@dataclass(slots=True)
class Job:
    """A contact taken from the queue, with what the journal knows of it."""

    key: int
    contact: Contact
    attempts: int = 0
    stage: Stage = Stage.DIAL
    #: The disposition of a call that was dialled but not yet recorded.
    outcome: str | None = None


class Journal(Protocol):
    """Queue and state store of one campaign."""

    @property
    def campaign(self) -> str: ...

    def add_contacts(self, contacts: Iterable[Contact]) -> int:
        """Enqueue contacts as pending, in order; returns how many were added."""

    def add_invalid(self, row: int, reason: str) -> None:
        """Record a row that could not become a contact."""

    def next_pending(self) -> Job | None:
        """The next pending contact in file order, or None."""

    def new_call_id(self) -> str:
        """A call id never handed out before in this campaign."""

    def start(self, job: Job) -> None:
        """Mark the contact in progress (durably) before any request is sent."""

    def mark_dialled(self, job: Job, outcome: str) -> None:
        """Record that the contact was dialled: it must never be dialled again."""

    def finish(
        self, job: Job, state: ContactState, *, reason: str | None = None
    ) -> None:
        """Move the contact to a final (or deferred) state, with its attempts."""

    def release_deferred(self) -> int:
        """Deferred contacts become pending again; returns how many."""

    def deferred_count(self) -> int: ...

    def counts(self) -> dict[ContactState, int]:
        """How many contacts are in each state."""

    def close(self) -> None: ...
