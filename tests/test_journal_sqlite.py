"""The SQLite journal: durable states, resume rules, call ids and service status."""

from __future__ import annotations

import re
import shutil
import sqlite3
import tempfile
import threading
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from callagent.contacts import Contact, InvalidRow
from callagent.errors import InputError
from callagent.journal import (
    ContactState,
    Job,
    Recovery,
    ServiceStatusStore,
    SqliteJournal,
    Stage,
)

S = ContactState


def people(n: int, *, first_line: int = 2) -> list[Contact]:
    return [
        Contact(
            row=first_line + i,
            phone=f"+1415555{1000 + i:04d}",
            contact_id=f"c{i}",
            name=f"Person {i}",
            variables={"plan": "gold"} if i % 2 else {},
        )
        for i in range(n)
    ]


def loaded(path: Path, n: int = 3, campaign: str = "spring") -> SqliteJournal:
    journal = SqliteJournal.open(path, campaign)
    journal.load_contacts(people(n), digest="digest-1", source="spring.csv")
    return journal


def db_states(path: Path, campaign: str = "spring") -> dict[int, str]:
    """Each contact's state by file line, read over a connection of its own."""
    with closing(sqlite3.connect(path)) as other:
        rows = other.execute(
            "SELECT line, state FROM contact "
            "JOIN campaign ON campaign.id = campaign_id "
            "WHERE campaign.name = ?",
            (campaign,),
        ).fetchall()
    return dict(rows)


def db_counts(path: Path, campaign: str = "spring") -> dict[ContactState, int]:
    with closing(sqlite3.connect(path)) as other:
        rows = other.execute(
            "SELECT state, COUNT(*) FROM contact "
            "JOIN campaign ON campaign.id = campaign_id "
            "WHERE campaign.name = ? GROUP BY state",
            (campaign,),
        ).fetchall()
    found = {ContactState(state): n for state, n in rows}
    return {state: found.get(state, 0) for state in ContactState}


def take(journal: SqliteJournal) -> Job:
    job = journal.next_pending()
    assert job is not None
    return job


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "state.db"


@pytest.fixture
def journal(path: Path) -> Iterator[SqliteJournal]:
    with loaded(path) as journal:
        yield journal


class TestOpen:
    def test_creates_parent_directories_in_wal_mode(self, path: Path) -> None:
        """Opening creates the directories and a database in WAL mode."""
        SqliteJournal.open(path, "spring").close()
        with closing(sqlite3.connect(path)) as other:
            assert other.execute("PRAGMA journal_mode").fetchone() == ("wal",)

    def test_unwritable_location_names_the_path(self, tmp_path: Path) -> None:
        """A state path under a regular file is an InputError naming the path."""
        (tmp_path / "file").write_text("x")
        target = tmp_path / "file" / "state.db"
        with pytest.raises(InputError, match=re.escape(str(target))):
            SqliteJournal.open(target, "spring")

    def test_directory_in_place_of_the_database(self, tmp_path: Path) -> None:
        """A directory where the database should be is an InputError."""
        with pytest.raises(InputError, match="cannot open the state database"):
            SqliteJournal.open(tmp_path, "spring")

    def test_file_that_is_not_a_database(self, path: Path) -> None:
        """A file that is not SQLite is an InputError naming it."""
        path.parent.mkdir()
        path.write_bytes(b"not a database at all" * 100)
        with pytest.raises(InputError, match=re.escape(str(path))):
            SqliteJournal.open(path, "spring")

    @pytest.mark.usefixtures("journal")
    def test_campaign_open_twice_is_refused(self, path: Path) -> None:
        """A campaign another holder has open cannot be opened again."""
        with pytest.raises(InputError, match="open in another process"):
            SqliteJournal.open(path, "spring")

    @pytest.mark.usefixtures("journal")
    def test_other_campaigns_open_alongside(self, path: Path) -> None:
        """Two campaigns in one database can be open at once."""
        SqliteJournal.open(path, "autumn").close()

    def test_closing_releases_the_campaign(self, path: Path) -> None:
        """After close the campaign can be opened again."""
        loaded(path).close()
        SqliteJournal.open(path, "spring").close()


