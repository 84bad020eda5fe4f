"""fhircare through Debian's nginx in front of the embedded server: the server's next links name its
inner address (the proxy passes the upstream Host), and fhircare re-bases them onto the proxy's."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from fhircare.fhir import FhirClient
from fhircare.views.summary import patient_summary
from fhircare.views.worklist import worklist
from fhircare.workflows import run
from tests.servers import nginx
from tests.support.clock import day

FHIRCARE = str(Path(sys.executable).with_name("fhircare"))

pytestmark = [
    pytest.mark.embedded_only,
    pytest.mark.skipif(
        not nginx.available(), reason="nginx is not installed (scripts/system-deps.sh installs it)"
    ),
]


@pytest.fixture(scope="module")
def proxied(fhir_server):
    inner = urlsplit(fhir_server.base_url)
    with nginx.NginxProxy(inner.netloc, inner.path) as proxy:
        yield proxy


def test_the_server_behind_the_proxy_names_its_inner_address_in_next_links(proxied, fhir_server, uid):
    with FhirClient(proxied.base_url) as client:
        for _ in range(3):
            client.create({"resourceType": "Basic", "code": {"text": uid}})
        page = next(client.search("Basic", {"code:text": uid, "_count": 1}).pages())
    assert page.next_url and page.next_url.startswith(fhir_server.base_url)  # the premise of this module


def test_a_worklist_of_1000_tasks_pages_through_the_proxy(proxied, fhir_server, server_requests, uid):
    with FhirClient(proxied.base_url) as client:
        patient = client.create({"resourceType": "Patient", "name": [{"given": ["Ines"], "family": "Proxy"}]})
        owner = client.create({"resourceType": "Practitioner", "name": [{"family": f"Owner{uid}"}]})
        task = {
            "resourceType": "Task",
            "status": "requested",
            "intent": "order",
            "for": {"reference": f"Patient/{patient['id']}"},
            "owner": {"reference": f"Practitioner/{owner['id']}"},
            "description": "Call back",
        }
        client.transaction(
            {"entry": [{"resource": task, "request": {"method": "POST", "url": "Task"}}] * 1000}
        )
        client.include_works("Task", "Task:focus")  # learned once per server, not the view's cost
        before = server_requests()
        rows = worklist(client, owners=[f"Practitioner/{owner['id']}"], page_size=100)
    assert len({r.task for r in rows}) == 1000
    assert all(r.patient_name == "Ines Proxy" for r in rows)
    assert server_requests() - before == 10  # every page, each through the proxy


def test_a_workflow_and_the_summary_work_through_the_proxy(proxied, uid):
    with FhirClient(proxied.base_url) as client:
        patient = client.create({"resourceType": "Patient", "name": [{"given": ["Ines"], "family": "Proxy"}]})
        coordinator = client.create({"resourceType": "Practitioner", "name": [{"family": "Coord"}]})
        program = client.create({"resourceType": "Organization", "name": "Program"})
        result = run(
            "refer",
            {
                "patient": f"Patient/{patient['id']}",
                "service": "diabetes-education",
                "performer": f"Organization/{program['id']}",
                "requester": f"Practitioner/{coordinator['id']}",
                "reason": "diabetes",
                "priority": "routine",
                "due": day(17),
                "request_id": f"proxy-{uid}",
            },
            client,
        )
        summary = patient_summary(client, f"Patient/{patient['id']}")
    assert [r.split("/")[0] for r in result.written] == ["ServiceRequest", "Task", "Provenance"]
    assert summary.name == "Ines Proxy"
    assert [t["reference"] for t in summary.open_tasks] == [result.written[1]]


def test_the_demo_runs_through_the_proxy(proxied):
    answer = subprocess.run(
        [FHIRCARE, "demo", "--patients", "12", "--seed", "5", "--base", proxied.base_url],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert answer.returncode == 0, answer.stderr
    assert "Seeded 12 patients" in answer.stdout
    assert "== Worklist of" in answer.stdout and "== Caseload ==" in answer.stdout
