"""The real adapters against a real HTTP server on loopback.

Every classification row of ``test_classify.py`` is replayed through its adapter,
then the transport failures: a server that stalls, a closed port, a host that does
not resolve, bodies that are not JSON. Nothing here reaches the internet: the
unresolvable host is refused by a stand-in for the resolver.
"""

from __future__ import annotations

import json
import socket
import threading
import traceback
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from callagent.clock import VirtualClock
from callagent.contacts import Contact
from callagent.errors import (
    AuthenticationFailed,
    InputError,
    InvalidPayload,
    NetworkError,
    RateLimited,
    ServiceError,
    ServiceTimeout,
    ServiceUnavailable,
    StorageError,
)
from callagent.services.base import CallOutcome, CrmRecord, Speech
from callagent.services.elevenlabs import ElevenLabsTts
from callagent.services.http import HttpService
from callagent.services.hubspot import HubSpotCrm
from callagent.services.openai import OpenAiLlm
from callagent.settings import ServiceSettings
from tests.test_classify import ELEVENLABS_ROWS, HUBSPOT_ROWS, OPENAI_ROWS, Row

KEY = "sk-live-ADAPTERKEY0123456789abcdefghij"
VOICE = "21m00Tcm4TlvDq8ikWAM"
UNRESOLVABLE = "callagent-test.invalid"
CONTACT = Contact(
    row=2,
    phone="+15551234567",
    contact_id="c-1",
    name="Ada Lovelace",
    timezone="Europe/London",
    variables={"plan": "gold", "balance": "42.00", "empty": " "},
)
RECORD = CrmRecord(
    crm_id="501",
    properties={"firstname": "Ada", "company": "Analytical", "phone": "+15551234567"},
)

Build = Callable[..., Any]


def _settings(
    provider: str, base_url: str, tmp_path: Path, **extra: Any
) -> ServiceSettings:
    values: dict[str, Any] = {
        "provider": provider,
        "base_url": base_url,
        "timeout_s": 5,
        "connect_timeout_s": 5,
        "output_dir": str(tmp_path / "audio"),
    }
    if provider == "elevenlabs":
        values["voice_id"] = VOICE
    if provider == "openai":
        values["model"] = "gpt-4o-mini"
    return ServiceSettings(**{**values, **extra})


@pytest.fixture
def build(httpserver: HTTPServer, tmp_path: Path) -> Iterator[Build]:
    """Adapters for a provider, pointed at the loopback server unless told otherwise."""
    made: list[HttpService] = []
    classes = {"elevenlabs": ElevenLabsTts, "openai": OpenAiLlm, "hubspot": HubSpotCrm}
    names = {"elevenlabs": "elevenlabs", "openai": "llm", "hubspot": "crm"}

    def make(provider: str, *, base_url: str | None = None, **extra: Any) -> Any:
        if base_url is None:
            suffix = "/v1" if provider == "openai" else ""
            base_url = httpserver.url_for(suffix).rstrip("/")
        settings = _settings(provider, base_url, tmp_path, **extra)
        service = classes[provider](names[provider], settings, VirtualClock(), KEY)
        made.append(service)
        return service

    yield make
    for service in made:
        service.close()


# What each provider's main request is, and the call that sends it.
ENDPOINTS: dict[str, tuple[str, str, Callable[[Any], object]]] = {
    "elevenlabs": (
        "POST",
        f"/v1/text-to-speech/{VOICE}",
        lambda tts: tts.synthesize("CALL_000001", "Hello Ada."),
    ),
    "openai": (
        "POST",
        "/v1/chat/completions",
        lambda llm: llm.write_script(CONTACT, RECORD),
    ),
    "hubspot": (
        "POST",
        "/crm/v3/objects/contacts/search",
        lambda crm: crm.lookup(CONTACT),
    ),
}
PROBES = {
    "elevenlabs": f"/v1/voices/{VOICE}",
    "openai": "/v1/models",
    "hubspot": "/crm/v3/objects/contacts",
}
ROWS = {"elevenlabs": ELEVENLABS_ROWS, "openai": OPENAI_ROWS, "hubspot": HUBSPOT_ROWS}
CASES = [
    pytest.param(provider, row, id=f"{provider}-{row.id}")
    for provider, rows in ROWS.items()
    for row in rows
]


