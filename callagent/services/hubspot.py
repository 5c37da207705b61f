"""HubSpot as the CRM: contacts found by phone, outcomes logged as call records."""

from __future__ import annotations

from datetime import UTC
from typing import Any

from callagent.clock import Clock
from callagent.contacts import Contact
from callagent.services.base import CallOutcome, CrmRecord
from callagent.services.classify import classify_hubspot
from callagent.services.http import HttpService, malformed, require_json
from callagent.settings import ServiceSettings

#: Contact properties read for the script; HubSpot returns only those asked for.
PROPERTIES = ("firstname", "lastname", "email", "company", "lifecyclestage", "phone")
#: HubSpot's own association type for "call to contact".
CALL_TO_CONTACT = 194
#: Our dispositions in HubSpot's hs_call_status vocabulary.
CALL_STATUS = {
    "answered": "COMPLETED",
    "completed": "COMPLETED",
    "no_answer": "NO_ANSWER",
    "busy": "BUSY",
    "failed": "FAILED",
    "canceled": "CANCELED",
}


class HubSpotCrm(HttpService):
    """The CRM API under ``{base_url}/crm/v3``, with a private app's bearer token."""

    def __init__(
        self, name: str, settings: ServiceSettings, clock: Clock, token: str
    ) -> None:
        super().__init__(
            name,
            "hubspot",
            settings,
            clock,
            headers={"Authorization": f"Bearer {token}"},
            classify=classify_hubspot,
            secrets=(token,),
        )

    def lookup(self, contact: Contact) -> CrmRecord:
        response = self.request(
            "POST", "/crm/v3/objects/contacts/search", json=search_by_phone(contact)
        )
        body = require_json(self.name, response)
        results = body.get("results")
        if not isinstance(results, list):
            raise malformed(self.name, response.status_code)
        # Nobody with this number in the CRM is an answer, not a failure: the call
        # goes ahead with what the contacts file says.
        if not results:
            return CrmRecord(crm_id=None, properties={})

        found = results[0] if isinstance(results[0], dict) else {}
        crm_id = found.get("id")
        if not isinstance(crm_id, (str, int)):
            raise malformed(self.name, response.status_code)
        properties = found.get("properties")
        return CrmRecord(crm_id=str(crm_id), properties=_strings(properties))

    def record_outcome(
        self, contact: Contact, record: CrmRecord, outcome: CallOutcome
    ) -> None:
        # A call record (engagement) rather than a contact update: it lands on the
        # contact's timeline as one entry per call, keeps every attempt's history,
        # overwrites no property the sales team owns, and works for a number the
        # CRM does not know (left unassociated, with the number dialled).
        self.request(
            "POST",
            "/crm/v3/objects/calls",
            json=self._call_record(contact, record, outcome),
        )

    def probe(self) -> None:
        # One contact, no properties: the cheapest read, and it needs the same
        # crm.objects.contacts.read scope a lookup needs.
        self.request("GET", "/crm/v3/objects/contacts", params={"limit": "1"})

    def _call_record(
        self, contact: Contact, record: CrmRecord, outcome: CallOutcome
    ) -> dict[str, Any]:
        when = self._clock.now().astimezone(UTC)
        properties = {
            "hs_timestamp": when.isoformat(timespec="milliseconds").replace(
                "+00:00", "Z"
            ),
            "hs_call_title": f"callagent {outcome.call_id}",
            "hs_call_body": outcome.summary,
            "hs_call_direction": "OUTBOUND",
            "hs_call_status": CALL_STATUS.get(outcome.disposition, "COMPLETED"),
            "hs_call_to_number": contact.phone,
        }
        payload: dict[str, Any] = {"properties": properties}
        if record.crm_id is not None:
            payload["associations"] = [
                {
                    "to": {"id": record.crm_id},
                    "types": [
                        {
                            "associationCategory": "HUBSPOT_DEFINED",
                            "associationTypeId": CALL_TO_CONTACT,
                        }
                    ],
                }
            ]
        return payload


def search_by_phone(contact: Contact) -> dict[str, Any]:
    """A search for the number in ``phone`` or ``mobilephone``.

    Filter groups are ORed by HubSpot's search API, the filters inside one ANDed.
    """
    groups = [
        {"filters": [{"propertyName": name, "operator": "EQ", "value": contact.phone}]}
        for name in ("phone", "mobilephone")
    ]
    return {"filterGroups": groups, "properties": list(PROPERTIES), "limit": 1}


def _strings(properties: object) -> dict[str, str]:
    # HubSpot sends unset properties as null.
    if not isinstance(properties, dict):
        return {}
    return {
        str(key): str(value) for key, value in properties.items() if value is not None
    }
