"""Finding a patient and telling two of the same name apart: a search by name, birth date and identifier
(``Patient?name=&birthdate=&identifier=``, one page of matches per request), and a card per patient with
birth date, age and record number, read in one batch wherever a page names patients."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import date
from typing import Any

from .. import clock
from ..errors import Issue, PayloadError
from ..fhir import FhirClient
from ..namespaces import REQUEST_ID, Namespaces
from .labels import person_name

#: identifier type codes that name a record number (HL7 v2 table 0203): medical record, member, patient
RECORD_TYPES = ("MR", "MB", "PI", "PT")
PAGE_SIZE = 20


@dataclass(frozen=True)
class PatientCard:
    """What tells a patient apart on every page: name, birth date, age, record number."""

    reference: str
    name: str
    birth_date: str | None
    age: int | None
    record_number: str | None
    gender: str | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def label(self) -> str:
        """``Ana Okafor · born 1961-04-02 (64) · MRN-7-0012``: a name and what tells it apart."""
        parts = [self.name]
        if self.birth_date:
            parts.append(f"born {self.birth_date}" + (f" ({self.age})" if self.age is not None else ""))
        if self.record_number:
            parts.append(self.record_number)
        return " · ".join(parts)


def age_on(birth_date: str | None, today: date) -> int | None:
    """Whole years from a FHIR date (``YYYY``, ``YYYY-MM`` or ``YYYY-MM-DD``) to ``today``."""
    if not birth_date or len(birth_date) != 10:
        return None
    try:
        born = date.fromisoformat(birth_date)
    except ValueError:
        return None
    return today.year - born.year - ((today.month, today.day) < (born.month, born.day))


def record_number(patient: dict[str, Any], namespaces: Namespaces | None = None) -> str | None:
    """The value of the patient's record number (``record_identifier``)."""
    found = record_identifier(patient, namespaces)
    return str(found["value"]) if found else None


def record_identifier(patient: dict[str, Any], namespaces: Namespaces | None = None) -> dict[str, Any] | None:
    """The patient's record number identifier: one typed MR/MB/PI/PT, else the first one that is not a
    request id fhircare stamped."""
    namespaces = namespaces or Namespaces()
    stamps = set(namespaces.systems(REQUEST_ID))
    identifiers = [
        i for i in patient.get("identifier") or [] if isinstance(i, dict) and i.get("value") is not None
    ]
    for identifier in identifiers:
        codes = {
            c.get("code") for c in (identifier.get("type") or {}).get("coding") or [] if isinstance(c, dict)
        }
        if codes & set(RECORD_TYPES):
            return identifier
    for identifier in identifiers:
        if identifier.get("system") not in stamps:
            return identifier
    return None


def enroll_values(patient: dict[str, Any], namespaces: Namespaces | None = None) -> dict[str, str]:
    """An existing patient as the enroll form's fields (``patient.name.family`` ...): enrolling them
    again finds them by identifier instead of creating a second Patient."""
    values: dict[str, str] = {}
    found = record_identifier(patient, namespaces)
    if found and found.get("system"):
        values["patient.identifier.system"] = str(found["system"])
        values["patient.identifier.value"] = str(found["value"])
    name = next((n for n in patient.get("name") or [] if isinstance(n, dict)), {})
    if name.get("family"):
        values["patient.name.family"] = str(name["family"])
    if name.get("given"):
        values["patient.name.given"] = ", ".join(str(g) for g in name["given"])
    for key in ("birthDate", "gender"):
        if patient.get(key):
            values[f"patient.{key}"] = str(patient[key])
    phone = next(
        (t for t in patient.get("telecom") or [] if isinstance(t, dict) and t.get("system") == "phone"), None
    )
    if phone and phone.get("value"):
        values["patient.phone"] = str(phone["value"])
    return values


def card_of(
    patient: dict[str, Any], today: date | None = None, namespaces: Namespaces | None = None
) -> PatientCard:
    birth = patient.get("birthDate")
    birth_date = str(birth) if birth else None
    return PatientCard(
        reference=f"Patient/{patient.get('id')}",
        name=person_name(patient),
        birth_date=birth_date,
        age=age_on(birth_date, today or clock.today()),
        record_number=record_number(patient, namespaces),
        gender=str(patient["gender"]) if patient.get("gender") else None,
    )


def patient_cards(
    client: FhirClient, references: Iterable[str | None], namespaces: Namespaces | None = None
) -> dict[str, PatientCard]:
    """``Patient/id`` -> card for every patient named, in one batch of reads (none when none is named)."""
    wanted = sorted({r for r in references if r and r.startswith("Patient/") and r.count("/") == 1})
    today = clock.today()
    return {ref: card_of(p, today, namespaces) for ref, p in client.read_found(wanted).items()}


@dataclass(frozen=True)
class PatientMatches:
    """One page of a patient search: its cards, the page number, whether another page follows."""

    cards: list[PatientCard]
    page: int
    more: bool


def _refused(field: str, text: str) -> PayloadError:
    return PayloadError(text, [Issue("error", "invalid", text, (f"$.{field}",))])


def search_params(name: str = "", birthdate: str = "", identifier: str = "") -> list[tuple[str, str]]:
    """The FHIR search a coordinator's words become; refused (naming the field) when a value cannot be
    a search: a birth date that is not a date, nothing to search by."""
    params: list[tuple[str, str]] = []
    name, birthdate, identifier = name.strip(), birthdate.strip(), identifier.strip()
    # each word must match a part of the name (repeated parameters AND): "Ana Okafor" finds Ana Okafor
    params += [("name", word) for word in name[:100].split()[:4]]
    if birthdate:
        try:
            date.fromisoformat(birthdate)
        except ValueError:
            raise _refused("birthdate", "the birth date must be a full date (year, month and day)") from None
        params.append(("birthdate", birthdate))
    if identifier:
        params.append(("identifier", identifier[:100]))
    if not params:
        raise _refused("name", "give a name, a birth date or a record number to search by")
    return params


def find_patients(
    client: FhirClient,
    name: str = "",
    birthdate: str = "",
    identifier: str = "",
    page: int = 1,
    page_size: int = PAGE_SIZE,
    namespaces: Namespaces | None = None,
) -> PatientMatches:
    """Patients matching every criterion given, sorted by name, ``page_size`` at a time. Page ``n``
    costs the requests of pages 1..n (next links or ``_offset``): a coordinator rarely goes past two."""
    params = [
        *search_params(name, birthdate, identifier),
        ("_sort", "family,given"),
        ("_count", str(page_size)),
    ]
    skip = (max(page, 1) - 1) * page_size
    found: list[dict[str, Any]] = []
    more = False
    search = client.search("Patient", params)
    for chunk in search.pages():
        found += chunk.matches
        if len(found) > skip + page_size:
            more = True
            break
        if len(found) == skip + page_size:
            more = bool(chunk.next_url) or (chunk.total is not None and chunk.total > len(found))
            break
    today = clock.today()
    cards = [card_of(p, today, namespaces) for p in found[skip : skip + page_size]]
    return PatientMatches(cards, max(page, 1), more)