def _respond(httpserver: HTTPServer, method: str, path: str, row: Row) -> None:
    handler = httpserver.expect_request(path, method=method)
    if isinstance(row.body, str):
        handler.respond_with_data(
            row.body, status=row.status, headers=row.headers, content_type="text/html"
        )
    elif row.body is None:
        handler.respond_with_data("", status=row.status, headers=row.headers)
    else:
        handler.respond_with_json(row.body, status=row.status, headers=row.headers)


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def _everything_said(error: BaseException) -> str:
    """All text an error can put in front of a person: str, repr and traceback."""
    return "\n".join(
        [str(error), repr(error), "".join(traceback.format_exception(error))]
    )


class TestClassificationOverHttp:
    @pytest.mark.parametrize(("provider", "row"), CASES)
    def test_row(
        self, httpserver: HTTPServer, build: Build, provider: str, row: Row
    ) -> None:
        """The provider's real response raises the row's class from the adapter."""
        method, path, call = ENDPOINTS[provider]
        _respond(httpserver, method, path, row)
        service = build(provider)

        with pytest.raises(ServiceError) as caught:
            call(service)

        error = caught.value
        assert type(error) is row.expected
        assert (error.service, error.status, error.code) == (
            service.name,
            row.status,
            row.code,
        )
        assert error.retry_after == row.retry_after
        # One request per failure: the transport never retries on its own.
        assert len(httpserver.log) == 1

    def test_http_date_retry_after(self, httpserver: HTTPServer, build: Build) -> None:
        """An HTTP-date Retry-After becomes the seconds until that date."""
        # The server stamps its own Date header with the real time, so the wait is
        # known to within the second that header resolves.
        later = datetime.now(UTC) + timedelta(seconds=30)
        headers = {"Retry-After": format_datetime(later, usegmt=True)}
        body = {"error": {"message": "slow down", "code": "rate_limit_exceeded"}}
        httpserver.expect_request("/v1/chat/completions").respond_with_json(
            body, status=429, headers=headers
        )

        with pytest.raises(RateLimited) as caught:
            build("openai").write_script(CONTACT, RECORD)

        assert caught.value.retry_after is not None
        assert 28.0 <= caught.value.retry_after <= 31.0


