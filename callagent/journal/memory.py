"""An in-memory journal: the call queue of a simulation, gone when the process ends."""

from __future__ import annotations

import itertools
from collections import Counter, deque
from collections.abc import Iterable

from callagent.contacts import Contact
from callagent.journal.base import ContactState, Job, Stage


class MemoryJournal:
    """Keeps the whole queue in memory; states are exact, nothing survives a crash."""

    def __init__(self, campaign: str) -> None:
        self._campaign = campaign
        self._pending: deque[Job] = deque()
        self._deferred: list[Job] = []
        self._states: dict[int, ContactState] = {}
        self._counts: Counter[ContactState] = Counter()
        self._keys = itertools.count(1)
        self._call_ids = itertools.count(1)

    @property
    def campaign(self) -> str:
        return self._campaign

    def add_contacts(self, contacts: Iterable[Contact]) -> int:
        added = 0
        for contact in contacts:
            job = Job(key=next(self._keys), contact=contact)
            self._pending.append(job)
            self._set(job.key, ContactState.PENDING)
            added += 1
        return added

    def add_invalid(self, row: int, reason: str) -> None:
        self._set(next(self._keys), ContactState.INVALID)

    def next_pending(self) -> Job | None:
        return self._pending.popleft() if self._pending else None

    def new_call_id(self) -> str:
        return f"CALL_{next(self._call_ids):06d}"

    def start(self, job: Job) -> None:
        self._set(job.key, ContactState.IN_PROGRESS)

    def mark_dialled(self, job: Job, outcome: str) -> None:
        job.stage = Stage.RECORD
        job.outcome = outcome

    def finish(
        self, job: Job, state: ContactState, *, reason: str | None = None
    ) -> None:
        self._set(job.key, state)
        if state is ContactState.DEFERRED:
            self._deferred.append(job)

    def release_deferred(self) -> int:
        released = self._deferred
        self._deferred = []
        for job in released:
            self._set(job.key, ContactState.PENDING)
        self._pending.extend(released)
        return len(released)

    def deferred_count(self) -> int:
        return len(self._deferred)

    def counts(self) -> dict[ContactState, int]:
        return {state: self._counts[state] for state in ContactState}

    def close(self) -> None:
        return None

    def _set(self, key: int, state: ContactState) -> None:
        old = self._states.get(key)
        if old is not None:
            self._counts[old] -= 1
        self._states[key] = state
        self._counts[state] += 1
