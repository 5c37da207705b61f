"""Concurrent calls: many workers, a flaky provider, per-service request limits."""

from __future__ import annotations

import json
import random
import re
import sqlite3
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer
from typer.testing import CliRunner
from werkzeug import Request, Response

from callagent.cli import app

VOICE = "voice-test"
LIMITS = {"elevenlabs": 2, "llm": 4, "crm": 3}


class Providers:
    """One loopback server speaking ElevenLabs, OpenAI and HubSpot at once.

    It counts requests in flight per service and remembers the most it ever saw,
    holds each request briefly so that overlaps happen, and fails a seeded share of
    text-to-speech requests with 503.
    """

    def __init__(self, flaky_share: float) -> None:
        self._lock = threading.Lock()
        self._in_flight: Counter[str] = Counter()
        self.peak: Counter[str] = Counter()
        self.requests: Counter[str] = Counter()
        self._rng = random.Random(7)
        self._flaky_share = flaky_share
        self._hold = threading.Event()

    def __call__(self, request: Request) -> Response:
        service = _service_of(request.path)
        with self._lock:
            self._in_flight[service] += 1
            self.requests[service] += 1
            self.peak[service] = max(self.peak[service], self._in_flight[service])
            fail = service == "elevenlabs" and self._rng.random() < self._flaky_share
        try:
            # Server-side latency, so that requests overlap: the event is never set.
            self._hold.wait(0.02)
            return _answer(request, fail)
        finally:
            with self._lock:
                self._in_flight[service] -= 1


def _service_of(path: str) -> str:
    if path.startswith("/v1/text-to-speech") or path.startswith("/v1/voices"):
        return "elevenlabs"
    if path.startswith("/v1/chat") or path.startswith("/v1/models"):
        return "llm"
    return "crm"


_ANSWERS = (
    ("/v1/text-to-speech", lambda: Response(b"ID3-audio", content_type="audio/mpeg")),
    ("/v1/voices", lambda: _json({"voice_id": VOICE})),
    ("/v1/chat", lambda: _json({"choices": [{"message": {"content": "Hi"}}]})),
    ("/v1/models", lambda: _json({"object": "list", "data": []})),
    ("/crm/v3/objects/contacts/search", lambda: _json({"total": 0, "results": []})),
    ("/crm/v3/objects/calls", lambda: _json({"id": "1"}, status=201)),
)


def _answer(request: Request, fail: bool) -> Response:
    path = request.path
    if fail and path.startswith("/v1/text-to-speech"):
        body = {"detail": {"status": "system_busy", "message": "busy"}}
        return Response(json.dumps(body), status=503, content_type="application/json")
    for prefix, answer in _ANSWERS:
        if path.startswith(prefix):
            return answer()
    return _json({"results": []})


def _json(body: object, status: int = 200) -> Response:
    return Response(json.dumps(body), status=status, content_type="application/json")


@pytest.fixture
def server() -> Iterator[HTTPServer]:
    server = HTTPServer(threaded=True)
    server.start()
    yield server
    server.clear()
    server.stop()


def write_inputs(tmp_path: Path, server: HTTPServer, contacts: int) -> None:
    base = f"http://{server.host}:{server.port}"
    services = {
        "elevenlabs": {"provider": "elevenlabs", "base_url": base, "voice_id": VOICE},
        "llm": {"provider": "openai", "base_url": f"{base}/v1"},
        "crm": {"provider": "hubspot", "base_url": base},
    }
    for name, limit in LIMITS.items():
        services[name]["max_concurrency"] = limit
        services[name]["output_dir"] = str(tmp_path / "audio")
    settings = {
        "retry": {"initial_delay_s": 0.005, "max_delay_s": 0.02},
        "circuit_breaker": {"recovery_timeout_s": 0.05},
        "health_check": {"interval_s": 0.02},
        "campaign": {"max_call_attempts": 10},
        "services": services,
    }
    (tmp_path / "settings.yaml").write_text(json.dumps(settings), encoding="utf-8")
    rows = ["phone,name"] + [
        f"+1415{2_000_000 + i},Person {i}" for i in range(contacts)
    ]
    (tmp_path / "contacts.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")


@pytest.fixture
def keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ELEVENLABS_API_KEY", "el-key")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-key")
    monkeypatch.setenv("HUBSPOT_TOKEN", "pat-key")


@pytest.mark.usefixtures("keys")
def test_many_workers_flaky_service_respects_limits(
    tmp_path: Path, server: HTTPServer
) -> None:
    """16 workers, 15 % flaky TTS: all complete once, limits never exceeded."""
    providers = Providers(flaky_share=0.15)
    server.expect_request(re.compile(".*")).respond_with_handler(providers)
    write_inputs(tmp_path, server, contacts=120)

    result = CliRunner().invoke(
        app,
        ["run", "contacts.csv", "--workers", "16", "--no-live",
         "--json-report", "report.json"],
    )  # fmt: skip

    assert result.exit_code == 0, result.output
    for service, limit in LIMITS.items():
        assert 1 <= providers.peak[service] <= limit, (service, providers.peak)
    assert providers.peak["elevenlabs"] == LIMITS["elevenlabs"]

    db = sqlite3.connect(tmp_path / ".callagent" / "state.db")
    states = db.execute("SELECT state, COUNT(*) FROM contact GROUP BY state").fetchall()
    assert states == [("completed", 120)]

    events = [
        json.loads(line)
        for line in (tmp_path / "logs" / "system.log").read_text("utf-8").splitlines()
    ]
    completed = Counter(e["contact"] for e in events if e["event"] == "call_completed")
    assert len(completed) == 120
    assert set(completed.values()) == {1}
    assert any(e["event"] == "retry_scheduled" for e in events)

    report = json.loads((tmp_path / "report.json").read_text("utf-8"))
    tts = report["services"]["elevenlabs"]
    assert tts["requests"] == providers.requests["elevenlabs"]
    assert tts["circuit_state"] == "CLOSED"
    _assert_transitions_follow_the_diagram(events)


def _assert_transitions_follow_the_diagram(events: list[dict[str, object]]) -> None:
    allowed = {
        ("CLOSED", "circuit_opened"): "OPEN",
        ("OPEN", "circuit_half_opened"): "HALF_OPEN",
        ("HALF_OPEN", "circuit_closed"): "CLOSED",
        ("HALF_OPEN", "circuit_opened"): "OPEN",
    }
    state: dict[object, str] = {}
    for event in events:
        name = event["event"]
        if not isinstance(name, str) or not name.startswith("circuit_"):
            continue
        service = event["service"]
        before = state.get(service, "CLOSED")
        after = allowed.get((before, name))
        assert after is not None, (service, before, name)
        assert event["circuit_state"] == after
        state[service] = after
