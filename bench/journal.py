"""Benchmark of the SQLite journal under ``callagent run`` on a large contacts file.

    python bench/journal.py [--rows 1000000] [--synchronous FULL|NORMAL]
                            [--direct 20000] [--dir PATH]

Prints, measured in this one run on this machine:

1. ``callagent run`` as a child process on a generated file of ``--rows`` valid
   contacts, with simulated services that answer at once (``latency_ms: 0``) and
   ``storage.synchronous`` as given (default: the setting's own default, FULL): the
   time to read and journal the file, the cost per contact of the rest of the run
   (journal, guards, events, both logs), and the child's peak resident memory;
2. the journal alone, in this process: the operations one call makes on it (take
   the next contact, a call id, in progress, dialled, completed) timed over
   ``--direct`` contacts, once per ``synchronous`` mode.

The load time and the per-contact cost come from the run's own records: the JSON
report's ``started_at`` is taken before the file is read, the ``campaign_started``
event once it is journalled, and ``finished_at`` after the last call.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

from callagent.contacts import read_contacts
from callagent.journal import ContactState, SqliteJournal
from callagent.journal.sqlite import Synchronous

INSTANT = """\
services:
  crm: {latency_ms: 0}
  llm: {latency_ms: 0}
  elevenlabs: {latency_ms: 0}
"""
#: New York numbers: 800 exchanges of 10,000 lines each, all valid E.164.
AREAS = (212, 646, 718, 917)
PER_AREA = 800 * 10_000


def phone(index: int) -> str:
    area = AREAS[index // PER_AREA]
    exchange, line = divmod(index % PER_AREA, 10_000)
    return f"+1 {area} {200 + exchange} {line:04d}"


def write_contacts(path: Path, rows: int) -> None:
    if rows > len(AREAS) * PER_AREA:
        raise SystemExit(f"--rows: at most {len(AREAS) * PER_AREA}")
    with path.open("w", encoding="utf-8", newline="") as out:
        out.write("contact_id,name,phone,plan\n")
        for index in range(rows):
            out.write(f"C{index},Person {index},{phone(index)},gold\n")


def parse_time(stamp: str) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def campaign_started_at(log_dir: Path) -> float:
    """When the run finished journalling the file, from its first event."""
    # The log may have rotated; the oldest file holds the run's first lines.
    for log in sorted(log_dir.glob("system*.log"), key=lambda p: p.stat().st_mtime):
        with log.open(encoding="utf-8") as lines:
            for line in lines:
                event = json.loads(line)
                if event["event"] == "campaign_started":
                    return parse_time(event["timestamp"])
    raise SystemExit("no campaign_started event in the log")


def startup_s() -> float:
    """Interpreter start and imports: what the child spends before any work."""
    started = time.perf_counter()
    version = [sys.executable, "-m", "callagent", "--version"]
    subprocess.run(version, check=True, capture_output=True)
    return time.perf_counter() - started


def bench_run(scratch: Path, rows: int, synchronous: Synchronous | None) -> None:
    contacts = scratch / "contacts.csv"
    started = time.perf_counter()
    write_contacts(contacts, rows)
    print(
        f"generated {rows:,} rows ({contacts.stat().st_size / 1e6:.1f} MB) "
        f"in {time.perf_counter() - started:.1f} s"
    )
    settings = INSTANT
    if synchronous is not None:
        settings += f"storage: {{synchronous: {synchronous}}}\n"
    (scratch / "settings.yaml").write_text(settings, encoding="utf-8")
    mode = synchronous or "FULL, the default"
    print(f"storage.synchronous: {mode}")
    command = [
        sys.executable, "-m", "callagent", "run", "contacts.csv",
        "--settings", "settings.yaml", "--no-live", "--json-report", "report.json",
    ]  # fmt: skip
    print("child:", " ".join(command[2:]), f"(in {scratch})")

    started = time.perf_counter()
    with (scratch / "run.out").open("w", encoding="utf-8") as out:
        code = subprocess.run(
            command, cwd=scratch, stdout=out, stderr=subprocess.STDOUT, check=False
        ).returncode
    wall = time.perf_counter() - started
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    if code != 0:
        tail = (scratch / "run.out").read_text("utf-8")[-2000:]
        raise SystemExit(f"callagent run exited {code}:\n{tail}")

    report = json.loads((scratch / "report.json").read_text("utf-8"))
    began = parse_time(report["started_at"])
    loaded = campaign_started_at(scratch / "logs")
    finished = parse_time(report["finished_at"])
    completed = report["contacts"]["completed"]
    db = scratch / ".callagent" / "state.db"
    print(
        f"exit code {code}; completed {completed:,} of {report['contacts']['total']:,}"
    )
    print(f"wall time of the child       {wall:9.1f} s")
    print(f"  start-up (imports)         {startup_s():9.2f} s")
    print(f"  load: read + journal file  {loaded - began:9.1f} s")
    print(f"  calls                      {finished - loaded:9.1f} s")
    per_contact_us = (finished - loaded) / max(completed, 1) * 1e6
    print(
        f"run cost per contact         {per_contact_us:9.0f} us "
        "(journal, guards, events, logs)"
    )
    print(f"peak RSS of the child        {peak_mb:9.1f} MB (aim: < 200 MB)")
    print(f"state database               {db.stat().st_size / 1e6:9.1f} MB")


def bench_direct(scratch: Path, rows: int, synchronous: Synchronous) -> float:
    """Microseconds of journal work per contact, without services or logs."""
    contacts = scratch / f"direct-{synchronous}.csv"
    write_contacts(contacts, rows)
    reader = read_contacts(contacts, default_region="US")
    db = scratch / f"direct-{synchronous}.db"
    with SqliteJournal.open(db, "direct", synchronous=synchronous) as journal:
        journal.load_contacts(reader, digest=reader.digest, source=str(contacts))
        started = time.perf_counter()
        done = 0
        while (job := journal.next_pending()) is not None:
            journal.new_call_id()
            journal.start(job)
            journal.mark_dialled(job, "answered")
            job.attempts += 1
            journal.finish(job, ContactState.COMPLETED)
            done += 1
        elapsed = time.perf_counter() - started
    return elapsed / done * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument(
        "--synchronous",
        choices=("FULL", "NORMAL"),
        default=None,
        help="storage.synchronous for the run (default: the setting's default)",
    )
    parser.add_argument(
        "--direct", type=int, default=20_000, help="contacts timed in process"
    )
    parser.add_argument(
        "--dir", type=Path, default=None, help="work here, not in a temporary dir"
    )
    options = parser.parse_args()

    with tempfile.TemporaryDirectory(dir=options.dir) as scratch:
        print(f"== callagent run on {options.rows:,} contacts, instant services")
        bench_run(Path(scratch), options.rows, options.synchronous)
        print(f"== journal alone, {options.direct:,} contacts, in process")
        for mode in ("FULL", "NORMAL"):
            cost = bench_direct(Path(scratch), options.direct, mode)
            print(f"synchronous={mode:<6} {cost:9.0f} us per contact")


if __name__ == "__main__":
    main()