class TestElevenLabs:
    def test_synthesize_writes_the_audio(
        self, httpserver: HTTPServer, build: Build, tmp_path: Path
    ) -> None:
        """Audio is saved as {output_dir}/{call_id}.mp3 and its size returned."""
        httpserver.expect_request(
            f"/v1/text-to-speech/{VOICE}",
            method="POST",
            headers={"xi-api-key": KEY},
            json={"text": "Hello Ada.", "model_id": "eleven_multilingual_v2"},
        ).respond_with_data(b"ID3-mp3-bytes", content_type="audio/mpeg")

        speech = build("elevenlabs").synthesize("CALL_000001", "Hello Ada.")

        target = tmp_path / "audio" / "CALL_000001.mp3"
        assert speech == Speech(bytes_=13, path=str(target))
        assert target.read_bytes() == b"ID3-mp3-bytes"
        assert list(target.parent.iterdir()) == [target]

    def test_unwritable_output_dir_is_an_input_error(
        self, build: Build, tmp_path: Path
    ) -> None:
        """A file where the audio directory should be stops before any call."""
        blocker = tmp_path / "blocked"
        blocker.write_text("not a directory", encoding="utf-8")
        with pytest.raises(InputError, match=r"services\.elevenlabs\.output_dir"):
            build("elevenlabs", output_dir=str(blocker / "audio"))

    def test_audio_that_cannot_be_written_stops_the_campaign(
        self, httpserver: HTTPServer, build: Build, tmp_path: Path
    ) -> None:
        """A local write failure is a StorageError naming the file, not a retry."""
        httpserver.expect_request(f"/v1/text-to-speech/{VOICE}").respond_with_data(
            b"mp3", content_type="audio/mpeg"
        )
        tts = build("elevenlabs")
        # A directory where the partial file goes makes the write fail.
        (tmp_path / "audio" / "CALL_000009.mp3.part").mkdir(parents=True)

        with pytest.raises(StorageError, match=r"CALL_000009\.mp3: cannot write"):
            tts.synthesize("CALL_000009", "Hi.")

    def test_model_from_settings(self, httpserver: HTTPServer, build: Build) -> None:
        """The model_id sent is the one settings name."""
        httpserver.expect_request(
            f"/v1/text-to-speech/{VOICE}",
            json={"text": "Hi.", "model_id": "eleven_flash_v2_5"},
        ).respond_with_data(b"mp3", content_type="audio/mpeg")

        speech = build("elevenlabs", model="eleven_flash_v2_5").synthesize("C1", "Hi.")

        assert speech.bytes_ == 3

    @pytest.mark.parametrize(
        ("data", "content_type"),
        [(b"", "audio/mpeg"), (b'{"detail": "ok"}', "application/json")],
        ids=["empty", "json"],
    )
    def test_success_without_audio_is_transient(
        self, httpserver: HTTPServer, build: Build, data: bytes, content_type: str
    ) -> None:
        """A 200 that carries no audio is a malformed response, not speech."""
        httpserver.expect_request(f"/v1/text-to-speech/{VOICE}").respond_with_data(
            data, content_type=content_type
        )

        with pytest.raises(ServiceUnavailable) as caught:
            build("elevenlabs").synthesize("CALL_000001", "Hello.")

        assert caught.value.code == "malformed_response"

    def test_call_id_cannot_leave_the_output_dir(
        self, httpserver: HTTPServer, build: Build
    ) -> None:
        """A call id with a path in it is refused before anything is sent."""
        with pytest.raises(InvalidPayload):
            build("elevenlabs").synthesize("../escape", "Hello.")

        assert httpserver.log == []

    def test_probe_reads_the_configured_voice(
        self, httpserver: HTTPServer, build: Build
    ) -> None:
        """The probe is an authenticated GET of the configured voice."""
        httpserver.expect_request(
            PROBES["elevenlabs"], method="GET", headers={"xi-api-key": KEY}
        ).respond_with_json({"voice_id": VOICE, "name": "Rachel"})

        build("elevenlabs").probe()

        assert len(httpserver.log) == 1

    def test_probe_reports_spent_quota(
        self, httpserver: HTTPServer, build: Build
    ) -> None:
        """A probe answered with ElevenLabs' quota 401 raises QuotaExceeded."""
        httpserver.expect_request(PROBES["elevenlabs"]).respond_with_json(
            ELEVENLABS_ROWS[0].body, status=401
        )

        with pytest.raises(ServiceError) as caught:
            build("elevenlabs").probe()

        assert caught.value.code == "quota_exceeded"


