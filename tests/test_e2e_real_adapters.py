"""``callagent run`` end to end, every service on its real provider's API.

Three loopback servers speak HubSpot's CRM API, OpenAI's chat completions and
ElevenLabs' text-to-speech. The settings point the real adapters at them and shrink
every wait (backoff, recovery timeout, health-check interval) to hundredths of a
second, so a run on the real clock with an outage and its recovery stays short. Each
scenario then checks that the event log, the JSON report, the alerts log, the exit
code and the servers' own request logs tell the same story.
"""

from __future__ import annotations

import csv
import json
import re
import threading
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from pytest_httpserver import HTTPServer
from typer.testing import CliRunner, Result
from werkzeug import Request, Response

from callagent.cli import app
from callagent.events import REQUIRED_FIELDS
from tests.test_classify import OPENAI_ROWS, Row

VOICE = "21m00Tcm4TlvDq8ikWAM"
MODEL = "gpt-4o-mini"
AUDIO = b"ID3\x04\x00\x00\x00\x00\x00\x00fake-mpeg-frames"
KEYS = {
    "HUBSPOT_TOKEN": "pat-na1-e2e00000-1111-2222-3333-444444444444",
    "OPENAI_API_KEY": "sk-proj-E2EKEY0123456789abcdefghijklmnop",
    "ELEVENLABS_API_KEY": "sk_e2e0123456789abcdef0123456789abcdef01234567",
}
#: (phone, name) of the contacts file every scenario calls.
CONTACTS = (
    ("+14155550101", "Ada"),
    ("+14155550102", "Grace"),
    ("+14155550103", "Edsger"),
)
#: The pipeline's services, as settings name them, and the provider each speaks.
PROVIDERS = {"crm": "hubspot", "llm": "openai", "elevenlabs": "elevenlabs"}
#: The health probe's path on each provider's server.
PROBE_PATHS = {
    "crm": "/crm/v3/objects/contacts",
    "llm": "/v1/models",
    "elevenlabs": f"/v1/voices/{VOICE}",
}
#: Console settings for every invocation: a fixed width and no colour.
CONSOLE_ENV = {"COLUMNS": "120", "NO_COLOR": "1", "TERM": "dumb"}

Handler = Callable[[Request], Response]
Fault = Callable[[Request], Response | None]
#: What a run leaves for a scenario's tests: the command's result and its report.
Outcome = tuple[Result, dict[str, Any]]


def json_response(body: object, status: int = 200, **headers: str) -> Response:
    return Response(
        json.dumps(body),
        status=status,
        headers=headers,
        content_type="application/json",
    )


def row_response(rows: list[Row], row_id: str) -> Response:
    """A provider's real error response, from the classification table."""
    row = next(row for row in rows if row.id == row_id)
    return json_response(row.body, row.status, **row.headers)


# The providers ------------------------------------------------------------------


class FakeProvider:
    """One provider's API on a loopback server, with an optional fault in front.

    ``prefix`` is a path the base URL carries before the API's own paths (a
    gateway's mount point); the routes are matched after it.
    """

    def __init__(
        self,
        server: HTTPServer,
        routes: Mapping[tuple[str, str], Handler],
        *,
        api_root: str = "",
    ) -> None:
        self.server = server
        self.routes = routes
        self.api_root = api_root
        self.prefix = ""
        self.fault: Fault | None = None
        server.expect_request(re.compile(".*")).respond_with_handler(self._dispatch)

    @property
    def base_url(self) -> str:
        return self.server.url_for(self.prefix + self.api_root).rstrip("/")

    def _dispatch(self, request: Request) -> Response:
        if self.fault is not None:
            response = self.fault(request)
            if response is not None:
                return response
        route = self.routes.get(
            (request.method, request.path.removeprefix(self.prefix))
        )
        if route is None:
            return json_response({"message": "no such route"}, 404)
        return route(request)

    def requests(self, method: str | None = None, path: str | None = None) -> list[Any]:
        """Requests the server answered, optionally only those of one route."""
        return [
            request
            for request, _ in self.server.log
            if (method is None or request.method == method)
            and (path is None or request.path.removeprefix(self.prefix) == path)
        ]

    def bodies(self, method: str, path: str) -> list[Any]:
        return [json.loads(r.get_data()) for r in self.requests(method, path)]


