"""fhircare next to fhirclient and fhirpy, each written the way its documentation shows, on one server.

    python benchmarks/peers.py [--rounds 20] [--json benchmarks/peers-last-run.json]

The embedded server runs in its own process (``fhircare server start``), so this process's CPU time is
the client's alone and the server's is read from /proc. Variants run interleaved (round-robin, one
after the other in every round) so drift on a shared machine touches all of them alike. Requests are
counted at requests' HTTPAdapter, which all three libraries send through. Reported per variant:
median wall time, client CPU and server CPU per operation, requests per operation, and the ratio of
median wall times against fhircare. Figures are reported, never asserted.

- referral: a ServiceRequest, its fulfilment Task, a Provenance, and the CarePlan's new activity;
  ``idiomatic`` = one create/update per resource (fhirclient models, fhirpy resources),
  ``transaction`` = hand-written transaction with fhircare's guarantees (conditional creates on a
  request id, the CarePlan read then PUT with If-Match, a Provenance), 2 requests;
  ``transaction_lookup`` = the same, reading the plan and looking the request id's Provenance up in
  one batch first, as fhircare does (a repeat writes nothing even after the plan moved on), 2 requests;
- worklist: a coordinator's open Tasks with patient and focus (1,000 and 5,000 Tasks);
- summary: one patient's plan, goals, open tasks, appointments, coverage, communications, team, family;
- lost answer: each referral variant once through the fault proxy (tests/faults/proxy.py), which lets
  the server commit the variant's write and then drops its answer; the variant retries as its docs
  show (fhircare: its own client retries the idempotent transaction and the workflow finds the
  committed run; fhirclient and fhirpy have no retries of their own, so the caller runs the referral
  again), and what was written more than once is counted: ServiceRequests, Tasks, Provenances and
  CarePlan activities beyond one each.

``--cases referral lost-answer`` runs only those cases.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests.adapters
from fhirclient import client as fhirclient_client
from fhirclient.models.careplan import CarePlan as FcCarePlan
from fhirclient.models.provenance import Provenance as FcProvenance
from fhirclient.models.servicerequest import ServiceRequest as FcServiceRequest
from fhirclient.models.task import Task as FcTask
from fhirpy import SyncFHIRClient

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fhircare.fhir import FhirClient
from fhircare.fhir.behaviour import BehaviourStore
from fhircare.views.summary import patient_summary
from fhircare.views.worklist import OPEN_STATUSES, worklist
from fhircare.workflows import get_workflow
from tests.faults.proxy import FaultProxy
from tests.support.clock import at, day, today

HERE = Path(__file__).resolve().parent
FHIRCARE = str(Path(sys.executable).with_name("fhircare"))
TODAY = today()
BENCH = "urn:fhircare:bench"
TICKS = os.sysconf("SC_CLK_TCK")

# ---- measuring ------------------------------------------------------------------------------

SENT = [0]
_send = requests.adapters.HTTPAdapter.send


def _counting_send(self: Any, request: Any, **kwargs: Any) -> Any:
    SENT[0] += 1
    return _send(self, request, **kwargs)


requests.adapters.HTTPAdapter.send = _counting_send  # type: ignore[method-assign]


def server_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


class Tally:
    def __init__(self) -> None:
        self.wall: list[float] = []
        self.cpu: list[float] = []
        self.server: list[float] = []
        self.requests: list[int] = []

    def measure(self, pid: int, fn: Callable[[], Any]) -> Any:
        sent, server, cpu, wall = SENT[0], server_cpu(pid), time.process_time(), time.perf_counter()
        result = fn()
        self.wall.append(time.perf_counter() - wall)
        self.cpu.append(time.process_time() - cpu)
        self.server.append(server_cpu(pid) - server)
        self.requests.append(SENT[0] - sent)
        return result

    def summary(self) -> dict[str, float]:
        return {
            "ms": round(1000 * statistics.median(self.wall), 2),
            "client_cpu_ms": round(1000 * statistics.mean(self.cpu), 2),
            "server_cpu_ms": round(1000 * statistics.mean(self.server), 2),
            "requests": round(statistics.mean(self.requests), 2),
        }


def interleaved(
    rounds: int, pid: int, variants: dict[str, Callable[[int], Any]]
) -> dict[str, dict[str, float]]:
    tallies = {name: Tally() for name in variants}
    for fn in variants.values():
        fn(-1)  # warm-up, not counted: imports, compiled schemas, first connections
    for i in range(rounds):
        for name, fn in variants.items():
            tallies[name].measure(pid, lambda fn=fn, i=i: fn(i))
    results = {name: tally.summary() for name, tally in tallies.items()}
    base = results["fhircare"]["ms"]
    for result in results.values():
        result["wall_ratio_vs_fhircare"] = round(result["ms"] / base, 2)
    return results


# ---- the server and its data ------------------------------------------------------------------


def start_server() -> tuple[subprocess.Popen[str], str]:
    port = 18000 + os.getpid() % 2000
    process = subprocess.Popen(
        [FHIRCARE, "server", "start", "--port", str(port)], stdout=subprocess.PIPE, text=True
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    if "ready" not in line:
        process.kill()
        raise SystemExit(f"the server did not start: {line}")
    return process, f"http://127.0.0.1:{port}/fhir"


def make(client: FhirClient, resource: dict[str, Any]) -> str:
    created = client.create(resource)
    return f"{created['resourceType']}/{created['id']}"


def referral_world(client: FhirClient) -> dict[str, str]:
    patient = make(client, {"resourceType": "Patient", "name": [{"family": "Peer", "given": ["Ana"]}]})
    world = {
        "patient": patient,
        "coordinator": make(client, {"resourceType": "Practitioner", "name": [{"family": "Coord"}]}),
        "program": make(client, {"resourceType": "Organization", "name": "Program"}),
    }
    for variant in ("fhircare", "fhirclient", "fhirclient_tx", "fhirclient_txl", "fhirpy", "fhirpy_tx"):
        world[f"plan_{variant}"] = make(
            client,
            {
                "resourceType": "CarePlan",
                "status": "active",
                "intent": "plan",
                "subject": {"reference": patient},
            },
        )
    return world


def seed_tasks(client: FhirClient, count: int) -> str:
    owner = make(client, {"resourceType": "Practitioner", "name": [{"family": f"Owner{count}"}]})
    patients = [make(client, {"resourceType": "Patient", "name": [{"family": f"P{i}"}]}) for i in range(50)]
    orders = [
        make(
            client,
            {
                "resourceType": "ServiceRequest",
                "status": "active",
                "intent": "order",
                "subject": {"reference": p},
                "code": {"text": "Consult"},
            },
        )
        for p in patients
    ]
    for start in range(0, count, 500):
        entries = [
            {
                "resource": {
                    "resourceType": "Task",
                    "status": "requested",
                    "intent": "order",
                    "priority": "routine",
                    "for": {"reference": patients[i % 50]},
                    "focus": {"reference": orders[i % 50]},
                    "owner": {"reference": owner},
                    "authoredOn": at(-9, "09:00"),
                    "restriction": {"period": {"end": f"2026-06-{1 + i % 28:02d}"}},
                },
                "request": {"method": "POST", "url": "Task"},
            }
            for i in range(start, min(count, start + 500))
        ]
        client.transaction({"entry": entries})
    return owner


# ---- the referral -----------------------------------------------------------------------------


def referral_resources(
    world: dict[str, str], tag: str
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    request = {
        "resourceType": "ServiceRequest",
        "identifier": [{"system": BENCH, "value": f"{tag}/sr"}],
        "status": "active",
        "intent": "order",
        "category": [{"coding": [{"system": "http://snomed.info/sct", "code": "3457005"}]}],
        "code": {
            "coding": [{"system": "http://snomed.info/sct", "code": "385804009"}],
            "text": "Diabetes education",
        },
        "subject": {"reference": world["patient"]},
        "requester": {"reference": world["coordinator"]},
        "performer": [{"reference": world["program"]}],
        "authoredOn": at(0, "09:00"),
    }
    task = {
        "resourceType": "Task",
        "identifier": [{"system": BENCH, "value": f"{tag}/task"}],
        "status": "requested",
        "intent": "order",
        "code": {"coding": [{"system": "http://hl7.org/fhir/CodeSystem/task-code", "code": "fulfill"}]},
        "for": {"reference": world["patient"]},
        "requester": {"reference": world["coordinator"]},
        "owner": {"reference": world["program"]},
        "authoredOn": at(0, "09:00"),
    }
    provenance = {
        "resourceType": "Provenance",
        "recorded": at(0, "09:00"),
        "agent": [{"who": {"reference": world["coordinator"]}}],
    }
    return request, task, provenance


def fhircare_referral(world: dict[str, str], plan: str) -> dict[str, Any]:
    """The referral as a fhircare ``refer`` payload, into ``plan``."""
    return {
        "patient": world["patient"],
        "service": "diabetes-education",
        "performer": world["program"],
        "requester": world["coordinator"],
        "reason": "diabetes",
        "priority": "routine",
        "due": day(174),
        "care_plan": plan,
    }


def fhirclient_referral(server: Any, world: dict[str, str], plan_ref: str, tag: str) -> None:
    request_json, task_json, provenance_json = referral_resources(world, tag)
    created = FcServiceRequest(request_json).create(server)
    request_ref = f"ServiceRequest/{created['id']}"
    task_json["focus"] = {"reference": request_ref}
    task = FcTask(task_json).create(server)
    plan = FcCarePlan.read(plan_ref.split("/")[1], server)
    activity = [*plan.as_json().get("activity", []), {"reference": {"reference": request_ref}}]
    plan = FcCarePlan({**plan.as_json(), "activity": activity})
    plan.update(server)
    provenance_json["target"] = [
        {"reference": request_ref},
        {"reference": f"Task/{task['id']}"},
        {"reference": plan_ref},
    ]
    FcProvenance(provenance_json).create(server)


def fhirpy_referral(client: SyncFHIRClient, world: dict[str, str], plan_ref: str, tag: str) -> None:
    request_json, task_json, provenance_json = referral_resources(world, tag)
    request = client.resource(
        "ServiceRequest", **{k: v for k, v in request_json.items() if k != "resourceType"}
    )
    request.save()
    task_json["focus"] = {"reference": f"ServiceRequest/{request.id}"}
    task = client.resource("Task", **{k: v for k, v in task_json.items() if k != "resourceType"})
    task.save()
    plan = client.reference(reference=plan_ref).to_resource()
    plan["activity"] = [
        *(plan.get("activity") or []),
        {"reference": {"reference": f"ServiceRequest/{request.id}"}},
    ]
    plan.save()
    provenance_json["target"] = [
        {"reference": f"ServiceRequest/{request.id}"},
        {"reference": f"Task/{task.id}"},
        {"reference": plan_ref},
    ]
    client.resource("Provenance", **{k: v for k, v in provenance_json.items() if k != "resourceType"}).save()


def referral_transaction(world: dict[str, str], plan: dict[str, Any], tag: str) -> dict[str, Any]:
    """The hand-written transaction with fhircare's guarantees: nothing created twice on a retry."""
    request, task, provenance = referral_resources(world, tag)
    ids = {name: f"urn:uuid:{uuid.uuid4()}" for name in ("sr", "task", "prov")}
    task["focus"] = {"reference": ids["sr"]}
    plan = {**plan, "activity": [*(plan.get("activity") or []), {"reference": {"reference": ids["sr"]}}]}
    provenance["target"] = [
        {"reference": ids["sr"]},
        {"reference": ids["task"]},
        {"reference": f"CarePlan/{plan['id']}"},
    ]
    version = plan["meta"]["versionId"]

    def post(key: str, resource: dict[str, Any], value: str) -> dict[str, Any]:
        return {
            "fullUrl": ids[key],
            "resource": resource,
            "request": {
                "method": "POST",
                "url": resource["resourceType"],
                "ifNoneExist": f"identifier={BENCH}|{value}",
            },
        }

    return {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            post("sr", request, f"{tag}/sr"),
            post("task", task, f"{tag}/task"),
            {
                "fullUrl": f"CarePlan/{plan['id']}",
                "resource": plan,
                "request": {"method": "PUT", "url": f"CarePlan/{plan['id']}", "ifMatch": f'W/"{version}"'},
            },
            {
                "fullUrl": ids["prov"],
                "resource": {**provenance, "meta": {"tag": [{"system": BENCH, "code": f"{tag}/prov"}]}},
                "request": {"method": "POST", "url": "Provenance", "ifNoneExist": f"_tag={BENCH}|{tag}/prov"},
            },
        ],
    }


