"""``kill -9`` at random points of a real ``callagent run``: nothing lost or doubled.

A contact's state is committed before its ``call_completed`` line is written, so a
kill between the two leaves a completed contact without that line; each kill can
do that to at most one call per worker. Every other line of the checks is exact.
"""

from __future__ import annotations

import json
import random
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from callagent.contacts import mask_phone

ROWS = 300
KILLS = 4
SEED = 20240611
LOG = Path("logs/system.log")
DB = Path(".callagent/state.db")
CAMPAIGN = "crowd"

#: Calls that take a few real milliseconds, so a kill can land inside one.
SETTINGS = """\
services:
  crm: {latency_ms: 1}
  llm: {latency_ms: 1}
  elevenlabs: {latency_ms: 1}
"""

#: Lines of the generated file that cannot be called: not a number, and two
#: duplicates of the number on line 2.
BAD_LINES = {51: "abc", 152: "+1 212 300 0000", 253: "(212) 300-0000"}


def write_contacts(path: Path) -> dict[str, int]:
    """A contacts file of ROWS valid numbers and the bad lines; mask -> line."""
    lines = ["contact_id,name,phone,plan"]
    masks: dict[str, int] = {}
    index = 0
    while len(lines) < ROWS + len(BAD_LINES) + 1:
        line = len(lines) + 1
        if line in BAD_LINES:
            phone = BAD_LINES[line]
        else:
            # A distinct last four digits per number keeps the masked form distinct.
            phone = f"+1 212 {300 + index % 600} {index:04d}"
            masks[mask_phone(f"+1212{300 + index % 600}{index:04d}")] = line
            index += 1
        lines.append(f"C{line},Person {line},{phone},gold")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return masks


def command(*args: str) -> list[str]:
    return [
        sys.executable, "-m", "callagent", "run", "crowd.csv",
        "--settings", "settings.yaml", "--no-live", *args,
    ]  # fmt: skip


def completions() -> int:
    if not LOG.exists():
        return 0
    return LOG.read_text("utf-8").count('"event": "call_completed"')


def run_and_kill(args: list[str], after: int, extra_s: float, out: Path) -> int:
    """Start a run; SIGKILL it ``after`` completions plus ``extra_s`` later.

    Returns the exit status: -9 when killed, the run's own code if it ended first.
    """
    target = completions() + after
    with out.open("w", encoding="utf-8") as sink:
        proc = subprocess.Popen(args, stdout=sink, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 20
            while completions() < target and time.monotonic() < deadline:
                try:
                    return proc.wait(timeout=0.01)
                except subprocess.TimeoutExpired:
                    continue
            assert completions() >= target, "the run made no progress"
            try:
                return proc.wait(timeout=extra_s)
            except subprocess.TimeoutExpired:
                proc.kill()
                return proc.wait(timeout=10)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)


def journal_states() -> dict[int, tuple[str, str | None]]:
    with closing(sqlite3.connect(DB)) as connection:
        rows = connection.execute(
            "SELECT c.line, c.state, c.phone FROM contact c "
            "JOIN campaign k ON k.id = c.campaign_id WHERE k.name = ?",
            (CAMPAIGN,),
        ).fetchall()
    return {line: (state, phone) for line, state, phone in rows}


def log_events() -> list[dict[str, Any]]:
    return [json.loads(line) for line in LOG.read_text("utf-8").splitlines()]


def check_books(
    masks: dict[str, int], report_path: Path, workers: int, kills: int
) -> Counter[str]:
    """Check the journal, the log and the report agree; return the state counts."""
    states = journal_states()
    by_state = Counter(state for state, _ in states.values())
    events = log_events()

    # Every row of the file is in the journal, once, in a state it may end in.
    assert sorted(states) == sorted([*masks.values(), *BAD_LINES])
    assert {line for line, (state, _) in states.items() if state == "invalid"} == set(
        BAD_LINES
    )
    assert set(by_state) <= {"completed", "interrupted", "invalid"}
    for mask, line in masks.items():
        assert mask_phone(states[line][1] or "") == mask

    # Nobody completed twice; only completed contacts have a completion line.
    completed_lines = Counter(
        masks[e["contact"]] for e in events if e["event"] == "call_completed"
    )
    assert max(completed_lines.values()) == 1
    completed = {line for line, (state, _) in states.items() if state == "completed"}
    assert set(completed_lines) <= completed
    assert len(completed - set(completed_lines)) <= kills * workers

    # Call ids never repeat, not even across runs, and name the contact they began.
    started = [e for e in events if e["event"] == "call_started"]
    assert len({e["call_id"] for e in started}) == len(started)
    contact_of = {e["call_id"]: e["contact"] for e in started}
    for event in events:
        if event["event"] == "call_completed":
            assert contact_of[event["call_id"]] == event["contact"]
    # An interrupted contact was started (and maybe dialled), never completed.
    started_lines = {masks[e["contact"]] for e in started}
    for line, (state, _) in states.items():
        if state == "interrupted":
            assert line in started_lines
            assert line not in completed_lines

    report = json.loads(report_path.read_text("utf-8"))["contacts"]
    assert report == {
        "total": ROWS + len(BAD_LINES),
        "completed": by_state["completed"],
        "failed": 0,
        "deferred": 0,
        "invalid": len(BAD_LINES),
        "interrupted": by_state["interrupted"],
    }
    return by_state


@pytest.mark.parametrize("workers", [1, 8])
def test_sigkill_at_random_points_loses_and_doubles_nothing(
    tmp_path: Path, workers: int
) -> None:
    """Killed runs resumed to the end: every contact once, no one completed twice."""
    masks = write_contacts(tmp_path / "crowd.csv")
    (tmp_path / "settings.yaml").write_text(SETTINGS, encoding="utf-8")
    rng = random.Random(f"{SEED}:{workers}")
    args = command("--campaign", CAMPAIGN, "--workers", str(workers))

    kills = 0
    for attempt in range(KILLS):
        status = run_and_kill(
            args,
            after=rng.randint(1, 50),
            extra_s=rng.uniform(0, 0.02),
            out=tmp_path / f"kill-{attempt}.out",
        )
        if status != -9:
            break
        kills += 1
    assert kills >= 2, "the runs ended before they could be killed"

    final = subprocess.run(
        [*args, "--json-report", "final.json"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip

    assert "Traceback" not in final.stderr + final.stdout
    by_state = check_books(masks, tmp_path / "final.json", workers, kills)
    # Without --redial-interrupted, a contact that may have been dialled stays
    # interrupted and the run says so with exit 1.
    assert final.returncode == (1 if by_state["interrupted"] else 0)
    assert by_state["completed"] + by_state["interrupted"] == ROWS

    redial = subprocess.run(
        [*args, "--redial-interrupted", "--json-report", "redial.json"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip

    assert redial.returncode == 0
    assert "Traceback" not in redial.stderr + redial.stdout
    assert check_books(masks, tmp_path / "redial.json", workers, kills) == Counter(
        completed=ROWS, invalid=len(BAD_LINES)
    )
