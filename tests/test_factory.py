"""build_services: simulated or real per service, keys from the environment only."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from callagent.clock import VirtualClock
from callagent.errors import InputError
from callagent.services.base import ServiceSet
from callagent.services.elevenlabs import ElevenLabsTts
from callagent.services.factory import build_services
from callagent.services.hubspot import HubSpotCrm
from callagent.services.openai import OpenAiLlm
from callagent.services.simulated import SimulatedCrm, SimulatedLlm, SimulatedTts
from callagent.settings import Settings, parse_settings

KEYS = {
    "ELEVENLABS_API_KEY": "xi-key-0123456789",
    "OPENAI_API_KEY": "sk-test-0123456789",
    "HUBSPOT_TOKEN": "pat-na1-0123456789",
}
REAL = {"elevenlabs": "elevenlabs", "llm": "openai", "crm": "hubspot"}


def _settings(**services: dict[str, Any]) -> Settings:
    return parse_settings({"services": services})


def _real(*names: str, **extra: Any) -> Settings:
    return _settings(**{name: {"provider": REAL[name], **extra} for name in names})


@pytest.fixture
def built() -> Iterator[list[ServiceSet]]:
    """Service sets made by a test, closed after it."""
    sets: list[ServiceSet] = []
    yield sets
    for services in sets:
        services.close()


def _build(built: list[ServiceSet], settings: Settings, **kwargs: Any) -> ServiceSet:
    services = build_services(settings, VirtualClock(), **kwargs)
    built.append(services)
    return services


class TestChoice:
    def test_defaults_are_simulated(self, built: list[ServiceSet]) -> None:
        """With no providers set, every service is simulated and needs no key."""
        services = _build(built, Settings(), environ={})

        assert isinstance(services.crm, SimulatedCrm)
        assert isinstance(services.llm, SimulatedLlm)
        assert isinstance(services.tts, SimulatedTts)

    def test_all_real(self, built: list[ServiceSet]) -> None:
        """Each real provider gets its adapter, named by its settings key."""
        settings = _real("crm", "llm", "elevenlabs")

        services = _build(built, settings, environ=KEYS)

        assert isinstance(services.crm, HubSpotCrm)
        assert isinstance(services.llm, OpenAiLlm)
        assert isinstance(services.tts, ElevenLabsTts)
        assert [(s.name, s.provider) for s in services.all()] == [
            ("crm", "hubspot"),
            ("llm", "openai"),
            ("elevenlabs", "elevenlabs"),
        ]

    def test_mixed(self, built: list[ServiceSet]) -> None:
        """Real and simulated services mix; only the real one needs its key."""
        settings = _real("llm")

        services = _build(built, settings, environ={"OPENAI_API_KEY": "sk-1234567"})

        assert isinstance(services.llm, OpenAiLlm)
        assert isinstance(services.crm, SimulatedCrm)
        assert isinstance(services.tts, SimulatedTts)

    def test_keys_come_from_the_process_environment_by_default(
        self, built: list[ServiceSet], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Without ``environ``, the process environment is read."""
        monkeypatch.setenv("HUBSPOT_TOKEN", "pat-na1-abcdef")

        services = _build(built, _real("crm"))

        assert isinstance(services.crm, HubSpotCrm)

    def test_renamed_variable(self, built: list[ServiceSet]) -> None:
        """api_key_env names the variable read."""
        settings = _settings(llm={"provider": "openai", "api_key_env": "GATEWAY_KEY"})

        services = _build(built, settings, environ={"GATEWAY_KEY": "gw-123456"})

        assert isinstance(services.llm, OpenAiLlm)