def bench_referral(base: str, pid: int, rounds: int) -> dict[str, Any]:
    setup = FhirClient(base)
    world = referral_world(setup)
    client = FhirClient(base)
    workflow = get_workflow("refer", client)
    smart = fhirclient_client.FHIRClient(settings={"app_id": "bench", "api_base": base})
    fp = SyncFHIRClient(base)
    run_id = uuid.uuid4().hex[:8]
    payload = fhircare_referral(world, world["plan_fhircare"])

    def fhirclient_tx(i: int) -> None:
        plan = smart.server.request_json(world["plan_fhirclient_tx"])
        smart.server.post_json("", referral_transaction(world, plan, f"{run_id}-fctx-{i}"))

    def fhirclient_tx_lookup(i: int) -> None:
        """As fhirclient_tx, with fhircare's request-id lookup: the plan and the request id's
        Provenance read in one batch first; nothing is written when that Provenance exists."""
        tag = f"{run_id}-fctxl-{i}"
        reads = {
            "resourceType": "Bundle",
            "type": "batch",
            "entry": [
                {"request": {"method": "GET", "url": world["plan_fhirclient_txl"]}},
                {"request": {"method": "GET", "url": f"Provenance?_tag={BENCH}|{tag}/prov"}},
            ],
        }
        answer = smart.server.post_json("", reads).json()
        if (answer["entry"][1].get("resource") or {}).get("entry"):
            return
        smart.server.post_json("", referral_transaction(world, answer["entry"][0]["resource"], tag))

    def fhirpy_tx(i: int) -> None:
        plan = fp.execute(world["plan_fhirpy_tx"], method="get")
        fp.execute("", method="post", data=referral_transaction(world, plan, f"{run_id}-fptx-{i}"))

    return interleaved(
        rounds,
        pid,
        {
            "fhircare": lambda i: workflow.run({**payload, "request_id": f"{run_id}-fc-{i}"}),
            "fhirclient": lambda i: fhirclient_referral(
                smart.server, world, world["plan_fhirclient"], f"{run_id}-fcl-{i}"
            ),
            "fhirclient_transaction": fhirclient_tx,
            "fhirclient_transaction_lookup": fhirclient_tx_lookup,
            "fhirpy": lambda i: fhirpy_referral(fp, world, world["plan_fhirpy"], f"{run_id}-fp-{i}"),
            "fhirpy_transaction": fhirpy_tx,
        },
    )


