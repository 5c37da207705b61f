"""An OpenAI-compatible LLM writing the agent's opening lines.

Any gateway speaking OpenAI's chat completions API works: ``base_url`` carries the
version prefix (``https://api.openai.com/v1``), as in OpenAI's own SDK.
"""

from __future__ import annotations

from typing import Any

from callagent.clock import Clock
from callagent.contacts import Contact
from callagent.errors import InvalidPayload
from callagent.services.base import CrmRecord
from callagent.services.classify import classify_openai
from callagent.services.http import HttpService, malformed, require_json
from callagent.settings import ServiceSettings

SYSTEM_PROMPT = (
    "You write what an AI phone agent says when the person it calls picks up. "
    "Plain spoken text, no markup, under 80 words, friendly and to the point. "
    "Use only the details given; never invent account facts."
)

#: CRM properties the model never needs: the number is being dialled already, and a
#: third party has no use for it.
PRIVATE_PROPERTIES = frozenset({"phone", "mobilephone", "hs_object_id"})


class OpenAiLlm(HttpService):
    """Scripts from ``POST {base_url}/chat/completions``."""

    def __init__(
        self, name: str, settings: ServiceSettings, clock: Clock, api_key: str
    ) -> None:
        super().__init__(
            name,
            "openai",
            settings,
            clock,
            headers={"Authorization": f"Bearer {api_key}"},
            classify=classify_openai,
            secrets=(api_key,),
        )
        self._model = settings.model

    def write_script(self, contact: Contact, record: CrmRecord) -> str:
        request = {
            "model": self._model,
            "messages": [
                {"role": "system", "content": SYSTEM_PROMPT},
                {"role": "user", "content": build_prompt(contact, record)},
            ],
        }
        response = self.request("POST", "/chat/completions", json=request)
        return self._script(response.status_code, require_json(self.name, response))

    def probe(self) -> None:
        # GET /models lists what the key may use: authenticated and free of tokens.
        self.request("GET", "/models")

    def _script(self, status: int, body: dict[str, Any]) -> str:
        choices = body.get("choices")
        first = choices[0] if isinstance(choices, list) and choices else None
        message = first.get("message") if isinstance(first, dict) else None
        if not isinstance(message, dict):
            raise malformed(self.name, status)
        content = message.get("content")
        if isinstance(content, str) and content.strip():
            return content.strip()

        # No text: the model declined this prompt (a refusal or the content filter),
        # which only a different prompt would change.
        finish = first.get("finish_reason") if isinstance(first, dict) else None
        if isinstance(message.get("refusal"), str) or finish == "content_filter":
            raise InvalidPayload(
                self.name,
                "the model declined to write this script",
                status=status,
                code="refusal" if message.get("refusal") else "content_filter",
            )
        raise malformed(self.name, status)


def build_prompt(contact: Contact, record: CrmRecord) -> str:
    """The user message: who is called, their row's columns, what the CRM knows."""
    lines = [f"Name: {contact.name}" if contact.name else "Name: unknown"]
    if contact.timezone:
        lines.append(f"Time zone: {contact.timezone}")
    lines += _section("From the contacts file", contact.variables)
    lines += _section(
        "From the CRM",
        {k: v for k, v in record.properties.items() if k not in PRIVATE_PROPERTIES},
    )
    lines.append("Write the opening of the call.")
    return "\n".join(lines)


def _section(title: str, values: dict[str, str]) -> list[str]:
    shown = {key: value for key, value in sorted(values.items()) if value.strip()}
    if not shown:
        return []
    return [f"{title}:", *(f"- {key}: {value}" for key, value in shown.items())]
