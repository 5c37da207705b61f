"""Benchmark of the resilience core: guard overhead and simulate throughput.

    python bench/core.py [--contacts 100000] [--calls 200000]

Prints, measured in this one run on this machine:

1. the healthy-path cost of one guarded service call (breaker check, call, success
   record) next to a plain tenacity-plus-pybreaker wrapper around the same function;
2. contacts per second and peak memory of ``callagent simulate --contacts N
   --no-live`` with full logging (system.log, sheets.csv, alerts.jsonl), run as a
   separate process in a scratch directory.
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
import timeit
from collections.abc import Callable
from pathlib import Path

import pybreaker
from tenacity import (
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential,
)

from callagent.breaker import CircuitBreaker
from callagent.clock import SystemClock
from callagent.errors import TransientError
from callagent.events import EventBus
from callagent.retry import Guard
from callagent.settings import BreakerSettings, RetrySettings


def request() -> int:
    return 1


def ns_per_call(fn: Callable[[], object], calls: int) -> float:
    """Best of five timings, in nanoseconds per call."""
    best = min(timeit.repeat(fn, number=calls, repeat=5))
    return best / calls * 1e9


def guard_overhead(calls: int) -> None:
    clock = SystemClock()
    breaker = CircuitBreaker("svc", BreakerSettings(), clock)
    guard = Guard("svc", breaker, RetrySettings(), clock, EventBus(clock, "bench"))

    baseline_breaker = pybreaker.CircuitBreaker(fail_max=4, reset_timeout=60)
    retrying = Retrying(
        stop=stop_after_attempt(4),
        wait=wait_exponential(multiplier=5, max=20),
        retry=retry_if_exception_type(TransientError),
        reraise=True,
    )

    bare = ns_per_call(request, calls)
    ours = ns_per_call(lambda: guard.call(request), calls)
    pair = ns_per_call(lambda: retrying(baseline_breaker.call, request), calls)
    print(
        "Healthy-path cost of one guarded call (best of 5 x "
        f"{calls:,} calls, bare call subtracted)"
    )
    print(f"  bare function call          {bare:8.0f} ns")
    print(f"  callagent Guard             {ours - bare:8.0f} ns")
    print(f"  tenacity + pybreaker        {pair - bare:8.0f} ns")
    print(f"  ratio Guard / pair          {(ours - bare) / (pair - bare):8.2f}")


def simulate_throughput(contacts: int) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        started = time.perf_counter()
        result = subprocess.run(
            [sys.executable, "-m", "callagent", "simulate",
             "--contacts", str(contacts), "--no-live"],
            cwd=scratch, capture_output=True, text=True, check=False,
        )  # fmt: skip
        elapsed = time.perf_counter() - started
        if result.returncode != 0:
            print(result.stdout[-2000:], result.stderr[-2000:])
            raise SystemExit(f"simulate exited {result.returncode}")
        # Rotation may have moved older lines into dated files beside it.
        lines = 0
        for path in Path(scratch, "logs").glob("system*.log"):
            with path.open(encoding="utf-8") as log:
                lines += sum(1 for _ in log)
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(f"callagent simulate --contacts {contacts:,} --no-live (full logging)")
    print(f"  wall time                   {elapsed:8.2f} s")
    print(f"  contacts per second         {contacts / elapsed:8.0f}")
    print(f"  event log lines             {lines:8,}")
    print(f"  peak memory (RSS)           {peak_mb:8.1f} MB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contacts", type=int, default=100_000)
    parser.add_argument("--calls", type=int, default=200_000)
    args = parser.parse_args()
    guard_overhead(args.calls)
    print()
    simulate_throughput(args.contacts)


if __name__ == "__main__":
    main()
