"""The email channel: one message per notification over SMTP.

A connection is opened per notification and closed once it is sent: alerts are rare,
and a connection held open between them would only go stale. SMTP replies map onto
the taxonomy by their class (RFC 5321 section 4.2.1): 4xx is a transient refusal
worth retrying, 5xx a permanent one.
"""

from __future__ import annotations

import smtplib
import ssl
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

from callagent.alerts.model import Notification
from callagent.alerts.render import plain_text
from callagent.clock import Clock, SystemClock
from callagent.errors import (
    AuthenticationFailed,
    InvalidPayload,
    NetworkError,
    PermanentError,
    ServiceError,
    ServiceTimeout,
    ServiceUnavailable,
)
from callagent.settings import EmailChannel as EmailConfig


class SmtpChannel:
    """Sends notifications as email through an SMTP server."""

    name = "email"
    mode = "live"

    def __init__(
        self,
        config: EmailConfig,
        *,
        login: tuple[str, str] | None = None,
        clock: Clock | None = None,
    ) -> None:
        self._config = config
        self._login = login
        # The Date header is a fact about the wire, so it is real time even when the
        # campaign runs on a virtual clock; the body carries the event's own time.
        self._clock = clock if clock is not None else SystemClock()

    @property
    def send_resolved(self) -> bool:
        return self._config.send_resolved

    def send(self, notification: Notification) -> None:
        message = self.compose(notification)
        try:
            with self._connect() as smtp:
                if self._login is not None:
                    smtp.login(*self._login)
                smtp.send_message(message)
        except (smtplib.SMTPException, OSError) as exc:
            raise self._classify(exc) from exc

    def compose(self, notification: Notification) -> EmailMessage:
        """The message as it goes out: subject is the title, body the text."""
        config = self._config
        domain = config.sender.rpartition("@")[2] or "localhost"
        message = EmailMessage()
        message["From"] = config.sender
        message["To"] = ", ".join(config.recipients)
        message["Subject"] = notification.title
        message["Date"] = format_datetime(self._clock.now())
        message["Message-ID"] = make_msgid(domain=domain)
        message.set_content(plain_text(notification))
        return message

    def close(self) -> None:
        return None

    def _connect(self) -> smtplib.SMTP:
        config = self._config
        if config.security == "tls":
            return smtplib.SMTP_SSL(
                config.host,
                config.port,
                timeout=config.timeout_s,
                context=ssl.create_default_context(),
            )
        smtp = smtplib.SMTP(config.host, config.port, timeout=config.timeout_s)
        if config.security == "starttls":
            try:
                smtp.starttls(context=ssl.create_default_context())
            except BaseException:
                smtp.close()
                raise
        return smtp

    def _classify(self, exc: Exception) -> ServiceError:
        if isinstance(exc, smtplib.SMTPException):
            return _smtp_error(self.name, exc)
        if isinstance(exc, ssl.SSLError):
            # A certificate or protocol mismatch (TLS on a plain port, say) is set-up,
            # not bad luck: retrying meets the same server.
            reason = exc.reason or str(exc)
            return PermanentError(self.name, f"TLS failed: {reason}", code="tls")
        if isinstance(exc, TimeoutError):
            return ServiceTimeout(self.name, "no answer in time", code="timeout")
        kind = type(exc).__name__
        return NetworkError(self.name, f"{kind}: {exc}", code="network")


def _smtp_error(channel: str, exc: smtplib.SMTPException) -> ServiceError:
    if isinstance(exc, smtplib.SMTPAuthenticationError):
        return AuthenticationFailed(
            channel, f"login refused: {_reply(exc)}", code=str(exc.smtp_code)
        )
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        refused = ", ".join(sorted(exc.recipients))
        return InvalidPayload(channel, f"every recipient refused: {refused}")
    if isinstance(exc, smtplib.SMTPServerDisconnected):
        # smtplib reports a read that timed out as a disconnection.
        if isinstance(exc.__context__, TimeoutError):
            return ServiceTimeout(channel, "no answer in time", code="timeout")
        return NetworkError(channel, f"server closed the connection: {exc}")
    if isinstance(exc, smtplib.SMTPResponseException):
        return _by_reply_code(channel, exc)
    # STARTTLS or AUTH missing on the server, no common login method: set-up.
    return PermanentError(channel, str(exc))


def _by_reply_code(channel: str, exc: smtplib.SMTPResponseException) -> ServiceError:
    code = exc.smtp_code
    message = f"server replied {code}: {_reply(exc)}"
    if 400 <= code < 500:
        return ServiceUnavailable(channel, message, code=str(code))
    if isinstance(exc, smtplib.SMTPSenderRefused | smtplib.SMTPDataError):
        return InvalidPayload(channel, message, code=str(code))
    return PermanentError(channel, message, code=str(code))


def _reply(exc: smtplib.SMTPResponseException) -> str:
    reply = exc.smtp_error
    text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)
    return " ".join(text.split())
