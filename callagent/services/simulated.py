"""Simulated CRM, LLM and ElevenLabs: no keys, no network, driven by a fault plan.

Latency is spent on the injected clock (real time in ``run``, virtual time in
``simulate``), and each request first asks the plan whether it fails, so an outage
window, a revoked key or a flaky share of requests behaves the same way every time for
the same seed.
"""

from __future__ import annotations

import random
import threading

from callagent.clock import Clock
from callagent.contacts import Contact
from callagent.services.base import CallOutcome, CrmRecord, ServiceSet, Speech
from callagent.services.faults import FaultMode, FaultPlan, fault_error
from callagent.settings import ServiceSettings, Settings


class SimulatedService:
    """Latency and faults common to every simulated service."""

    provider = "simulated"

    def __init__(
        self,
        name: str,
        settings: ServiceSettings,
        clock: Clock,
        plan: FaultPlan,
        *,
        seed: int = 0,
    ) -> None:
        self._name = name
        self._mean_s = settings.latency_ms / 1000.0
        self._timeout_s = settings.timeout_s
        self._clock = clock
        self._plan = plan
        self._started = clock.monotonic()
        self._latency_rng = random.Random(f"{seed}:{name}:latency")
        # Worker threads share a service: counters and the generators stay
        # consistent under the lock (simulate runs one worker, so its order holds).
        self._lock = threading.Lock()
        self.requests = 0
        #: Seconds spent answering, the work a benchmark divides among workers.
        self.busy_s = 0.0

    @property
    def name(self) -> str:
        return self._name

    def _request(self, *, probe: bool = False) -> None:
        elapsed = self._clock.monotonic() - self._started
        with self._lock:
            self.requests += 1
            fault = self._plan.check(self._name, elapsed, probe=probe)
            latency = 0.0
            if fault is None and self._mean_s:
                # Uniform around the mean: real providers never answer in lockstep.
                latency = self._mean_s * (0.5 + self._latency_rng.random())
            elif fault is not None and fault.mode is FaultMode.TIMEOUT:
                latency = self._timeout_s
            self.busy_s += latency
        self._clock.sleep(latency)
        if fault is not None:
            raise fault_error(self._name, fault.mode)

    def probe(self) -> None:
        self._request(probe=True)

    def close(self) -> None:
        return None


class SimulatedCrm(SimulatedService):
    def lookup(self, contact: Contact) -> CrmRecord:
        self._request()
        properties = {"firstname": contact.name or "", "phone": contact.phone}
        return CrmRecord(crm_id=f"sim-{contact.contact_id}", properties=properties)

    def record_outcome(
        self, contact: Contact, record: CrmRecord, outcome: CallOutcome
    ) -> None:
        self._request()


class SimulatedLlm(SimulatedService):
    def write_script(self, contact: Contact, record: CrmRecord) -> str:
        self._request()
        greeting = f"Hello {contact.name}" if contact.name else "Hello"
        return f"{greeting}, this is a courtesy call about your account."


class SimulatedTts(SimulatedService):
    def synthesize(self, call_id: str, text: str) -> Speech:
        self._request()
        # About 1 kB of 128 kbit/s MP3 per spoken word.
        return Speech(bytes_=1024 * len(text.split()))


def simulated_services(
    settings: Settings, clock: Clock, plan: FaultPlan | None = None, *, seed: int = 0
) -> ServiceSet:
    """The three simulated services, all on ``clock`` and ``plan``."""
    plan = plan if plan is not None else FaultPlan([], seed=seed)
    services = settings.services
    return ServiceSet(
        crm=SimulatedCrm("crm", services["crm"], clock, plan, seed=seed),
        llm=SimulatedLlm("llm", services["llm"], clock, plan, seed=seed),
        tts=SimulatedTts("elevenlabs", services["elevenlabs"], clock, plan, seed=seed),
    )