class TestMissingKey:
    @pytest.mark.parametrize(
        ("name", "variable"),
        [
            ("elevenlabs", "ELEVENLABS_API_KEY"),
            ("llm", "OPENAI_API_KEY"),
            ("crm", "HUBSPOT_TOKEN"),
        ],
    )
    def test_unset_variable(self, name: str, variable: str) -> None:
        """An unset key names the variable and the settings key."""
        environ = {k: v for k, v in KEYS.items() if k != variable}

        with pytest.raises(InputError) as caught:
            build_services(_real(name), VirtualClock(), environ=environ)

        assert str(caught.value) == (
            f"services.{name}.api_key_env: environment variable {variable} is not set"
        )

    @pytest.mark.parametrize("value", ["", "   "])
    def test_empty_variable(self, value: str) -> None:
        """An empty key is refused like a missing one."""
        with pytest.raises(InputError) as caught:
            build_services(
                _real("llm"), VirtualClock(), environ={"OPENAI_API_KEY": value}
            )

        assert str(caught.value) == (
            "services.llm.api_key_env: environment variable OPENAI_API_KEY is empty"
        )

    def test_no_variable_named(self) -> None:
        """A real provider with api_key_env null is a settings error."""
        settings = _settings(crm={"provider": "hubspot", "api_key_env": None})

        with pytest.raises(InputError) as caught:
            build_services(settings, VirtualClock(), environ=KEYS)

        assert str(caught.value) == (
            "services.crm.api_key_env: required for provider hubspot"
        )

    def test_key_with_forbidden_characters_is_not_shown(self) -> None:
        """A key that cannot travel in a header is refused without echoing it."""
        secret = "sk-abc\ndef-SECRET"

        with pytest.raises(InputError) as caught:
            build_services(
                _real("llm"), VirtualClock(), environ={"OPENAI_API_KEY": secret}
            )

        assert "OPENAI_API_KEY" in str(caught.value)
        assert "SECRET" not in str(caught.value)

    def test_surrounding_whitespace_is_trimmed(self, built: list[ServiceSet]) -> None:
        """A trailing newline from copy-paste is not part of the key."""
        services = _build(
            built, _real("llm"), environ={"OPENAI_API_KEY": " sk-1234567\n"}
        )

        assert isinstance(services.llm, OpenAiLlm)

    def test_all_keys_are_checked_before_anything_is_built(self) -> None:
        """A missing key for one service stops the build for all of them."""
        environ = {"OPENAI_API_KEY": "sk-1234567"}

        with pytest.raises(InputError, match="HUBSPOT_TOKEN"):
            build_services(_real("llm", "crm"), VirtualClock(), environ=environ)

    def test_simulated_service_ignores_its_key(self, built: list[ServiceSet]) -> None:
        """A simulated service needs no key even when its variable is named."""
        services = _build(built, Settings(), environ={})

        assert services.llm.provider == "simulated"


class TestRequiredSettings:
    @pytest.mark.parametrize(
        ("name", "key", "message"),
        [
            ("elevenlabs", "voice_id", "required for provider elevenlabs"),
            ("llm", "model", "required for provider openai"),
            ("crm", "base_url", "must be an http:// or https:// URL"),
            ("llm", "base_url", "must be an http:// or https:// URL"),
        ],
    )
    def test_missing_setting(self, name: str, key: str, message: str) -> None:
        """A real provider without a setting it needs names that key."""
        settings = _settings(**{name: {"provider": REAL[name], key: ""}})

        with pytest.raises(InputError) as caught:
            build_services(settings, VirtualClock(), environ=KEYS)

        assert str(caught.value) == f"services.{name}.{key}: {message}"

    def test_base_url_is_not_echoed(self) -> None:
        """A wrong base_url is named by key, not by value (it may hold a token)."""
        settings = _settings(crm={"provider": "hubspot", "base_url": "ftp://SECRET@x"})

        with pytest.raises(InputError) as caught:
            build_services(settings, VirtualClock(), environ=KEYS)

        assert "SECRET" not in str(caught.value)


class TestNoNetwork:
    def test_building_sends_nothing(self, built: list[ServiceSet]) -> None:
        """Building real services opens no connection: an unreachable URL is fine."""
        settings = _real("crm", "llm", "elevenlabs", base_url="http://127.0.0.1:9")

        services = _build(built, settings, environ=KEYS)

        assert all(service.provider != "simulated" for service in services.all())
