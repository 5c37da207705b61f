"""``callagent simulate``: a whole campaign against simulated services, in virtual time.

The fault plan comes from the command line; the services, breakers, retries, alerts
and logs are the real ones, so what a simulation shows is what a campaign does.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from callagent.contacts import Contact
from callagent.errors import InputError
from callagent.services.faults import LASTING_MODES, Fault, FaultPlan, parse_fault_spec
from callagent.settings import SERVICE_NAMES

#: Defaults long enough to show the whole 5/10/20 s backoff, the breaker opening,
#: probes failing, then a recovery and the deferred calls completing.
DEFAULT_CONTACTS = 30
DEFAULT_OUTAGE_START_S = 10.0
DEFAULT_OUTAGE_S = 120.0
DEFAULT_ERROR_RATE = 0.2
#: Virtual seconds per real second for the live view when --speed is not given.
DEFAULT_LIVE_SPEED = 20.0

_FIRST_NAMES = (
    "Ava", "Ben", "Chloe", "Diego", "Emma", "Farah", "Gabriel", "Hana", "Ivan",
    "Julia", "Kofi", "Lena", "Mateo", "Nora", "Omar", "Priya", "Quinn", "Rosa",
    "Sven", "Tara",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class FaultOptions:
    """The fault-related options of ``simulate``, as given."""

    fail: tuple[str, ...]
    outage_start_s: float
    outage_s: float | None
    error_rate: float


def build_fault_plan(options: FaultOptions, *, seed: int) -> FaultPlan:
    """Turn ``--fail`` and its timing options into a plan; InputError if wrong."""
    if options.outage_start_s < 0:
        raise InputError("--outage-start: must be >= 0")
    if options.outage_s is not None and options.outage_s <= 0:
        raise InputError("--outage: must be > 0")
    if not 0 < options.error_rate <= 1:
        raise InputError("--error-rate: must be > 0 and <= 1")
    faults = []
    for spec in options.fail:
        service, mode = parse_fault_spec(spec)
        if service not in SERVICE_NAMES:
            known = ", ".join(SERVICE_NAMES)
            raise InputError(f"--fail {spec!r}: unknown service (known: {known})")
        duration = options.outage_s
        if duration is None and mode not in LASTING_MODES:
            duration = DEFAULT_OUTAGE_S
        faults.append(
            Fault(service, mode, options.outage_start_s, duration, options.error_rate)
        )
    return FaultPlan(faults, seed=seed)


def synthetic_contacts(count: int) -> Iterator[Contact]:
    """``count`` made-up contacts with well-formed, distinct E.164 numbers."""
    for index in range(count):
        # NANP-shaped numbers: distinct for the first eight billion contacts.
        area = 201 + (index // 10_000_000) % 799
        number = f"+1{area}{index % 10_000_000:07d}"
        name = _FIRST_NAMES[index % len(_FIRST_NAMES)]
        yield Contact(
            row=index + 2,
            phone=number,
            contact_id=f"SIM{index + 1:07d}",
            name=name,
            variables={"plan": "premium" if index % 3 == 0 else "standard"},
        )
