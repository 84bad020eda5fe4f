"""A server that processes a transaction entry by entry (Medplum's router as Medplum's server runs it
for projects without the transaction-bundles feature): a failed entry inside an HTTP 200 is reported
with what was written, the server is remembered as non-atomic, and running the same request again
completes it without duplicating anything."""

from __future__ import annotations

import pytest

from fhircare.errors import PartialWrite
from fhircare.fhir import FhirClient
from fhircare.namespaces import Namespaces
from fhircare.workflows import run
from fhircare.workflows.plan import Planner
from tests.servers.medplum import MedplumServer
from tests.support.cases import basics, referral_payload
from tests.support.servers import versions


@pytest.fixture(scope="module")
def batch_server():
    with MedplumServer(transaction_as_batch=True) as server:
        yield server


def test_a_partial_write_is_reported_and_the_same_request_completes_it(batch_server, monkeypatch, uid):
    with FhirClient(batch_server.base_url) as client:
        b = basics(client, uid)
        payload = referral_payload(b, uid, care_plan=b["plan"], request_id=f"partial-{uid}")
        original = Planner.plan
        calls = []

        def plan_then_a_colleague_edits_the_plan(self, state, new_uuid=None):
            planned = original(self, state, new_uuid)
            if not calls:  # after the read, before the write: the If-Match entry will fail
                calls.append(1)
                plan = client.read_reference(b["plan"])
                client.update({**plan, "description": "edited meanwhile"})
            return planned

        monkeypatch.setattr(Planner, "plan", plan_then_a_colleague_edits_the_plan)
        with pytest.raises(PartialWrite) as partial:
            run("refer", payload, client)
        monkeypatch.undo()

        written = partial.value.written  # its Provenance withdrawn: the run did not happen as it would say
        assert sorted(r.split("/")[0] for r in written) == ["ServiceRequest", "Task"]
        assert "care_plan" in str(partial.value) and "Provenance was withdrawn" in str(partial.value)
        tag = {
            "_tag": Namespaces().token("request-id", f"partial-{uid}/provenance")
        }  # now or earlier systems
        assert list(client.search("Provenance", tag)) == []
        assert client.behaviour.atomic_transactions is False
        assert "activity" not in client.read_reference(b["plan"])

        done = run("refer", payload, client)  # the same request: completes, duplicates nothing
        plan = client.read_reference(b["plan"])
        assert [a["reference"]["reference"] for a in plan["activity"]] == [done.written[0]]
        assert done.written[0] in written and done.written[1] in written
        assert len(list(client.search("ServiceRequest", {"patient": b["patient"]}))) == 1
        assert len(list(client.search("Task", {"patient": b["patient"]}))) == 1
        assert [f"Provenance/{p['id']}" for p in client.search("Provenance", tag)] == [done.written[-1]]
        again = run("refer", payload, client)
        assert again.repeated and versions(client, b["plan"]) == 3  # created, edited, completed
