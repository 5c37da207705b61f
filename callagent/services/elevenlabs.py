"""ElevenLabs text-to-speech over its HTTP API."""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import quote

from callagent.clock import Clock
from callagent.errors import InputError, InvalidPayload, StorageError
from callagent.services.base import Speech
from callagent.services.classify import classify_elevenlabs
from callagent.services.http import HttpService, malformed
from callagent.settings import ServiceSettings

#: The model ElevenLabs itself uses when a request names none.
DEFAULT_MODEL = "eleven_multilingual_v2"


class ElevenLabsTts(HttpService):
    """Speech from ``POST /v1/text-to-speech/{voice_id}``, saved as one MP3 per call."""

    def __init__(
        self, name: str, settings: ServiceSettings, clock: Clock, api_key: str
    ) -> None:
        super().__init__(
            name,
            "elevenlabs",
            settings,
            clock,
            headers={"xi-api-key": api_key},
            classify=classify_elevenlabs,
            secrets=(api_key,),
        )
        self._voice = quote(settings.voice_id or "", safe="")
        self._model = settings.model or DEFAULT_MODEL
        self._output_dir = Path(settings.output_dir)
        # Found before the first call, like an unwritable log directory: otherwise
        # every contact would be called, charged, and its audio lost.
        try:
            self._output_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise InputError(
                f"services.{name}.output_dir: cannot create {self._output_dir} "
                f"({exc.strerror})"
            ) from exc

    def synthesize(self, call_id: str, text: str) -> Speech:
        target = self._output_path(call_id)
        response = self.request(
            "POST",
            f"/v1/text-to-speech/{self._voice}",
            json={"text": text, "model_id": self._model},
            headers={"Accept": "audio/mpeg"},
        )
        audio = response.content
        kind = response.headers.get("content-type", "audio/mpeg")
        # A 200 that is empty or JSON is a gateway's doing, not speech.
        if not audio or not kind.startswith(("audio/", "application/octet-stream")):
            raise malformed(self.name, response.status_code)

        try:
            _write_atomically(target, audio)
        except OSError as exc:
            # Our disk, not the service: a full disk fails every call alike, so the
            # campaign stops with one line instead of charging for lost audio.
            raise StorageError(
                f"{target}: cannot write audio ({exc.strerror})"
            ) from exc
        return Speech(bytes_=len(audio), path=str(target))

    def probe(self) -> None:
        # GET /v1/voices/{voice_id} costs no credits and checks the two things a
        # synthesis needs besides quota: that the key is accepted and that the
        # configured voice exists (a wrong voice_id then shows in `health`, not as
        # a failed call per contact).
        self.request("GET", f"/v1/voices/{self._voice}")

    def _output_path(self, call_id: str) -> Path:
        # The call id names a file: it must not climb out of the output directory.
        if not call_id or Path(call_id).name != call_id or call_id in (".", ".."):
            raise InvalidPayload(
                self.name, "call id is not a plain file name", code="bad_call_id"
            )
        return self._output_dir / f"{call_id}.mp3"


def _write_atomically(target: Path, data: bytes) -> None:
    """Write through a temporary file, so a crash never leaves half an MP3."""
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".part")
    partial.write_bytes(data)
    os.replace(partial, target)