class TestLoading:
    def test_loads_once_then_resumes(self, path: Path) -> None:
        """The same file loads on the first open and is not added again later."""
        with loaded(path) as journal:
            assert journal.loaded
        with SqliteJournal.open(path, "spring") as journal:
            again = journal.load_contacts(
                people(3), digest="digest-1", source="spring.csv"
            )
            assert again is False
            assert journal.counts()[S.PENDING] == 3

    def test_changed_file_is_refused(self, path: Path) -> None:
        """Another file for a loaded campaign is an InputError naming the file."""
        loaded(path).close()
        with (
            SqliteJournal.open(path, "spring") as journal,
            pytest.raises(InputError, match=r"spring\.csv: the file changed"),
        ):
            journal.load_contacts(people(4), digest="digest-2", source="spring.csv")

    def test_failed_load_leaves_nothing(self, path: Path) -> None:
        """An error from the rows rolls the whole load back."""

        def rows() -> Iterator[Contact | InvalidRow]:
            yield from people(3)
            raise InputError("spring.csv: no valid contact")

        with SqliteJournal.open(path, "spring") as journal:
            with pytest.raises(InputError):
                journal.load_contacts(rows(), digest="d", source="spring.csv")
            assert not journal.loaded
            assert sum(journal.counts().values()) == 0
        assert db_states(path) == {}

    def test_invalid_rows_are_kept_with_reasons(self, path: Path) -> None:
        """Invalid rows are stored with line and reason and counted after reopening."""
        rows: list[Contact | InvalidRow] = [
            *people(1),
            InvalidRow(3, "not a phone number", "x"),
        ]
        with SqliteJournal.open(path, "spring") as journal:
            journal.load_contacts(rows, digest="d", source="spring.csv")
            journal.add_invalid(9, "missing phone number")
        with SqliteJournal.open(path, "spring") as journal:
            assert journal.counts()[S.INVALID] == 2
            assert journal.invalid_rows() == [
                (3, "not a phone number"),
                (9, "missing phone number"),
            ]
            assert journal.invalid_rows(limit=1) == [(3, "not a phone number")]

    def test_large_load_is_batched_in_order(self, path: Path) -> None:
        """A load over several batches keeps every row and the file order."""
        with SqliteJournal.open(path, "spring", synchronous="NORMAL") as journal:
            journal.load_contacts(people(12_001), digest="d", source="big.csv")
            assert journal.counts()[S.PENDING] == 12_001
            assert take(journal).contact.row == 2

    def test_add_contacts_counts_what_it_added(self, path: Path) -> None:
        """add_contacts enqueues contacts as pending and returns how many."""
        with SqliteJournal.open(path, "spring") as journal:
            assert journal.add_contacts(people(2)) == 2
            assert journal.counts()[S.PENDING] == 2

    def test_counts_are_readable_during_a_load(self, path: Path) -> None:
        """counts() answers from another thread while a load holds the database."""
        answers: list[dict[ContactState, int]] = []

        def rows(journal: SqliteJournal) -> Iterator[Contact]:
            yield from people(2)
            poll = threading.Thread(target=lambda: answers.append(journal.counts()))
            poll.start()
            poll.join(timeout=10)
            assert not poll.is_alive()

        with SqliteJournal.open(path, "spring") as journal:
            journal.load_contacts(rows(journal), digest="d", source="spring.csv")
        assert answers[0][S.PENDING] == 0