class TestOpenAi:
    def test_write_script_returns_the_message(
        self, httpserver: HTTPServer, build: Build
    ) -> None:
        """The script is the first choice's message, sent with bearer auth."""
        httpserver.expect_request(
            "/v1/chat/completions",
            method="POST",
            headers={"Authorization": f"Bearer {KEY}"},
        ).respond_with_json(
            {
                "id": "chatcmpl-1",
                "object": "chat.completion",
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": " Hi Ada! "},
                        "finish_reason": "stop",
                    }
                ],
            }
        )

        script = build("openai").write_script(CONTACT, RECORD)

        assert script == "Hi Ada!"
        sent = json.loads(httpserver.log[0][0].get_data())
        assert sent["model"] == "gpt-4o-mini"
        assert [m["role"] for m in sent["messages"]] == ["system", "user"]

    def test_prompt_is_built_from_the_row_and_the_crm(
        self, httpserver: HTTPServer, build: Build
    ) -> None:
        """The prompt carries the name, the row's columns and CRM facts, not phones."""
        reply = {"choices": [{"message": {"content": "Hello."}}]}
        httpserver.expect_request("/v1/chat/completions").respond_with_json(reply)

        build("openai").write_script(CONTACT, RECORD)

        prompt = json.loads(httpserver.log[0][0].get_data())["messages"][1]["content"]
        assert "Name: Ada Lovelace" in prompt
        assert "- plan: gold" in prompt
        assert "- balance: 42.00" in prompt
        assert "- company: Analytical" in prompt
        assert "empty" not in prompt
        assert "5551234567" not in prompt

    @pytest.mark.parametrize(
        "body",
        ['{"choices": [{"message": {"content": "Hel', "<html>ok</html>", "{}"],
        ids=["truncated", "html", "no-choices"],
    )
    def test_malformed_success_is_transient(
        self, httpserver: HTTPServer, build: Build, body: str
    ) -> None:
        """A 200 without a readable completion is a ServiceUnavailable."""
        httpserver.expect_request("/v1/chat/completions").respond_with_data(
            body, content_type="application/json"
        )

        with pytest.raises(ServiceUnavailable) as caught:
            build("openai").write_script(CONTACT, RECORD)

        assert (caught.value.status, caught.value.code) == (200, "malformed_response")

    def test_refusal_is_this_calls_fault(
        self, httpserver: HTTPServer, build: Build
    ) -> None:
        """A model that declines the prompt fails the call, not the service."""
        message = {"role": "assistant", "content": None, "refusal": "I can't."}
        httpserver.expect_request("/v1/chat/completions").respond_with_json(
            {"choices": [{"message": message, "finish_reason": "stop"}]}
        )

        with pytest.raises(InvalidPayload) as caught:
            build("openai").write_script(CONTACT, RECORD)

        assert caught.value.code == "refusal"

    def test_probe_lists_models(self, httpserver: HTTPServer, build: Build) -> None:
        """The probe is GET {base_url}/models with the key."""
        httpserver.expect_request(
            PROBES["openai"], method="GET", headers={"Authorization": f"Bearer {KEY}"}
        ).respond_with_json({"object": "list", "data": []})

        build("openai").probe()

        assert len(httpserver.log) == 1


