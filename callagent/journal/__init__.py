"""Campaign state: the call queue and each contact's state."""

from callagent.journal.base import FINAL_STATES, ContactState, Job, Journal, Stage
from callagent.journal.memory import MemoryJournal
from callagent.journal.sqlite import (
    BreakerRecord,
    HealthRecord,
    Recovery,
    ServiceStatusStore,
    SqliteJournal,
)

__all__ = [
    "FINAL_STATES",
    "BreakerRecord",
    "ContactState",
    "HealthRecord",
    "Job",
    "Journal",
    "MemoryJournal",
    "Recovery",
    "ServiceStatusStore",
    "SqliteJournal",
    "Stage",
]
