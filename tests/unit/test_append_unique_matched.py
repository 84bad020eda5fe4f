"""An update's ``append_unique`` and what an earlier attempt with the same request id left written:
the entry's ``urn:uuid`` is not appended when the element already names the resource its conditional
create will match (the re-run an incomplete undo advises)."""

from __future__ import annotations

from fhircare.mapping.engine import BuildContext
from fhircare.mapping.updates import entry_lookups, matched_entries, plan_updates
from fhircare.namespaces import REQUEST_ID, Namespaces

MAPPING = {
    "workflow": "refer",
    "updates": [
        {
            "name": "care_plan",
            "target": "care_plan",
            "type": "CarePlan",
            "patch": [{"append_unique": "activity", "value": {"reference": {"$entry": "referral"}}}],
        }
    ],
    "entries": [
        {"name": "referral", "resource": {"resourceType": "ServiceRequest"}},
        {"name": "need", "each": "needs", "resource": {"resourceType": "Condition"}},
    ],
}
PLAN = {
    "resourceType": "CarePlan",
    "id": "p",
    "activity": [{"reference": {"reference": "ServiceRequest/sr1"}}],
}


def _ctx(payload: dict) -> BuildContext:
    ctx = BuildContext(payload, {}, "r1")
    ctx.entry_urls["referral"] = ["urn:uuid:new"]
    return ctx


def test_the_activity_an_earlier_attempt_added_is_not_added_again():
    (update,) = plan_updates(
        MAPPING,
        _ctx({"care_plan": "CarePlan/p"}),
        {"CarePlan/p": PLAN},
        {"urn:uuid:new": "ServiceRequest/sr1"},
    )
    assert update.resource["activity"] == PLAN["activity"]


def test_a_new_referral_is_still_added():
    (update,) = plan_updates(
        MAPPING,
        _ctx({"care_plan": "CarePlan/p"}),
        {"CarePlan/p": PLAN},
        {"urn:uuid:new": "ServiceRequest/sr2"},
    )
    assert [a["reference"]["reference"] for a in update.resource["activity"]] == [
        "ServiceRequest/sr1",
        "urn:uuid:new",
    ]


def test_the_lookup_searches_only_what_an_update_appends_and_maps_it_back():
    namespaces = Namespaces()
    (search,) = entry_lookups(MAPPING, {"care_plan": "CarePlan/p", "needs": [1, 2]}, "r1", namespaces)
    assert search.startswith("ServiceRequest?identifier=") and "r1/referral" in search
    assert entry_lookups(MAPPING, {"needs": [1]}, "r1", namespaces) == []  # no plan named: no update
    stamp = {"system": namespaces.system(REQUEST_ID), "value": "r1/referral"}
    found = {"resourceType": "ServiceRequest", "id": "sr1", "identifier": [stamp]}
    bundle = {"resourceType": "Bundle", "type": "searchset", "entry": [{"resource": found}]}
    assert matched_entries("r1", [bundle], namespaces) == {"referral": "ServiceRequest/sr1"}
