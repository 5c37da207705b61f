"""The service set a run uses: simulated or real, chosen per service by settings.

A real provider's key comes from the environment variable its settings name, and
only from there. Everything a real service needs is checked before any client is
built, so a missing key or setting stops the start (exit code 2) with a message
naming the settings key, and nothing is left open.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import httpx

from callagent.clock import Clock
from callagent.errors import InputError
from callagent.services.base import CrmService, LlmService, ServiceSet, TtsService
from callagent.services.elevenlabs import ElevenLabsTts
from callagent.services.faults import FaultPlan
from callagent.services.hubspot import HubSpotCrm
from callagent.services.openai import OpenAiLlm
from callagent.services.simulated import SimulatedCrm, SimulatedLlm, SimulatedTts
from callagent.settings import SERVICE_NAMES, ServiceSettings, Settings

#: Settings a real provider cannot run without, beyond base_url and its key.
REQUIRED = {"elevenlabs": ("voice_id",), "openai": ("model",), "hubspot": ()}


def build_services(
    settings: Settings,
    clock: Clock,
    *,
    plan: FaultPlan | None = None,
    seed: int = 0,
    environ: Mapping[str, str] | None = None,
) -> ServiceSet:
    """The crm, llm and elevenlabs services as settings choose them.

    Raises InputError naming the settings key when a real provider lacks its key
    or a required setting.
    """
    env = os.environ if environ is None else environ
    plan = plan if plan is not None else FaultPlan([], seed=seed)
    services = settings.services
    keys = {
        name: _checked_key(name, services[name], env)
        for name in SERVICE_NAMES
        if services[name].provider != "simulated"
    }

    crm: CrmService
    llm: LlmService
    tts: TtsService
    if "crm" in keys:
        crm = HubSpotCrm("crm", services["crm"], clock, keys["crm"])
    else:
        crm = SimulatedCrm("crm", services["crm"], clock, plan, seed=seed)
    if "llm" in keys:
        llm = OpenAiLlm("llm", services["llm"], clock, keys["llm"])
    else:
        llm = SimulatedLlm("llm", services["llm"], clock, plan, seed=seed)
    if "elevenlabs" in keys:
        tts = ElevenLabsTts(
            "elevenlabs", services["elevenlabs"], clock, keys["elevenlabs"]
        )
    else:
        tts = SimulatedTts("elevenlabs", services["elevenlabs"], clock, plan, seed=seed)
    return ServiceSet(crm=crm, llm=llm, tts=tts)


def _checked_key(name: str, settings: ServiceSettings, env: Mapping[str, str]) -> str:
    """The service's key from the environment, after checking its other settings."""
    where = f"services.{name}"
    for key in REQUIRED[settings.provider]:
        if not getattr(settings, key):
            raise InputError(
                f"{where}.{key}: required for provider {settings.provider}"
            )
    _check_base_url(where, settings.base_url)

    variable = settings.api_key_env
    if not variable:
        raise InputError(
            f"{where}.api_key_env: required for provider {settings.provider}"
        )
    value = env.get(variable)
    if value is None:
        raise InputError(
            f"{where}.api_key_env: environment variable {variable} is not set"
        )
    # Surrounding whitespace is a copy-paste accident, never part of a key.
    key = value.strip()
    if not key:
        raise InputError(
            f"{where}.api_key_env: environment variable {variable} is empty"
        )
    # The key travels in an HTTP header; anything else would fail on every request
    # or, worse, end up in a transport error. The value is never shown.
    if not all(33 <= ord(char) <= 126 for char in key):
        raise InputError(
            f"{where}.api_key_env: environment variable {variable} holds characters "
            "not allowed in an API key"
        )
    return key


def _check_base_url(where: str, base_url: str) -> None:
    # The URL is not echoed: it is the user's own setting, and it could carry a
    # token in its path.
    try:
        url = httpx.URL(base_url)
    except httpx.InvalidURL:
        url = None
    if url is None or url.scheme not in ("http", "https") or not url.host:
        raise InputError(f"{where}.base_url: must be an http:// or https:// URL")
