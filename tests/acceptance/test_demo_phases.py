"""The demo shows progress in every phase, and reads the same care gaps through $export as by paging."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

FHIRCARE = str(Path(sys.executable).with_name("fhircare"))
PHASES = (
    "Checking what the server supports",
    "Seeding 12 patients through the workflows",
    "Worklist of Practitioner/",
    "Care gaps of Practitioner/",
    "The morning",
    "Care gaps again",
    "Patient summary",
    "Caseload",
)


def _demo(*flags: str) -> subprocess.CompletedProcess[str]:
    answer = subprocess.run(
        [FHIRCARE, "demo", "--patients", "12", "--seed", "5", *flags],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert answer.returncode == 0, answer.stderr
    return answer


def _gaps_section(out: str) -> str:
    return out.split("== Care gaps:", 1)[1].split("== Patient summary ==", 1)[0]


def test_demo_reports_each_phase_and_finds_the_same_gaps_through_export_as_by_paging():
    paged, exported = _demo("--no-bulk"), _demo("--bulk")
    for answer in (paged, exported):
        announced = [line[3:] for line in answer.stderr.splitlines() if line.startswith("-> ")]
        assert len(announced) == len(PHASES)
        assert all(line.startswith(phase) for line, phase in zip(announced, PHASES, strict=True))
        assert answer.stderr.count("   done in ") == len(PHASES)
    assert "Bulk export started" not in paged.stderr
    assert exported.stderr.count("Bulk export started") == 3  # gaps before and after the morning, caseload
    assert _gaps_section(exported.stdout) == _gaps_section(paged.stdout)
    assert "still open" in _gaps_section(paged.stdout)
