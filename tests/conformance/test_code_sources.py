"""Every SNOMED CT and CPT code in the code tables says where its display was checked, or is listed as
unverified in docs/conformance.md."""

from __future__ import annotations

from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
CHECKED_SYSTEMS = {"http://snomed.info/sct": "SNOMED CT", "http://www.ama-assn.org/go/cpt": "CPT"}


def test_codes_without_a_source_are_listed_as_unverified() -> None:
    docs = (REPO / "docs" / "conformance.md").read_text(encoding="utf-8")
    unverified = docs.split("## Codes whose display is unverified", 1)[1]
    missing = []
    for path in sorted((REPO / "mappings" / "codes").glob("*.yaml")):
        table = yaml.safe_load(path.read_text(encoding="utf-8"))
        for key, code in table["codes"].items():
            if code["system"] in CHECKED_SYSTEMS and not code.get("source"):
                row = f"| `{path.stem}` | `{key}` | {CHECKED_SYSTEMS[code['system']]} | {code['code']} |"
                if row not in unverified:
                    missing.append(row)
    assert missing == []
