"""Campaign benchmark: concurrency efficiency, outage cost, and the core figures.

    python bench/campaign.py [--contacts 2000] [--workers 1 8 32] [--skip-core]

Prints, measured in this one run on this machine:

1. campaign efficiency: contacts through simulated services whose every step takes
   20 to 80 ms of real time, with per-service concurrency limits, for each worker
   count, as the ratio of the ideal time to the measured one. The ideal is the work
   divided by the concurrency that can carry it: the busiest service's work over its
   limit (or the worker count, if lower), and never less than all the work over the
   worker count;
2. outage cost, on the virtual clock: requests sent to a service during a timed
   outage against the floor of failure threshold plus one probe per recovery
   timeout, and the delay from its recovery to the first completed call against
   the health-check interval;
3. the healthy-path guard overhead and ``simulate`` throughput (bench/core.py).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from loguru import logger

sys.path.insert(0, str(Path(__file__).resolve().parent))

import core

from callagent.campaign import Campaign
from callagent.clock import SystemClock, VirtualClock
from callagent.events import Event
from callagent.journal import MemoryJournal, SqliteJournal
from callagent.services.faults import Fault, FaultMode, FaultPlan
from callagent.services.simulated import SimulatedService, simulated_services
from callagent.settings import SERVICE_NAMES, parse_settings
from callagent.simulation import synthetic_contacts

#: Mean step latency; simulated services answer in 0.5x to 1.5x the mean.
STEP_MS = 50
LIMITS = {"crm": 24, "llm": 16, "elevenlabs": 10}


@contextmanager
def scratch_dir() -> Iterator[Path]:
    """Run inside a temporary directory, so logs and journals go there."""
    previous = Path.cwd()
    with tempfile.TemporaryDirectory() as scratch:
        os.chdir(scratch)
        try:
            yield Path(scratch)
        finally:
            os.chdir(previous)


def efficiency(contacts: int, workers: int) -> None:
    services_settings = {
        name: {"latency_ms": STEP_MS, "max_concurrency": LIMITS[name]}
        for name in SERVICE_NAMES
    }
    settings = parse_settings(
        {"campaign": {"workers": workers}, "services": services_settings}
    )
    clock = SystemClock()
    with scratch_dir():
        journal = SqliteJournal.open(settings.storage.path, "bench")
        journal.add_contacts(synthetic_contacts(contacts))
        services = simulated_services(settings, clock)
        campaign = Campaign(
            command="run",
            settings=settings,
            clock=clock,
            journal=journal,
            services=services,
        )
        started = time.perf_counter()
        report = campaign.run()
        measured = time.perf_counter() - started
        campaign.close()
        journal.close()
    busy = {s.name: s.busy_s for s in services.all() if isinstance(s, SimulatedService)}
    total = sum(busy.values())
    ideal = max(
        total / workers,
        *(work / min(LIMITS[name], workers) for name, work in busy.items()),
    )
    done = report.contacts["completed"]
    print(
        f"  workers {workers:3d}  completed {done:5d}  measured {measured:7.2f} s  "
        f"ideal {ideal:7.2f} s  efficiency {ideal / measured:5.2f}"
    )


def outage_cost(outage_s: float) -> None:
    # Waits as long as the outage lasts: the cost of giving up is not measured here.
    settings = parse_settings({"campaign": {"max_wait_s": outage_s + 600}})
    breaker = settings.circuit_breaker
    clock = VirtualClock()
    start_s = 10.0
    plan = FaultPlan([Fault("elevenlabs", FaultMode.UNAVAILABLE, start_s, outage_s)])
    events: list[Event] = []
    with scratch_dir():
        journal = MemoryJournal("outage")
        journal.add_contacts(synthetic_contacts(400))
        services = simulated_services(settings, clock, plan)
        campaign = Campaign(
            command="simulate",
            settings=settings,
            clock=clock,
            journal=journal,
            services=services,
        )
        campaign.events.subscribe(events.append)
        campaign.run()
        campaign.close()

    epoch = events[0].timestamp

    def at(event: Event) -> float:
        return (event.timestamp - epoch).total_seconds()

    end_s = start_s + outage_s
    sent = [
        e
        for e in events
        if e.service == "elevenlabs"
        and e.event in {"service_error", "health_check_failed", "health_check_passed"}
        and start_s <= at(e) < end_s
    ]
    floor = breaker.failure_threshold + int(outage_s // breaker.recovery_timeout_s)
    first_done = min(
        at(e) for e in events if e.event == "call_completed" and at(e) >= end_s
    )
    print(
        f"  outage {outage_s:6.0f} s: requests to the service {len(sent):3d}, "
        f"floor {floor:3d}; recovery to first completed call "
        f"{first_done - end_s:5.1f} s (health-check interval "
        f"{settings.health_check.interval_s:g} s, recovery timeout "
        f"{breaker.recovery_timeout_s:g} s)"
    )


def main() -> None:
    # In-process campaigns log through loguru; its default stderr handler would echo
    # every event.
    logger.remove()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contacts", type=int, default=2000)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--skip-core", action="store_true")
    args = parser.parse_args()

    limits = ", ".join(f"{name} {limit}" for name, limit in LIMITS.items())
    print(
        f"1. Campaign efficiency: {args.contacts} contacts, 4 steps of "
        f"{STEP_MS // 2}-{STEP_MS * 3 // 2} ms each, limits {limits}"
    )
    for workers in args.workers:
        efficiency(args.contacts, workers)
    print()
    print("2. Outage cost (virtual clock, default settings, ElevenLabs 503 from 10 s)")
    for outage_s in (120.0, 600.0, 3600.0):
        outage_cost(outage_s)
    if not args.skip_core:
        print()
        print("3. Core figures")
        core.guard_overhead(200_000)
        core.simulate_throughput(100_000)


if __name__ == "__main__":
    main()