class TestHubSpot:
    def test_lookup_finds_the_contact_by_phone(
        self, httpserver: HTTPServer, build: Build
    ) -> None:
        """A match gives its id and its set properties."""
        httpserver.expect_request(
            "/crm/v3/objects/contacts/search",
            method="POST",
            headers={"Authorization": f"Bearer {KEY}"},
        ).respond_with_json(
            {
                "total": 1,
                "results": [
                    {
                        "id": "501",
                        "properties": {"firstname": "Ada", "company": None},
                        "archived": False,
                    }
                ],
            }
        )

        record = build("hubspot").lookup(CONTACT)

        assert record == CrmRecord(crm_id="501", properties={"firstname": "Ada"})
        search = json.loads(httpserver.log[0][0].get_data())
        filters = [group["filters"][0] for group in search["filterGroups"]]
        assert {f["propertyName"] for f in filters} == {"phone", "mobilephone"}
        assert {f["value"] for f in filters} == {CONTACT.phone}

    def test_lookup_not_found_is_a_result(
        self, httpserver: HTTPServer, build: Build
    ) -> None:
        """No contact with the number is an empty record, not an error."""
        httpserver.expect_request("/crm/v3/objects/contacts/search").respond_with_json(
            {"total": 0, "results": []}
        )

        record = build("hubspot").lookup(CONTACT)

        assert record == CrmRecord(crm_id=None, properties={})

    def test_lookup_malformed_success_is_transient(
        self, httpserver: HTTPServer, build: Build
    ) -> None:
        """A 200 whose JSON is cut short is a ServiceUnavailable."""
        httpserver.expect_request("/crm/v3/objects/contacts/search").respond_with_data(
            '{"total": 1, "results": [{"id": "5', content_type="application/json"
        )

        with pytest.raises(ServiceUnavailable):
            build("hubspot").lookup(CONTACT)

    def test_record_outcome_logs_an_associated_call(
        self, httpserver: HTTPServer, build: Build
    ) -> None:
        """The outcome becomes a call record on the contact's timeline."""
        httpserver.expect_request(
            "/crm/v3/objects/calls", method="POST"
        ).respond_with_json({"id": "9001"}, status=201)
        outcome = CallOutcome("CALL_000001", "answered", "call completed")

        build("hubspot").record_outcome(CONTACT, RECORD, outcome)

        sent = json.loads(httpserver.log[0][0].get_data())
        assert sent["properties"] == {
            "hs_timestamp": "2026-01-05T09:00:00.000Z",
            "hs_call_title": "callagent CALL_000001",
            "hs_call_body": "call completed",
            "hs_call_direction": "OUTBOUND",
            "hs_call_status": "COMPLETED",
            "hs_call_to_number": CONTACT.phone,
        }
        assert sent["associations"] == [
            {
                "to": {"id": "501"},
                "types": [
                    {"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 194}
                ],
            }
        ]

    def test_record_outcome_for_an_unknown_contact(
        self, httpserver: HTTPServer, build: Build
    ) -> None:
        """A number the CRM does not know gets an unassociated call record."""
        httpserver.expect_request("/crm/v3/objects/calls").respond_with_json(
            {"id": "9002"}, status=201
        )
        outcome = CallOutcome("CALL_000002", "no_answer", "nobody picked up")

        build("hubspot").record_outcome(CONTACT, CrmRecord(None, {}), outcome)

        sent = json.loads(httpserver.log[0][0].get_data())
        assert "associations" not in sent
        assert sent["properties"]["hs_call_status"] == "NO_ANSWER"

    def test_probe_reads_one_contact(
        self, httpserver: HTTPServer, build: Build
    ) -> None:
        """The probe is GET /crm/v3/objects/contacts?limit=1 with the token."""
        httpserver.expect_request(
            PROBES["hubspot"],
            method="GET",
            query_string="limit=1",
            headers={"Authorization": f"Bearer {KEY}"},
        ).respond_with_json({"results": []})

        build("hubspot").probe()

        assert len(httpserver.log) == 1


PROVIDERS = ["elevenlabs", "openai", "hubspot"]


class TestTransport:
    @pytest.mark.parametrize("provider", PROVIDERS)
    def test_stalled_server_is_a_read_timeout(
        self, httpserver: HTTPServer, build: Build, provider: str
    ) -> None:
        """A server that accepts and never answers raises ServiceTimeout."""
        release = threading.Event()

        def stall(request: Request) -> Response:
            release.wait(timeout=10)
            return Response("too late")

        httpserver.expect_request(PROBES[provider]).respond_with_handler(stall)
        service = build(provider, timeout_s=0.2)

        try:
            with pytest.raises(ServiceTimeout) as caught:
                service.probe()
        finally:
            release.set()

        assert caught.value.code == "read_timeout"
        assert str(caught.value).endswith("read timed out after 0.2 s")

    @pytest.mark.parametrize("provider", PROVIDERS)
    def test_closed_port_is_a_network_error(self, build: Build, provider: str) -> None:
        """Nothing listening: NetworkError, connection refused."""
        service = build(provider, base_url=f"http://127.0.0.1:{_closed_port()}")

        with pytest.raises(NetworkError) as caught:
            service.probe()

        assert caught.value.code == "connection_refused"

    @pytest.mark.parametrize("provider", PROVIDERS)
    def test_unresolvable_host_is_a_network_error(
        self, build: Build, monkeypatch: pytest.MonkeyPatch, provider: str
    ) -> None:
        """A host name that does not resolve: NetworkError, dns_error."""
        real = socket.getaddrinfo

        def resolve(host: Any, *args: Any, **kwargs: Any) -> Any:
            if host == UNRESOLVABLE:
                raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
            return real(host, *args, **kwargs)

        monkeypatch.setattr(socket, "getaddrinfo", resolve)
        service = build(provider, base_url=f"http://{UNRESOLVABLE}")

        with pytest.raises(NetworkError) as caught:
            service.probe()

        assert caught.value.code == "dns_error"

    def test_redirect_is_not_followed(
        self, httpserver: HTTPServer, build: Build
    ) -> None:
        """A redirect is not followed, so the key header goes nowhere else."""
        httpserver.expect_request(PROBES["elevenlabs"]).respond_with_data(
            "", status=307, headers={"Location": httpserver.url_for("/elsewhere")}
        )

        with pytest.raises(ServiceUnavailable):
            build("elevenlabs").probe()

        assert [entry[0].path for entry in httpserver.log] == [PROBES["elevenlabs"]]

    @pytest.mark.parametrize(
        ("status", "expected"),
        [(401, AuthenticationFailed), (429, RateLimited), (503, ServiceUnavailable)],
    )
    def test_malformed_error_body_is_classified_by_status(
        self,
        httpserver: HTTPServer,
        build: Build,
        status: int,
        expected: type[ServiceError],
    ) -> None:
        """An error body that claims JSON but is cut short falls back on the status."""
        httpserver.expect_request(f"/v1/text-to-speech/{VOICE}").respond_with_data(
            '{"detail": {"status": "quota_exc',
            status=status,
            content_type="application/json",
        )

        with pytest.raises(ServiceError) as caught:
            build("elevenlabs").synthesize("CALL_000001", "Hello.")

        assert type(caught.value) is expected
        assert caught.value.code is None


class TestSecrets:
    @pytest.mark.parametrize("provider", PROVIDERS)
    def test_key_echoed_by_the_provider_is_not_in_the_error(
        self, httpserver: HTTPServer, build: Build, provider: str
    ) -> None:
        """A 401 quoting the key back leaves no trace of it in the raised error."""
        echoed = f"Incorrect API key provided: {KEY} (sk-live-****ghij)"
        body = {
            "detail": {"status": "invalid_api_key", "message": echoed},
            "error": {"message": echoed, "code": "invalid_api_key"},
            "message": echoed,
        }
        method, path, call = ENDPOINTS[provider]
        httpserver.expect_request(path, method=method).respond_with_json(
            body, status=401
        )
        service = build(provider)

        with pytest.raises(AuthenticationFailed) as caught:
            call(service)

        said = _everything_said(caught.value)
        assert KEY not in said
        assert "ADAPTERKEY" not in said
        assert "****" not in said
        assert KEY not in repr(service)

    @pytest.mark.parametrize("provider", PROVIDERS)
    def test_transport_errors_name_neither_url_nor_key(
        self,
        build: Build,
        monkeypatch: pytest.MonkeyPatch,
        provider: str,
    ) -> None:
        """A failed connection to a URL carrying a token says nothing of either."""
        base_urls = [
            f"http://127.0.0.1:{_closed_port()}/bot{KEY}",
            f"http://{UNRESOLVABLE}/bot{KEY}?key={KEY}",
        ]
        real = socket.getaddrinfo

        def resolve(host: Any, *args: Any, **kwargs: Any) -> Any:
            if host == UNRESOLVABLE:
                raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
            return real(host, *args, **kwargs)

        monkeypatch.setattr(socket, "getaddrinfo", resolve)

        for base_url in base_urls:
            service = build(provider, base_url=base_url)
            with pytest.raises(NetworkError) as caught:
                service.probe()
            said = _everything_said(caught.value)
            assert KEY not in said
            assert "/bot" not in said
            assert UNRESOLVABLE not in said

    def test_timeout_names_neither_url_nor_key(
        self, httpserver: HTTPServer, build: Build
    ) -> None:
        """A timeout on a URL carrying a token says nothing of the URL or the key."""
        release = threading.Event()

        def stall(request: Request) -> Response:
            release.wait(timeout=10)
            return Response("too late")

        httpserver.expect_request(f"/bot{KEY}/v1/models").respond_with_handler(stall)
        base_url = httpserver.url_for(f"/bot{KEY}/v1").rstrip("/")
        service = build("openai", base_url=base_url, timeout_s=0.2)

        try:
            with pytest.raises(ServiceTimeout) as caught:
                service.probe()
        finally:
            release.set()

        said = _everything_said(caught.value)
        assert KEY not in said
        assert "/bot" not in said