# ---- the lost answer --------------------------------------------------------------------------


def _written_once_more(setup: FhirClient, patient: str, plan: str) -> dict[str, int]:
    """What a patient's one referral left behind (each should be 1)."""
    counted = {
        "ServiceRequest": len(list(setup.search("ServiceRequest", [("subject", patient)]))),
        "Task": len(list(setup.search("Task", [("patient", patient)]))),
        "Provenance": len(list(setup.search("Provenance", [("target", plan)]))),
        "activity": len(setup.read_reference(plan).get("activity") or []),
    }
    return counted


def _retried(operation: Callable[[], Any], attempts: int = 3) -> int:
    """Run ``operation`` as a caller without a client-side retry would: again after a failure."""
    for attempt in range(1, attempts + 1):
        try:
            operation()
        except Exception:  # the caller retries whatever failed: neither library retries on its own
            if attempt == attempts:
                raise
            continue
        return attempt
    return attempts


def bench_lost_answer(base: str) -> dict[str, Any]:
    """Every referral variant once with the answer of its write dropped after the server committed."""
    setup = FhirClient(base)
    results: dict[str, Any] = {}
    with FaultProxy(base) as proxy:
        proxied = proxy.base_url
        client = FhirClient(proxied, behaviour_store=BehaviourStore(None), backoff_factor=0)
        workflow = get_workflow("refer", client)
        smart = fhirclient_client.FHIRClient(settings={"app_id": "bench", "api_base": proxied})
        fp = SyncFHIRClient(proxied)
        run_id = uuid.uuid4().hex[:8]

        def world_for(variant: str) -> dict[str, str]:
            world = referral_world(setup)
            world["plan"] = world[f"plan_{variant}"]
            return world

        def fhircare_once(world: dict[str, str], tag: str) -> None:
            workflow.run({**fhircare_referral(world, world["plan"]), "request_id": tag})

        def fhirclient_tx_once(world: dict[str, str], tag: str) -> None:
            plan = smart.server.request_json(world["plan"])
            smart.server.post_json("", referral_transaction(world, plan, tag))

        def fhirpy_tx_once(world: dict[str, str], tag: str) -> None:
            plan = fp.execute(world["plan"], method="get")
            fp.execute("", method="post", data=referral_transaction(world, plan, tag))

        # (variant, one referral, POSTs before its first write: fhircare reads the plan in a batch)
        variants: list[tuple[str, str, Callable[[dict[str, str], str], None], int]] = [
            ("fhircare", "fhircare", fhircare_once, 1),
            (
                "fhirclient",
                "fhirclient",
                lambda w, t: fhirclient_referral(smart.server, w, w["plan"], t),
                0,
            ),
            ("fhirclient_transaction", "fhirclient_tx", fhirclient_tx_once, 0),
            ("fhirpy", "fhirpy", lambda w, t: fhirpy_referral(fp, w, w["plan"], t), 0),
            ("fhirpy_transaction", "fhirpy_tx", fhirpy_tx_once, 0),
        ]
        for name, key, once, skip in variants:
            once(world_for(key), f"{run_id}-warm-{key}")  # connections and probes, not faulted
            world = world_for(key)
            proxy.clear()
            proxy.inject("drop", method="POST", times=1, skip=skip)
            attempts = _retried(lambda once=once, world=world, key=key: once(world, f"{run_id}-lost-{key}"))
            dropped = sum(1 for _, _, what in proxy.log.seen if what == "drop")
            counted = _written_once_more(setup, world["patient"], world["plan"])
            results[name] = {
                "answers_dropped": dropped,
                "caller_attempts": attempts,
                "written": counted,
                "duplicates": sum(max(0, n - 1) for n in counted.values()),
            }
    return results


# ---- the worklist -----------------------------------------------------------------------------


def _label(resource: dict[str, Any] | None) -> str:
    if not resource:
        return ""
    if resource.get("resourceType") == "Patient":
        name = (resource.get("name") or [{}])[0]
        return f"{' '.join(name.get('given') or [])} {name.get('family', '')}".strip()
    return str((resource.get("code") or {}).get("text", ""))


def _rows(tasks: list[dict[str, Any]], related: dict[str, dict[str, Any]]) -> list[tuple[str, str, str, str]]:
    rows = [
        (
            str(((t.get("restriction") or {}).get("period") or {}).get("end", "")),
            t["id"],
            _label(related.get((t.get("for") or {}).get("reference", ""))),
            _label(related.get((t.get("focus") or {}).get("reference", ""))),
        )
        for t in tasks
    ]
    return sorted(rows)


def fhirclient_worklist(server: Any, owner: str) -> list[tuple[str, str, str, str]]:
    search = FcTask.where(
        struct={
            "owner": owner,
            "status": ",".join(OPEN_STATUSES),
            "_count": "100",
            "_include": "Task:patient",
        }
    ).include("focus")
    tasks, related = [], {}
    for resource in search.perform_resources_iter(server):
        data = resource.as_json()
        if data["resourceType"] == "Task":
            tasks.append(data)
        else:
            related[f"{data['resourceType']}/{data['id']}"] = data
    return _rows(tasks, related)


def fhirpy_worklist(client: SyncFHIRClient, owner: str) -> list[tuple[str, str, str, str]]:
    tasks = [
        dict(t)
        for t in client.resources("Task").search(owner=owner, status=",".join(OPEN_STATUSES)).limit(100)
    ]
    related: dict[str, dict[str, Any]] = {}
    for rtype, element in (("Patient", "for"), ("ServiceRequest", "focus")):
        ids = sorted({t[element]["reference"].split("/")[1] for t in tasks if t.get(element)})
        for resource in client.resources(rtype).search(_id=",".join(ids)).limit(100):
            related[f"{rtype}/{resource.id}"] = dict(resource)
    return _rows(tasks, related)


def bench_worklist(base: str, pid: int, count: int, rounds: int) -> dict[str, Any]:
    owner = seed_tasks(FhirClient(base), count)
    client = FhirClient(base)
    client.capabilities()
    smart = fhirclient_client.FHIRClient(settings={"app_id": "bench", "api_base": base})
    fp = SyncFHIRClient(base)
    results = interleaved(
        rounds,
        pid,
        {
            "fhircare": lambda i: worklist(client, owners=[owner], today=TODAY),
            "fhirclient": lambda i: fhirclient_worklist(smart.server, owner),
            "fhirpy": lambda i: fhirpy_worklist(fp, owner),
        },
    )
    rows = {len(worklist(client, owners=[owner], today=TODAY)), len(fhirclient_worklist(smart.server, owner))}
    results["rows"] = {"each": rows.pop() if len(rows) == 1 else -1}
    return results


# ---- the patient summary ----------------------------------------------------------------------

SUMMARY_SEARCHES = [
    ("CarePlan", {"patient": "{p}", "status": "active,draft,on-hold"}),
    ("Goal", {"patient": "{p}"}),
    ("Task", {"patient": "{p}", "status": ",".join(OPEN_STATUSES), "_count": "100"}),
    ("Appointment", {"patient": "{p}", "_sort": "date", "_count": "100"}),
    ("Coverage", {"beneficiary": "{p}"}),
    ("Communication", {"patient": "{p}", "_sort": "-sent", "_count": "10"}),
    ("CareTeam", {"patient": "{p}", "status": "active"}),
    ("RelatedPerson", {"patient": "{p}"}),
]


def fhirclient_summary(server: Any, patient: str) -> dict[str, Any]:
    from fhirclient.models import fhirsearch
    from fhirclient.models.patient import Patient as FcPatient

    found: dict[str, Any] = {"patient": FcPatient.read(patient.split("/")[1], server).as_json()}
    for rtype, params in SUMMARY_SEARCHES:
        model = __import__(f"fhirclient.models.{rtype.lower()}", fromlist=[rtype])
        search = fhirsearch.FHIRSearch(
            getattr(model, rtype), {k: v.format(p=patient) for k, v in params.items()}
        )
        found[rtype] = [r.as_json() for r in search.perform_resources_iter(server)]
    return found


def fhirpy_summary(client: SyncFHIRClient, patient: str) -> dict[str, Any]:
    found: dict[str, Any] = {"patient": dict(client.reference(reference=patient).to_resource())}
    for rtype, params in SUMMARY_SEARCHES:
        found[rtype] = [
            dict(r)
            for r in client.resources(rtype).search(**{k: v.format(p=patient) for k, v in params.items()})
        ]
    return found


