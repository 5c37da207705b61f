"""What the orchestrator needs of each service, simulated or real.

Every method either returns or raises a :class:`~callagent.errors.ServiceError`
subclass; adapters translate transport errors at their boundary, so the retry engine
and the breakers never see a foreign exception.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from callagent.contacts import Contact


@dataclass(frozen=True, slots=True)
class CrmRecord:
    """What the CRM knows of a contact before the call."""

    crm_id: str | None
    properties: dict[str, str]


@dataclass(frozen=True, slots=True)
class Speech:
    """Synthesised audio for one call."""

    bytes_: int
    path: str | None = None


@dataclass(frozen=True, slots=True)
class CallOutcome:
    """What happened on the call, recorded back to the CRM."""

    call_id: str
    disposition: str
    summary: str


class Service(Protocol):
    """Common to all services: a name, a provider and a cheap health probe."""

    @property
    def name(self) -> str: ...

    @property
    def provider(self) -> str: ...

    def probe(self) -> None:
        """Return if the service is healthy, raise a ServiceError if not."""

    def close(self) -> None:
        """Release connections."""


class CrmService(Service, Protocol):
    def lookup(self, contact: Contact) -> CrmRecord: ...

    def record_outcome(
        self, contact: Contact, record: CrmRecord, outcome: CallOutcome
    ) -> None: ...


class LlmService(Service, Protocol):
    def write_script(self, contact: Contact, record: CrmRecord) -> str: ...


class TtsService(Service, Protocol):
    def synthesize(self, call_id: str, text: str) -> Speech: ...


@dataclass(frozen=True, slots=True)
class ServiceSet:
    """The pipeline's services, one per role."""

    crm: CrmService
    llm: LlmService
    tts: TtsService

    def all(self) -> tuple[Service, ...]:
        return (self.crm, self.llm, self.tts)

    def close(self) -> None:
        for service in self.all():
            service.close()