class FailFirst:
    """A fault that answers the first ``times`` requests with ``response()``."""

    def __init__(self, times: int, response: Callable[[], Response]) -> None:
        self._left = times
        self._response = response
        self._lock = threading.Lock()

    def __call__(self, request: Request) -> Response | None:
        with self._lock:
            if self._left <= 0:
                return None
            self._left -= 1
        return self._response()


def hubspot(server: HTTPServer) -> FakeProvider:
    """HubSpot: search contacts by phone, create call records, list contacts."""
    names = dict(CONTACTS)

    def search(request: Request) -> Response:
        phone = json.loads(request.get_data())["filterGroups"][0]["filters"][0]["value"]
        if phone not in names:
            return json_response({"total": 0, "results": []})
        found = {
            "id": crm_id(phone),
            "properties": {
                "firstname": names[phone],
                "company": "Acme",
                "phone": phone,
            },
            "createdAt": "2025-11-02T10:00:00.000Z",
            "archived": False,
        }
        return json_response({"total": 1, "results": [found]})

    def create_call(request: Request) -> Response:
        created = len(server.log) + 1
        return json_response({"id": f"9{created:04d}", "properties": {}}, 201)

    def list_contacts(request: Request) -> Response:
        return json_response({"results": [], "paging": None})

    routes = {
        ("POST", "/crm/v3/objects/contacts/search"): search,
        ("POST", "/crm/v3/objects/calls"): create_call,
        ("GET", "/crm/v3/objects/contacts"): list_contacts,
    }
    return FakeProvider(server, routes)


def crm_id(phone: str) -> str:
    return "50" + phone[-4:]


def openai(server: HTTPServer) -> FakeProvider:
    """OpenAI: chat completions greeting the contact by name, and the model list."""

    def complete(request: Request) -> Response:
        prompt = json.loads(request.get_data())["messages"][1]["content"]
        named = re.search(r"^Name: (.+)$", prompt, re.MULTILINE)
        name = named.group(1) if named else "there"
        message = {"role": "assistant", "content": f"Hello {name}, Acme calling."}
        return json_response(
            {
                "id": "chatcmpl-e2e",
                "object": "chat.completion",
                "model": MODEL,
                "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 60, "completion_tokens": 8},
            }
        )

    def models(request: Request) -> Response:
        model = {"id": MODEL, "object": "model", "owned_by": "system"}
        return json_response({"object": "list", "data": [model]})

    routes = {
        ("POST", "/v1/chat/completions"): complete,
        ("GET", "/v1/models"): models,
    }
    return FakeProvider(server, routes, api_root="/v1")


def elevenlabs(server: HTTPServer) -> FakeProvider:
    """ElevenLabs: speech as MPEG bytes, and the configured voice."""

    def speak(request: Request) -> Response:
        return Response(AUDIO, content_type="audio/mpeg")

    def voice(request: Request) -> Response:
        return json_response(
            {"voice_id": VOICE, "name": "Rachel", "category": "premade"}
        )

    routes = {
        ("POST", f"/v1/text-to-speech/{VOICE}"): speak,
        ("GET", f"/v1/voices/{VOICE}"): voice,
    }
    return FakeProvider(server, routes)


@dataclass
class Providers:
    crm: FakeProvider
    llm: FakeProvider
    elevenlabs: FakeProvider

    def __getitem__(self, service: str) -> FakeProvider:
        provider: FakeProvider = getattr(self, service)
        return provider


def running_servers() -> Iterator[dict[str, HTTPServer]]:
    """One loopback server per service, started once for a module's tests."""
    servers = {name: HTTPServer(host="127.0.0.1", threaded=True) for name in PROVIDERS}
    for server in servers.values():
        server.start()
    yield servers
    # Each stop waits out its server's poll interval: stop them side by side.
    with ThreadPoolExecutor(max_workers=len(servers)) as pool:
        list(pool.map(HTTPServer.stop, servers.values()))