class TestQueue:
    def test_contact_round_trips(self, journal: SqliteJournal) -> None:
        """A contact comes back from the queue as it went in."""
        jobs = [take(journal) for _ in range(3)]
        assert [job.contact for job in jobs] == people(3)
        assert all(job.stage is Stage.DIAL and job.attempts == 0 for job in jobs)
        assert journal.next_pending() is None

    def test_each_change_is_committed_on_return(
        self, journal: SqliteJournal, path: Path
    ) -> None:
        """Another connection sees every state change as soon as the method returns."""
        job = take(journal)
        journal.start(job)
        assert db_states(path)[2] == "in_progress"
        journal.mark_dialled(job, "voicemail")
        job.attempts += 1
        journal.finish(job, S.COMPLETED)
        assert db_states(path)[2] == "completed"
        with closing(sqlite3.connect(path)) as other:
            row = other.execute(
                "SELECT attempts, stage, outcome FROM contact WHERE line = 2"
            ).fetchone()
        assert row == (1, "record", "voicemail")

    def test_stage_and_attempts_survive_a_restart(self, path: Path) -> None:
        """A deferred contact keeps its attempts and stage into the next run."""
        with loaded(path) as journal:
            job = take(journal)
            journal.start(job)
            journal.mark_dialled(job, "answered")
            job.attempts = 2
            journal.finish(job, S.DEFERRED, reason="crm down")
        with SqliteJournal.open(path, "spring") as journal:
            again = take(journal)
            assert (again.key, again.attempts) == (job.key, 2)
            assert (again.stage, again.outcome) == (Stage.RECORD, "answered")

    def test_skipped_contact_can_be_deferred_unstarted(
        self, journal: SqliteJournal
    ) -> None:
        """A contact skipped before start can be deferred straight from pending."""
        job = take(journal)
        journal.finish(job, S.DEFERRED, reason="llm circuit not closed")
        assert journal.counts()[S.DEFERRED] == 1
        assert journal.release_deferred() == 1
        assert take(journal).key == job.key

    def test_returned_to_pending_comes_first_again(
        self, journal: SqliteJournal
    ) -> None:
        """A contact stopped before its dial goes back to the head of the queue."""
        job = take(journal)
        journal.start(job)
        journal.finish(job, S.PENDING, reason="interrupted")
        assert take(journal).key == job.key

    def test_a_finished_contact_cannot_finish_again(
        self, journal: SqliteJournal
    ) -> None:
        """Completing a contact twice is refused."""
        job = take(journal)
        journal.start(job)
        journal.finish(job, S.COMPLETED)
        with pytest.raises(ValueError, match="completed"):
            journal.finish(job, S.COMPLETED)
        assert journal.counts()[S.COMPLETED] == 1

    @pytest.mark.parametrize("state", [S.IN_PROGRESS, S.INVALID])
    def test_finish_refuses_non_final_states(
        self, journal: SqliteJournal, state: ContactState
    ) -> None:
        """finish() does not move a contact to in_progress or invalid."""
        with pytest.raises(ValueError, match="cannot move"):
            journal.finish(take(journal), state)

    def test_dial_needs_a_started_contact(self, journal: SqliteJournal) -> None:
        """mark_dialled on a contact not in progress is refused and changes nothing."""
        job = take(journal)
        with pytest.raises(ValueError, match="not in progress"):
            journal.mark_dialled(job, "answered")
        assert job.stage is Stage.DIAL

    def test_workers_never_share_a_contact(self, path: Path) -> None:
        """Threads pulling from one journal each get distinct contacts."""
        taken: list[int] = []
        lock = threading.Lock()
        with loaded(path, n=200) as journal:

            def work() -> None:
                while (job := journal.next_pending()) is not None:
                    journal.start(job)
                    journal.finish(job, S.COMPLETED)
                    with lock:
                        taken.append(job.contact.row)

            workers = [threading.Thread(target=work) for _ in range(4)]
            for worker in workers:
                worker.start()
            for worker in workers:
                worker.join(timeout=60)
            assert journal.counts()[S.COMPLETED] == 200
        assert sorted(taken) == list(range(2, 202))


