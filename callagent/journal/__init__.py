"""Campaign state: the call queue and each contact's state."""

from callagent.journal.base import FINAL_STATES, ContactState, Job, Journal, Stage
from callagent.journal.memory import MemoryJournal

__all__ = ["FINAL_STATES", "ContactState", "Job", "Journal", "MemoryJournal", "Stage"]
