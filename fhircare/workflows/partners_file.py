"""What the workflows need of the partners file (FHIRCARE_PARTNERS): our Organization (``self``) and
the Organizations that stand for partners. One reader, cached per version of the file. A file that
does not parse names nothing here: ``fhircare.exchange`` validates it and reports file, path and reason
where the exchange needs it."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import yaml

from ..settings import Settings


@dataclass(frozen=True)
class PartnersFile:
    organization: str | None = None  # self.organization
    partners: frozenset[str] = frozenset()  # partners.*.organization


NONE = PartnersFile()


def partners_file(settings: Settings) -> PartnersFile:
    """The partners file's Organizations; nothing without one (or while it cannot be read)."""
    if settings.partners_file is None:
        return NONE
    path = Path(settings.partners_file)
    try:
        stamp = path.stat().st_mtime_ns
    except OSError:
        return NONE
    return _read(str(path), stamp)


@functools.lru_cache(maxsize=8)
def _read(path: str, stamp: int) -> PartnersFile:
    try:
        document = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return NONE
    if not isinstance(document, dict):
        return NONE
    own = document.get("self")
    value = own.get("organization") if isinstance(own, dict) else None
    organization = value if isinstance(value, str) and value.startswith("Organization/") else None
    listed = document.get("partners")
    partners = frozenset(
        str(p["organization"])
        for p in (listed.values() if isinstance(listed, dict) else ())
        if isinstance(p, dict) and p.get("organization")
    )
    return PartnersFile(organization, partners)


def our_organization(settings: Settings) -> str | None:
    """Our Organization: the partners file's ``self.organization`` (FHIRCARE_PARTNERS), else
    FHIRCARE_ORGANIZATION; None when neither names one."""
    return partners_file(settings).organization or settings.organization


def partner_organizations(settings: Settings) -> frozenset[str]:
    """``partners.*.organization`` of the partners file; none without one."""
    return partners_file(settings).partners