class TestCallIds:
    def test_format_and_uniqueness_across_runs(self, path: Path) -> None:
        """Call ids are CALL_ and six or more digits, never repeated after reopening."""
        ids: list[str] = []
        for _ in range(3):
            with SqliteJournal.open(path, "spring") as journal:
                ids.extend(journal.new_call_id() for _ in range(150))
        assert len(set(ids)) == len(ids)
        assert all(re.fullmatch(r"CALL_\d{6,}", call_id) for call_id in ids)

    def test_fresh_does_not_reuse_call_ids(self, path: Path) -> None:
        """Starting a campaign over keeps its call ids unique in the shared log."""
        with SqliteJournal.open(path, "spring") as journal:
            first = journal.new_call_id()
        with SqliteJournal.open(path, "spring", fresh=True) as journal:
            assert journal.new_call_id() != first

    def test_campaigns_count_separately(self, path: Path) -> None:
        """Each campaign has its own call id sequence."""
        with SqliteJournal.open(path, "spring") as journal:
            journal.new_call_id()
        with SqliteJournal.open(path, "autumn") as journal:
            assert journal.new_call_id() == "CALL_000001"


class TestResume:
    def crash_mid_call(self, path: Path, *, dialled: bool) -> int:
        """Start a call and stop as a crash would, leaving it in progress."""
        with loaded(path) as journal:
            job = take(journal)
            journal.start(job)
            if dialled:
                journal.mark_dialled(job, "answered")
        return job.contact.row

    def test_undialled_call_goes_back_to_the_queue(self, path: Path) -> None:
        """In progress before the dial: pending again, first in line."""
        line = self.crash_mid_call(path, dialled=False)
        with SqliteJournal.open(path, "spring") as journal:
            assert journal.recovery == Recovery(requeued=1)
            assert take(journal).contact.row == line

    def test_dialled_call_becomes_interrupted(self, path: Path) -> None:
        """In progress after the dial: interrupted, never handed out again."""
        line = self.crash_mid_call(path, dialled=True)
        with SqliteJournal.open(path, "spring") as journal:
            assert journal.recovery == Recovery(interrupted=1)
            assert db_states(path)[line] == "interrupted"
            assert [take(journal).contact.row for _ in range(2)] == [3, 4]
            assert journal.next_pending() is None
        with SqliteJournal.open(path, "spring") as journal:
            assert journal.counts()[S.INTERRUPTED] == 1

    def test_redial_interrupted_dials_again_from_the_start(self, path: Path) -> None:
        """With redial_interrupted an interrupted contact is pending at stage DIAL."""
        line = self.crash_mid_call(path, dialled=True)
        SqliteJournal.open(path, "spring").close()
        with SqliteJournal.open(path, "spring", redial_interrupted=True) as journal:
            assert journal.recovery == Recovery(redialled=1)
            job = take(journal)
            assert (job.contact.row, job.stage, job.outcome) == (line, Stage.DIAL, None)

    def test_deferred_released_on_open(self, path: Path) -> None:
        """Deferred contacts are pending again when the campaign is reopened."""
        with loaded(path) as journal:
            job = take(journal)
            journal.finish(job, S.DEFERRED)
        with SqliteJournal.open(path, "spring") as journal:
            assert journal.recovery == Recovery(released=1)
            assert journal.deferred_count() == 0
            assert take(journal).key == job.key

    def test_completed_and_failed_never_return(self, path: Path) -> None:
        """Completed and failed contacts are not handed out after reopening."""
        with loaded(path, n=3) as journal:
            for state in (S.COMPLETED, S.FAILED):
                job = take(journal)
                journal.start(job)
                journal.finish(job, state)
        with SqliteJournal.open(path, "spring") as journal:
            assert take(journal).contact.row == 4
            assert journal.next_pending() is None

    def test_fresh_wipes_the_campaign(self, path: Path) -> None:
        """fresh forgets the contacts and the loaded file of that campaign only."""
        loaded(path).close()
        loaded(path, campaign="autumn").close()
        with SqliteJournal.open(path, "spring", fresh=True) as journal:
            assert not journal.loaded
            assert sum(journal.counts().values()) == 0
            assert journal.load_contacts(people(2), digest="other", source="new.csv")
        assert db_counts(path, "autumn")[S.PENDING] == 3

    def test_is_complete(self, path: Path) -> None:
        """Complete once loaded and nothing is pending, in progress or deferred."""
        with SqliteJournal.open(path, "spring") as journal:
            assert not journal.is_complete()
            journal.load_contacts(people(2), digest="d", source="spring.csv")
            first, second = take(journal), take(journal)
            journal.start(first)
            journal.finish(first, S.COMPLETED)
            journal.start(second)
            journal.mark_dialled(second, "answered")
            assert not journal.is_complete()
        with SqliteJournal.open(path, "spring") as journal:
            assert journal.is_complete()


