"""Fault plans: which simulated service fails, how, and when, in virtual time.

A plan is data (``elevenlabs:timeout`` from 10 s for 120 s), and the errors it raises
carry what the real provider would send (status, error code, Retry-After), so the
retry engine and the breakers meet the same shapes they meet in production.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from callagent.errors import (
    AuthenticationFailed,
    InputError,
    InvalidPayload,
    NetworkError,
    QuotaExceeded,
    RateLimited,
    ServiceError,
    ServiceTimeout,
    ServiceUnavailable,
)


class FaultMode(StrEnum):
    UNAVAILABLE = "unavailable"
    TIMEOUT = "timeout"
    NETWORK = "network"
    RATE_LIMITED = "rate_limited"
    AUTH = "auth"
    QUOTA = "quota"
    INVALID_PAYLOAD = "invalid_payload"
    FLAKY = "flaky"


#: Modes that hit only a share (``error_rate``) of requests in the window.
PARTIAL_MODES = frozenset({FaultMode.INVALID_PAYLOAD, FaultMode.FLAKY})
#: Modes that do not heal by themselves: without an explicit duration they last
#: to the end of the run, as a revoked key or an empty balance would.
LASTING_MODES = frozenset({FaultMode.AUTH, FaultMode.QUOTA})
#: The Retry-After a simulated 429 carries, in seconds.
SIMULATED_RETRY_AFTER_S = 12.0


@dataclass(frozen=True, slots=True)
class Fault:
    """One service failing in one way over a window of virtual time."""

    service: str
    mode: FaultMode
    start_s: float
    duration_s: float | None
    error_rate: float = 1.0

    def active(self, elapsed: float) -> bool:
        if elapsed < self.start_s:
            return False
        return self.duration_s is None or elapsed < self.start_s + self.duration_s


def parse_fault_spec(spec: str) -> tuple[str, FaultMode]:
    """Split ``SERVICE[:MODE]`` and check the mode; InputError names what is wrong."""
    service, _, mode_text = spec.partition(":")
    service = service.strip()
    if not service:
        raise InputError(f"--fail {spec!r}: name a service, e.g. elevenlabs")
    try:
        mode = FaultMode(mode_text.strip() or FaultMode.UNAVAILABLE)
    except ValueError:
        modes = ", ".join(m.value for m in FaultMode)
        raise InputError(
            f"--fail {spec!r}: unknown mode {mode_text!r} (one of {modes})"
        ) from None
    return service, mode


class FaultPlan:
    """Every fault of a simulation, and the seeded dice that pick partial failures."""

    def __init__(self, faults: list[Fault], *, seed: int = 0) -> None:
        self._by_service: dict[str, list[Fault]] = {}
        for fault in faults:
            self._by_service.setdefault(fault.service, []).append(fault)
        # One generator per service, seeded by name, so adding a fault to one service
        # does not change which requests of another fail.
        self._seed = seed
        self._rngs: dict[str, random.Random] = {}

    @property
    def faults(self) -> list[Fault]:
        return [f for faults in self._by_service.values() for f in faults]

    def rng(self, service: str) -> random.Random:
        rng = self._rngs.get(service)
        if rng is None:
            rng = self._rngs[service] = random.Random(f"{self._seed}:{service}")
        return rng

    def check(
        self, service: str, elapsed: float, *, probe: bool = False
    ) -> Fault | None:
        """The fault that hits this request, if any.

        Probes are not subject to partial faults: a health endpoint that is up while a
        share of real requests fail reports the service healthy.
        """
        faults = self._by_service.get(service)
        if not faults:
            return None
        for fault in faults:
            if not fault.active(elapsed):
                continue
            if fault.mode in PARTIAL_MODES:
                if probe:
                    continue
                if self.rng(service).random() >= fault.error_rate:
                    continue
            return fault
        return None


_ERRORS: dict[FaultMode, Callable[[str], ServiceError]] = {
    FaultMode.UNAVAILABLE: lambda service: ServiceUnavailable(
        service, "service unavailable", status=503, code="service_unavailable"
    ),
    FaultMode.TIMEOUT: lambda service: ServiceTimeout(
        service, "read timed out", code="read_timeout"
    ),
    FaultMode.NETWORK: lambda service: NetworkError(
        service, "connection refused", code="connect_error"
    ),
    FaultMode.RATE_LIMITED: lambda service: RateLimited(
        service,
        "too many concurrent requests",
        status=429,
        code="too_many_concurrent_requests",
        retry_after=SIMULATED_RETRY_AFTER_S,
    ),
    FaultMode.AUTH: lambda service: AuthenticationFailed(
        service, "invalid API key", status=401, code="invalid_api_key"
    ),
    # ElevenLabs reports spent credits as a 401 with detail.status quota_exceeded.
    FaultMode.QUOTA: lambda service: QuotaExceeded(
        service, "quota exceeded", status=401, code="quota_exceeded"
    ),
    FaultMode.INVALID_PAYLOAD: lambda service: InvalidPayload(
        service, "request rejected as invalid", status=422, code="invalid_request"
    ),
    FaultMode.FLAKY: lambda service: ServiceUnavailable(
        service, "internal error", status=500, code="internal_error"
    ),
}


def fault_error(service: str, mode: FaultMode) -> ServiceError:
    """The error a provider in this failure mode answers with."""
    return _ERRORS[mode](service)
