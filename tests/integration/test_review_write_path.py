"""Review of the lean write path (commits 58d2f18 and 3aa1893), on the real servers.

Tests marked ``xfail(strict=True)`` demonstrate a defect; the others guard what was found sound.
"""

from __future__ import annotations

import pytest

from fhircare.errors import UnresolvedReference
from fhircare.settings import Settings
from fhircare.workflows import run
from tests.support.cases import basics, referral_payload

UNCHECKED = Settings.from_env({"FHIRCARE_VERIFY_REFERENCES": "off"})


def test_a_reference_an_unchecked_run_named_is_still_checked_by_the_next_run(client, uid, fhir_server):
    b = basics(client, uid)
    ghost = f"Organization/ghost-{uid}"
    run(
        "refer",
        referral_payload(b, uid, performer=ghost, request_id=f"off-{uid}"),
        client,
        settings=UNCHECKED,
    )

    counts = fhir_server.resource_counts()
    with pytest.raises(UnresolvedReference):
        run("refer", referral_payload(b, uid, performer=ghost, request_id=f"on-{uid}"), client)
    assert fhir_server.resource_counts() == counts


def test_a_reference_a_checked_run_resolved_is_not_checked_again(client, uid):
    """Regression guard for the intended half of the change: what a checked run resolved stays literal."""
    b = basics(client, uid)
    first = run("refer", referral_payload(b, uid, request_id=f"a-{uid}"), client)
    assert b["org"] in client.known_references and first.written[0] in client.known_references
    bundle = run("refer", referral_payload(b, uid, request_id=f"b-{uid}"), client, dry_run=True).details[
        "bundle"
    ]
    text = str(bundle)
    assert f"Organization?_id={b['org'].split('/')[1]}" not in text and b["org"] in text