class TestCounts:
    def test_counts_follow_every_change(
        self, journal: SqliteJournal, path: Path
    ) -> None:
        """counts() equals a COUNT(*) over the table after each change."""
        assert journal.counts() == db_counts(path)
        job = take(journal)
        journal.start(job)
        assert journal.counts() == db_counts(path)
        journal.finish(job, S.DEFERRED)
        assert journal.counts() == db_counts(path)
        journal.release_deferred()
        assert journal.counts() == db_counts(path)
        assert journal.counts()[S.PENDING] == 3

    def test_counts_seeded_from_the_database(self, path: Path) -> None:
        """A reopened journal starts from the stored counts."""
        with loaded(path) as journal:
            job = take(journal)
            journal.start(job)
            journal.finish(job, S.FAILED)
        with SqliteJournal.open(path, "spring") as journal:
            assert journal.counts() == db_counts(path)
            assert journal.counts()[S.FAILED] == 1


class TestServiceStatus:
    def test_breaker_states_persist(self, path: Path) -> None:
        """The last breaker state per service survives the journal."""
        with loaded(path) as journal:
            journal.status.save_breaker_state("crm", "OPEN", "2026-01-01T00:00:00Z")
            journal.status.save_breaker_state("crm", "CLOSED", "2026-01-01T00:05:00Z")
            journal.status.save_breaker_state("llm", "OPEN", "2026-01-01T00:01:00Z")
        store = ServiceStatusStore.open(path)
        try:
            assert store.breaker_states() == {
                "crm": {"state": "CLOSED", "changed_at": "2026-01-01T00:05:00Z"},
                "llm": {"state": "OPEN", "changed_at": "2026-01-01T00:01:00Z"},
            }
        finally:
            store.close()

    def test_health_results_persist(self, path: Path) -> None:
        """The last probe per service is readable while a campaign has the db open."""
        with loaded(path) as journal:
            journal.status.save_health("llm", False, None, "503", "2026-01-01T00:00Z")
            journal.status.save_health("crm", True, 12.5, None, "2026-01-01T00:00Z")
            store = ServiceStatusStore.open(path)
            try:
                assert store.health_results() == {
                    "llm": {
                        "healthy": False,
                        "latency_ms": None,
                        "error": "503",
                        "checked_at": "2026-01-01T00:00Z",
                    },
                    "crm": {
                        "healthy": True,
                        "latency_ms": 12.5,
                        "error": None,
                        "checked_at": "2026-01-01T00:00Z",
                    },
                }
            finally:
                store.close()


