"""Contacts: who the campaign calls."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Contact:
    """One valid row of the contacts file, its number normalised to E.164."""

    row: int
    phone: str
    contact_id: str
    name: str | None = None
    timezone: str | None = None
    #: Every other column of the row, offered to the LLM prompt as a variable.
    variables: dict[str, str] = field(default_factory=dict)


def mask_phone(phone: str) -> str:
    """A number safe to log: country code and last four digits, e.g. +1******4567."""
    if len(phone) <= 6:
        return "*" * len(phone)
    return phone[:2] + "*" * (len(phone) - 6) + phone[-4:]