def fake_providers(
    servers: dict[str, HTTPServer], monkeypatch: pytest.MonkeyPatch
) -> Iterator[Providers]:
    """Fresh, healthy providers on the module's servers, keys in the environment."""
    for server in servers.values():
        server.clear()
    for variable, key in KEYS.items():
        monkeypatch.setenv(variable, key)
    yield Providers(
        crm=hubspot(servers["crm"]),
        llm=openai(servers["llm"]),
        elevenlabs=elevenlabs(servers["elevenlabs"]),
    )
    for server in servers.values():
        server.check()


@pytest.fixture(scope="module")
def servers() -> Iterator[dict[str, HTTPServer]]:
    yield from running_servers()


@pytest.fixture
def providers(
    servers: dict[str, HTTPServer], monkeypatch: pytest.MonkeyPatch
) -> Iterator[Providers]:
    yield from fake_providers(servers, monkeypatch)


# Settings, contacts, the command ---------------------------------------------------


def merged(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``extra`` merged in, mapping by mapping."""
    result = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = merged(result[key], value)
        else:
            result[key] = value
    return result


def write_settings(
    directory: Path, providers: Providers, extra: dict[str, Any] | None = None
) -> Path:
    """Settings with every service on its real provider and every wait tiny."""
    services = {
        name: {
            "provider": provider,
            "base_url": providers[name].base_url,
            "timeout_s": 2,
            "connect_timeout_s": 1,
        }
        for name, provider in PROVIDERS.items()
    }
    services["elevenlabs"]["output_dir"] = str(directory / "audio")
    data = {
        "retry": {"initial_delay_s": 0.01, "max_delay_s": 0.04},
        "circuit_breaker": {"recovery_timeout_s": 0.05},
        "health_check": {"interval_s": 0.05},
        "campaign": {"max_wait_s": 5},
        "alerts": {"group_wait_s": 0},
        "services": services,
    }
    path = directory / "settings.yaml"
    path.write_text(yaml.safe_dump(merged(data, extra or {})), "utf-8")
    return path


def write_contacts(directory: Path) -> Path:
    path = directory / "contacts.csv"
    rows = "".join(f"{phone},{name}\n" for phone, name in CONTACTS)
    path.write_text("phone,name\n" + rows, "utf-8")
    return path


runner = CliRunner()


def invoke(*args: str) -> Result:
    """Run the command in-process at a fixed width without colour."""
    return runner.invoke(app, list(args), env=CONSOLE_ENV, catch_exceptions=False)


def run_campaign(directory: Path, settings: Path) -> Outcome:
    """``callagent run`` on the contacts file; the result and the JSON report."""
    contacts = write_contacts(directory)
    report = directory / "report.json"
    result = invoke(
        "run", str(contacts), "--settings", str(settings),
        "--json-report", str(report), "--no-live",
    )  # fmt: skip
    return result, json.loads(report.read_text("utf-8"))


def read_log(directory: Path) -> list[dict[str, Any]]:
    text = (directory / "logs" / "system.log").read_text("utf-8")
    return [json.loads(line) for line in text.splitlines()]


def read_alerts(directory: Path) -> list[dict[str, Any]]:
    path = directory / "logs" / "alerts.jsonl"
    return [json.loads(line) for line in path.read_text("utf-8").splitlines()]


def named(
    events: list[dict[str, Any]], event: str, service: str | None = None
) -> list[dict[str, Any]]:
    """The lines of one event, optionally only those about one service."""
    return [
        line
        for line in events
        if line["event"] == event and (service is None or line["service"] == service)
    ]


def assert_books_agree(
    directory: Path, report: dict[str, Any], providers: Providers
) -> list[dict[str, Any]]:
    """The log, the Sheets CSV, the alerts log, the report and the servers agree.

    Returns the run's events for the scenario's own checks.
    """
    events = read_log(directory)
    assert all(set(REQUIRED_FIELDS) <= set(line) for line in events)
    assert {line["run_id"] for line in events} == {report["run_id"]}
    assert events[0]["event"] == "campaign_started"
    assert events[-1]["event"] == "campaign_finished"
    with (directory / "logs" / "sheets.csv").open(encoding="utf-8") as sheet:
        assert len(list(csv.reader(sheet))) == len(events) + 1

    for service, figures in report["services"].items():
        probes = named(events, "health_check_passed", service) + named(
            events, "health_check_failed", service
        )
        assert figures["requests"] == len(providers[service].requests())
        assert len(probes) == len(
            providers[service].requests("GET", PROBE_PATHS[service])
        )
        assert figures["failures"] == len(
            named(events, "service_error", service)
        ) + len(named(events, "health_check_failed", service))
        assert figures["retries"] == len(named(events, "retry_scheduled", service))
        assert figures["times_opened"] == len(named(events, "circuit_opened", service))
        states = [
            line["circuit_state"] for line in events if line["service"] == service
        ]
        assert figures["circuit_state"] == (states[-1] if states else "CLOSED")

    contacts = report["contacts"]
    assert contacts["total"] == len(CONTACTS)
    assert contacts["completed"] == len(named(events, "call_completed"))
    assert sum(contacts[state] for state in ("completed", "failed", "deferred")) == (
        len(CONTACTS)
    )

    alerts = read_alerts(directory)
    for outcome, event in (("sent", "alert_sent"), ("failed", "alert_failed")):
        logged = [line for line in alerts if line["delivery"] == outcome]
        assert report["alerts"][outcome] == len(logged) == len(named(events, event))
    suppressed = [line for line in alerts if line["delivery"] == "suppressed"]
    assert report["alerts"]["suppressed"] == len(suppressed)
    return events


def index_of(events: list[dict[str, Any]], event: str, service: str) -> int:
    return events.index(named(events, event, service)[0])


# Scenarios -------------------------------------------------------------------------


class TestAllHealthy:
    def test_exit_code_is_0(self, providers: Providers, tmp_path: Path) -> None:
        """Every contact completes against healthy providers: exit code 0."""
        result, _ = run_campaign(tmp_path, write_settings(tmp_path, providers))

        assert result.exit_code == 0

    def test_every_contact_is_called_once_through_every_provider(
        self, providers: Providers, tmp_path: Path
    ) -> None:
        """Each contact: one lookup, one script, its audio, one HubSpot call record."""
        result, report = run_campaign(tmp_path, write_settings(tmp_path, providers))

        events = assert_books_agree(tmp_path, report, providers)
        assert "Campaign 'contacts'" in result.stdout
        assert report["contacts"] == {
            "total": 3, "completed": 3, "failed": 0,
            "deferred": 0, "invalid": 0, "interrupted": 0,
        }  # fmt: skip
        for figures in report["services"].values():
            assert figures["failures"] == figures["retries"] == 0
            assert figures["times_opened"] == 0
            assert figures["circuit_state"] == "CLOSED"
        assert report["alerts"] == {"sent": 0, "failed": 0, "suppressed": 0}

        call_ids = [line["call_id"] for line in named(events, "call_completed")]
        assert len(set(call_ids)) == len(CONTACTS)
        audio = tmp_path / "audio"
        assert sorted(path.name for path in audio.iterdir()) == sorted(
            f"{call_id}.mp3" for call_id in call_ids
        )
        assert {path.read_bytes() for path in audio.iterdir()} == {AUDIO}

        records = providers.crm.bodies("POST", "/crm/v3/objects/calls")
        assert sorted(r["properties"]["hs_call_to_number"] for r in records) == sorted(
            phone for phone, _ in CONTACTS
        )
        assert sorted(r["properties"]["hs_call_title"] for r in records) == sorted(
            f"callagent {call_id}" for call_id in call_ids
        )
        assert sorted(r["associations"][0]["to"]["id"] for r in records) == sorted(
            crm_id(phone) for phone, _ in CONTACTS
        )

        # The LLM's script is what ElevenLabs is asked to speak.
        spoken = providers.elevenlabs.bodies("POST", f"/v1/text-to-speech/{VOICE}")
        assert sorted(body["text"] for body in spoken) == sorted(
            f"Hello {name}, Acme calling." for _, name in CONTACTS
        )

    def test_keys_travel_in_each_providers_auth_header(
        self, providers: Providers, tmp_path: Path
    ) -> None:
        """HubSpot and OpenAI get a bearer token, ElevenLabs its xi-api-key header."""
        run_campaign(tmp_path, write_settings(tmp_path, providers))

        bearer = {r.headers["Authorization"] for r in providers.crm.requests()}
        assert bearer == {f"Bearer {KEYS['HUBSPOT_TOKEN']}"}
        bearer = {r.headers["Authorization"] for r in providers.llm.requests()}
        assert bearer == {f"Bearer {KEYS['OPENAI_API_KEY']}"}
        xi = {r.headers["xi-api-key"] for r in providers.elevenlabs.requests()}
        assert xi == {KEYS["ELEVENLABS_API_KEY"]}


def unavailable() -> Response:
    return json_response({"detail": "Service temporarily unavailable"}, 503)


class TestElevenLabsOutage:
    # Four failed attempts exhaust the call's retries and open the breaker; the
    # fifth request is the first health probe, which fails too; then it recovers.
    FAILURES = 5

    @pytest.fixture
    def outage(self, providers: Providers, tmp_path: Path) -> Outcome:
        providers.elevenlabs.fault = FailFirst(self.FAILURES, unavailable)
        return run_campaign(tmp_path, write_settings(tmp_path, providers))

    def test_exit_code_is_0(self, outage: Outcome) -> None:
        """An outage that ends before max_wait_s leaves nobody behind: exit code 0."""
        result, _ = outage

        assert result.exit_code == 0

    def test_every_contact_completes(
        self, outage: Outcome, providers: Providers, tmp_path: Path
    ) -> None:
        """The deferred contacts are called once ElevenLabs is back."""
        _, report = outage

        assert_books_agree(tmp_path, report, providers)
        assert report["contacts"]["completed"] == len(CONTACTS)
        assert len(list((tmp_path / "audio").iterdir())) == len(CONTACTS)
        assert len(providers.crm.requests("POST", "/crm/v3/objects/calls")) == len(
            CONTACTS
        )

    def test_retries_back_off_then_the_breaker_opens(
        self, outage: Outcome, providers: Providers, tmp_path: Path
    ) -> None:
        """Three retries at 0.01, 0.02, 0.04 s, then the fourth failure opens it."""
        _, report = outage

        events = assert_books_agree(tmp_path, report, providers)
        errors = named(events, "service_error", "elevenlabs")
        assert [line["retry_count"] for line in errors] == [0, 1, 2, 3]
        assert {line["error"] for line in errors} == {"ServiceUnavailable"}
        assert {line["error_category"] for line in errors} == {"Transient"}
        retries = named(events, "retry_scheduled", "elevenlabs")
        assert [line["delay_s"] for line in retries] == [0.01, 0.02, 0.04]
        assert len({line["call_id"] for line in errors + retries}) == 1
        opened = named(events, "circuit_opened", "elevenlabs")
        assert len(opened) == 1
        assert opened[0]["circuit_state"] == "OPEN"
        assert events.index(opened[0]) > events.index(errors[-1])
        failed = named(events, "call_failed", "elevenlabs")
        assert [(line["call_id"], line["retry_count"]) for line in failed] == [
            (errors[0]["call_id"], 3)
        ]

        figures = report["services"]["elevenlabs"]
        # The first call's four attempts, and the fifth 503 answered to a probe.
        assert (figures["failures"], figures["retries"], figures["times_opened"]) == (
            5,
            3,
            1,
        )
        assert figures["circuit_state"] == "CLOSED"

    def test_calls_wait_for_probes_to_close_the_breaker(
        self, outage: Outcome, providers: Providers, tmp_path: Path
    ) -> None:
        """Calls are deferred, a probe fails, one passes, a trial call closes it."""
        _, report = outage

        events = assert_books_agree(tmp_path, report, providers)
        breaker = [
            line["event"]
            for line in events
            if line["service"] == "elevenlabs"
            and line["event"].startswith(("circuit_", "health_check_"))
        ]
        assert breaker == [
            "circuit_opened",
            "health_check_failed",
            "circuit_half_opened",
            "health_check_passed",
            "circuit_closed",
        ]
        deferred = named(events, "call_deferred", "elevenlabs")
        assert len(deferred) >= 2
        assert all(
            events.index(line) < index_of(events, "circuit_closed", "elevenlabs")
            for line in deferred
        )
        # Every failed response the server gave is in the log, as a failed request
        # of a call or as a failed probe.
        failures = len(named(events, "service_error", "elevenlabs")) + len(
            named(events, "health_check_failed", "elevenlabs")
        )
        assert failures == self.FAILURES
        assert report["services"]["elevenlabs"]["requests"] == (
            len(providers.elevenlabs.requests())
        )

    def test_one_alert_fires_and_resolves_per_channel(
        self, outage: Outcome, providers: Providers, tmp_path: Path
    ) -> None:
        """The opening pages each channel once, and its closing resolves it."""
        _, report = outage

        assert_books_agree(tmp_path, report, providers)
        sent = [
            (line["status"], line["channel"], line["service"], line["cause"])
            for line in read_alerts(tmp_path)
            if line["delivery"] == "sent"
        ]
        assert sorted(sent) == sorted(
            (status, channel, "elevenlabs", "circuit_open")
            for status in ("firing", "resolved")
            for channel in ("email", "telegram", "webhook")
        )


def quota_spent(request: Request) -> Response:
    return row_response(OPENAI_ROWS, "429-insufficient_quota")


class TestOpenAiQuotaSpent:
    MAX_WAIT_S = 0.3

    @pytest.fixture
    def spent(self, providers: Providers, tmp_path: Path) -> Outcome:
        providers.llm.fault = quota_spent
        settings = write_settings(
            tmp_path, providers, {"campaign": {"max_wait_s": self.MAX_WAIT_S}}
        )
        return run_campaign(tmp_path, settings)

    def test_exit_code_is_1(self, spent: Outcome) -> None:
        """Quota that never comes back leaves contacts deferred: exit code 1."""
        result, _ = spent

        assert result.exit_code == 1

    def test_breaker_opens_at_once_without_retries(
        self, spent: Outcome, providers: Providers, tmp_path: Path
    ) -> None:
        """One request, no retry, the breaker open: quota is not worth retrying."""
        result, report = spent

        events = assert_books_agree(tmp_path, report, providers)
        errors = named(events, "service_error", "llm")
        assert [(line["error"], line["error_category"]) for line in errors] == [
            ("QuotaExceeded", "Permanent")
        ]
        assert named(events, "retry_scheduled") == []
        assert index_of(events, "circuit_opened", "llm") == events.index(errors[0]) + 1
        figures = report["services"]["llm"]
        probes_failed = len(named(events, "health_check_failed", "llm"))
        assert probes_failed >= 1
        assert (figures["failures"], figures["retries"], figures["times_opened"]) == (
            1 + probes_failed,
            0,
            1,
        )
        assert figures["circuit_state"] == "OPEN"
        chats = providers.llm.requests("POST", "/v1/chat/completions")
        assert len(chats) == 1
        assert f"Stopped waiting after {self.MAX_WAIT_S:g} s" in result.stdout

    def test_contacts_are_deferred_and_skipped_calls_send_nothing(
        self, spent: Outcome, providers: Providers, tmp_path: Path
    ) -> None:
        """Every contact is deferred; those skipped reached no service at all."""
        _, report = spent

        events = assert_books_agree(tmp_path, report, providers)
        assert report["contacts"]["deferred"] == len(CONTACTS)
        assert report["contacts"]["completed"] == 0
        assert len(named(events, "call_deferred", "llm")) == len(CONTACTS)
        assert len(named(events, "call_skipped", "llm")) == len(CONTACTS) - 1
        assert len(providers.crm.requests()) == 1
        assert providers.elevenlabs.requests() == []
        # While it waits, the open breaker is probed, and every probe fails.
        assert len(named(events, "health_check_failed", "llm")) >= 1
        assert named(events, "health_check_passed") == []

    def test_one_notification_per_channel_not_per_contact(
        self, spent: Outcome, providers: Providers, tmp_path: Path
    ) -> None:
        """The opening fires one alert: one notification per channel, nothing more."""
        _, report = spent

        assert_books_agree(tmp_path, report, providers)
        sent = [line for line in read_alerts(tmp_path) if line["delivery"] == "sent"]
        assert sorted(line["channel"] for line in sent) == [
            "email",
            "telegram",
            "webhook",
        ]
        assert {(line["status"], line["service"]) for line in sent} == {
            ("firing", "llm")
        }
        assert len({line["fingerprint"] for line in sent}) == 1
        assert report["alerts"]["sent"] == 3