class JournalMachine(RuleBasedStateMachine):
    """Drives a journal at random and checks it against a model of every contact."""

    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp())
        self.path = self.dir / "state.db"
        self.journal = SqliteJournal.open(self.path, "m", synchronous="NORMAL")
        self.rows: list[Contact | InvalidRow] = []
        self.model: dict[int, ContactState] = {}
        self.stage: dict[int, Stage] = {}
        self.claimed: dict[int, Job] = {}

    @initialize(valid=st.integers(1, 6), bad_lines=st.sets(st.integers(0, 6)))
    def load(self, valid: int, bad_lines: set[int]) -> None:
        line = 2
        for i, contact in enumerate(people(valid)):
            if i in bad_lines:
                self.rows.append(InvalidRow(line, "not a phone number", "x"))
                line += 1
            self.rows.append(Contact(line, contact.phone, contact.contact_id))
            line += 1
        self.reload()

    def reload(self) -> None:
        self.journal.load_contacts(self.rows, digest="d", source="m.csv")
        for row in self.rows:
            invalid = isinstance(row, InvalidRow)
            self.model[row.row] = S.INVALID if invalid else S.PENDING
            self.stage[row.row] = Stage.DIAL

    def in_state(self, *states: ContactState) -> list[Job]:
        return [
            job
            for line, job in sorted(self.claimed.items())
            if self.model[line] in states
        ]

    @rule()
    def next_pending(self) -> None:
        job = self.journal.next_pending()
        waiting = sorted(
            line
            for line, state in self.model.items()
            if state is S.PENDING and line not in self.claimed
        )
        if not waiting:
            assert job is None
            return
        assert job is not None
        assert job.contact.row == waiting[0]
        assert job.stage is self.stage[waiting[0]]
        self.claimed[job.contact.row] = job

    @precondition(lambda self: self.in_state(S.PENDING))
    @rule(data=st.data())
    def start(self, data: st.DataObject) -> None:
        job = data.draw(st.sampled_from(self.in_state(S.PENDING)))
        self.journal.start(job)
        self.model[job.contact.row] = S.IN_PROGRESS

    @precondition(lambda self: self.in_state(S.IN_PROGRESS))
    @rule(data=st.data())
    def dial(self, data: st.DataObject) -> None:
        job = data.draw(st.sampled_from(self.in_state(S.IN_PROGRESS)))
        self.journal.mark_dialled(job, "answered")
        self.stage[job.contact.row] = Stage.RECORD

    @precondition(lambda self: self.claimed)
    @rule(
        data=st.data(),
        state=st.sampled_from(
            [S.COMPLETED, S.FAILED, S.DEFERRED, S.INTERRUPTED, S.PENDING]
        ),
    )
    def finish(self, data: st.DataObject, state: ContactState) -> None:
        job = data.draw(st.sampled_from(sorted(self.claimed.values(), key=by_row)))
        job.attempts += 1
        self.journal.finish(job, state)
        self.model[job.contact.row] = state
        del self.claimed[job.contact.row]

    @rule()
    def release_deferred(self) -> None:
        deferred = [line for line, s in self.model.items() if s is S.DEFERRED]
        assert self.journal.release_deferred() == len(deferred)
        for line in deferred:
            self.model[line] = S.PENDING

    @rule(redial=st.booleans())
    def crash_and_reopen(self, redial: bool) -> None:
        self.journal.close()
        self.claimed.clear()
        for line, state in self.model.items():
            if state is S.IN_PROGRESS:
                dialled = self.stage[line] is Stage.RECORD
                self.model[line] = S.INTERRUPTED if dialled else S.PENDING
            if self.model[line] is S.INTERRUPTED and redial:
                self.model[line] = S.PENDING
                self.stage[line] = Stage.DIAL
            if self.model[line] is S.DEFERRED:
                self.model[line] = S.PENDING
        self.journal = SqliteJournal.open(
            self.path, "m", redial_interrupted=redial, synchronous="NORMAL"
        )

    @rule()
    def start_over(self) -> None:
        self.journal.close()
        self.claimed.clear()
        self.journal = SqliteJournal.open(
            self.path, "m", fresh=True, synchronous="NORMAL"
        )
        self.reload()

    @invariant()
    def states_match_the_model_and_the_table(self) -> None:
        stored = db_states(self.path, "m")
        assert len(stored) == len(self.rows)
        assert stored == {line: str(state) for line, state in self.model.items()}
        assert self.journal.counts() == db_counts(self.path, "m")
        assert self.journal.deferred_count() == db_counts(self.path, "m")[S.DEFERRED]

    def teardown(self) -> None:
        self.journal.close()
        shutil.rmtree(self.dir)


def by_row(job: Job) -> int:
    return job.contact.row


def test_random_operations_keep_one_state_per_contact() -> None:
    """Any sequence of operations leaves each contact in one state, counts exact."""
    run_state_machine_as_test(
        JournalMachine,
        settings=settings(
            max_examples=60,
            stateful_step_count=30,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )
