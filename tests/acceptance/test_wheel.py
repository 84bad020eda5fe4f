"""A built wheel works away from the source tree: it carries the mappings, profiles and rules it reads."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.support.cases import CASES

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def installed_wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(out),
            str(REPO),
        ],
        check=True,
        timeout=300,
    )
    (wheel,) = out.glob("fhircare-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for workflow in ("refer", "enroll", "task"):
        assert f"fhircare/_data/mappings/{workflow}.yaml" in names
        assert f"fhircare/_data/profiles/workflows/{workflow}.schema.json" in names
    assert "fhircare/_data/rules/gaps.yaml" in names
    assert "fhircare/web/templates/base.html" in names
    target = out / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(target), str(wheel)],
        check=True,
        timeout=300,
    )
    return target


# The 'server' and 'web' extras' packages: a base install (`pip install fhircare`) has none of them.
EXTRAS = ("flask", "authlib", "jwt", "redis", "gunicorn", "sekmet", "uvicorn", "werkzeug", "cryptography")

BLOCKER = """
import sys
BLOCKED = set({blocked!r})
class _NotInstalled:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {{name!r}} (not installed: base install)")
        return None
sys.meta_path.insert(0, _NotInstalled())
"""


def _fhircare(
    target: Path, *args: str, stdin: str | None = None, base_install: bool = False
) -> subprocess.CompletedProcess[str]:
    """Runs the CLI from the installed wheel, with the dependencies of this venv, from an empty folder;
    ``base_install`` hides the extras' packages, as a ``pip install`` without extras has them not."""
    path = str(target)
    if base_install:
        blocker = target.parent / "base-install"
        blocker.mkdir(exist_ok=True)
        (blocker / "sitecustomize.py").write_text(BLOCKER.format(blocked=sorted(EXTRAS)))
        path = f"{blocker}{os.pathsep}{target}"
    env = {**os.environ, "PYTHONPATH": path}
    code = "import sys, fhircare; assert fhircare.__file__.startswith(sys.argv.pop(1)), fhircare.__file__; "
    code += "from fhircare.cli.main import main; sys.argv[0] = 'fhircare'; main()"
    return subprocess.run(
        [sys.executable, "-c", code, str(target), *args],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=target.parent,
        env=env,
        timeout=120,
    )


@pytest.mark.slow
def test_the_installed_wheel_runs_a_workflow_and_the_gap_rules(installed_wheel, fhir_server, client, uid):
    schema = _fhircare(installed_wheel, "workflows", "refer", "--schema")
    assert schema.returncode == 0, schema.stderr
    assert "priority" in json.loads(schema.stdout)["properties"]

    case = CASES["refer"](client, uid)
    payload = {**case.payload, "due": "2020-01-31"}  # already overdue: the wheel's gap rules must say so
    ran = _fhircare(
        installed_wheel, "--base", fhir_server.base_url, "run", "refer", "-", stdin=json.dumps(payload)
    )
    assert ran.returncode == 0, ran.stderr
    written = json.loads(ran.stdout)["written"]
    referral = next(ref for ref in written if ref.startswith("ServiceRequest/"))
    assert client.read_reference(referral)["subject"]["reference"] == payload["patient"]

    gaps = _fhircare(
        installed_wheel,
        "--base",
        fhir_server.base_url,
        "gaps",
        "--patient",
        payload["patient"],
        "--format",
        "json",
    )
    assert gaps.returncode == 0, gaps.stderr
    rows = json.loads(gaps.stdout)
    task = next(ref for ref in written if ref.startswith("Task/"))
    assert {"rule": "overdue-task", "resource": task, "patient": payload["patient"]}.items() <= next(
        row for row in rows if row["rule"] == "overdue-task"
    ).items()


@pytest.mark.slow
def test_a_base_install_without_extras_runs_help_a_workflow_and_the_worklist(
    installed_wheel, fhir_server, client, uid
):
    _fhircare(installed_wheel, "--version", base_install=True)  # writes the base-install folder
    probe = subprocess.run(
        [sys.executable, "-c", "import jwt"],
        env={**os.environ, "PYTHONPATH": str(installed_wheel.parent / "base-install")},
        capture_output=True,
        text=True,
        check=False,
    )
    assert probe.returncode != 0  # the extras are really out of reach
    helped = _fhircare(installed_wheel, "--help", base_install=True)
    assert helped.returncode == 0, helped.stderr
    assert "run" in helped.stdout and "worklist" in helped.stdout

    case = CASES["follow-up"](client, uid)
    ran = _fhircare(
        installed_wheel,
        "run",
        "follow-up",
        "-",
        "--base",
        fhir_server.base_url,
        stdin=json.dumps(case.payload),
        base_install=True,
    )
    assert ran.returncode == 0, ran.stderr
    task = json.loads(ran.stdout)["written"][0]
    owner = client.read_reference(task)["owner"]["reference"]
    listed = _fhircare(
        installed_wheel,
        "worklist",
        "--owner",
        owner,
        "--format",
        "json",
        "--base",
        fhir_server.base_url,
        base_install=True,
    )
    assert listed.returncode == 0, listed.stderr
    assert task in [row["task"] for row in json.loads(listed.stdout)]