def bench_summary(base: str, pid: int, rounds: int) -> dict[str, Any]:
    from fhircare.workflows import run

    setup = FhirClient(base)
    coordinator = make(setup, {"resourceType": "Practitioner", "name": [{"family": "Coord"}]})
    enrolled = run(
        "enroll",
        {
            "patient": {
                "identifier": {"system": f"{BENCH}:mrn", "value": uuid.uuid4().hex[:10]},
                "name": {"given": ["Ana"], "family": "Summary"},
                "birthDate": "1950-02-03",
                "gender": "female",
            },
            "coordinator": coordinator,
            "family": [
                {"name": {"given": ["Luis"], "family": "Summary"}, "relationship": "SON", "phone": "555-0100"}
            ],
            "plan_title": "Care coordination plan",
        },
        setup,
    ).written
    patient = next(r for r in enrolled if r.startswith("Patient/"))
    program = make(setup, {"resourceType": "Organization", "name": "Program"})
    run(
        "refer",
        {
            "patient": patient,
            "service": "diabetes-education",
            "performer": program,
            "requester": coordinator,
            "reason": "diabetes",
            "priority": "routine",
            "due": day(174),
        },
        setup,
    )
    client = FhirClient(base)
    smart = fhirclient_client.FHIRClient(settings={"app_id": "bench", "api_base": base})
    fp = SyncFHIRClient(base)
    return interleaved(
        rounds,
        pid,
        {
            "fhircare": lambda i: patient_summary(client, patient),
            "fhirclient": lambda i: fhirclient_summary(smart.server, patient),
            "fhirpy": lambda i: fhirpy_summary(fp, patient),
        },
    )


# ---- report -----------------------------------------------------------------------------------


def render_lost(results: dict[str, Any]) -> str:
    lines = [
        ["variant", "answers dropped", "caller attempts", "duplicates", "written (SR, Task, Prov, activity)"]
    ]
    for name, r in results.items():
        w = r["written"]
        lines.append(
            [
                name,
                str(r["answers_dropped"]),
                str(r["caller_attempts"]),
                str(r["duplicates"]),
                f"{w['ServiceRequest']}, {w['Task']}, {w['Provenance']}, {w['activity']}",
            ]
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)) for line in lines)


def render(results: dict[str, Any]) -> str:
    lines = [
        [
            "case",
            "variant",
            "requests",
            "ms (median)",
            "client CPU ms",
            "server CPU ms",
            "wall ratio vs fhircare",
        ]
    ]
    for case, variants in results.items():
        if case == "lost answer":
            continue
        for name, r in variants.items():
            if "ms" not in r:
                continue
            lines.append(
                [
                    case,
                    name,
                    str(r["requests"]),
                    str(r["ms"]),
                    str(r["client_cpu_ms"]),
                    str(r["server_cpu_ms"]),
                    str(r["wall_ratio_vs_fhircare"]),
                ]
            )
    widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)) for line in lines)


CASES = {
    "referral": "referral",
    "worklist 1k": "worklist-1k",
    "worklist 5k": "worklist-5k",
    "summary": "summary",
    "lost answer": "lost-answer",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=20, help="rounds of the referral and summary")
    parser.add_argument("--worklist-rounds", type=int, default=5)
    parser.add_argument("--json", type=Path, default=HERE / "peers-last-run.json")
    parser.add_argument(
        "--cases", nargs="*", choices=list(CASES.values()), default=list(CASES.values()), help="default: all"
    )
    args = parser.parse_args()
    process, base = start_server()
    cases: dict[str, Callable[[], dict[str, Any]]] = {
        "referral": lambda: bench_referral(base, process.pid, args.rounds),
        "worklist 1k": lambda: bench_worklist(base, process.pid, 1000, args.worklist_rounds),
        "worklist 5k": lambda: bench_worklist(base, process.pid, 5000, max(args.worklist_rounds // 2, 2)),
        "summary": lambda: bench_summary(base, process.pid, args.rounds),
        "lost answer": lambda: bench_lost_answer(base),
    }
    try:
        results = {case: run() for case, run in cases.items() if CASES[case] in args.cases}
    finally:
        process.terminate()
        process.wait(20)
    print(render(results))
    if "lost answer" in results:
        print("\nlost answer (the server committed, the answer was dropped, the variant retried):")
        print(render_lost(results["lost answer"]))
    args.json.write_text(json.dumps({"command": " ".join(sys.argv), "results": results}, indent=2) + "\n")
    print(f"\nwritten to {args.json}")


if __name__ == "__main__":
    main()
