"""The demo's directory of services: about thirty community and clinical services (HealthcareService)
offered by organizations at locations around one metro area. Synthetic names and addresses.

Created conditionally on the demo's identifiers (``DEMO_SYSTEM``) (a second seeding writes nothing new), in
transactions of at most eight entries: organizations and locations first, then the services that point
at them with literal references.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..fhir import FhirClient
from ..namespaces import DEFAULT_NAMESPACES

CATEGORY_SYSTEM = DEFAULT_NAMESPACES.system("directory-category")
#: category code -> display
CATEGORIES = {
    "food-pantry": "Food pantry",
    "transportation": "Transportation",
    "diabetes-education": "Diabetes education",
    "nutrition": "Nutrition",
    "cardiology": "Cardiology",
    "social-services": "Social services",
    "behavioral-health": "Behavioral health",
    "home-care": "Home care",
}
#: category -> the services.yaml key a referral to it asks for (HealthcareService.type)
CATEGORY_SERVICE = {
    "food-pantry": "food-pantry-assistance",
    "transportation": "transportation",
    "diabetes-education": "diabetes-education",
    "nutrition": "dietitian-referral",
    "cardiology": "cardiology-referral",
    "social-services": "social-worker-referral",
    "behavioral-health": "mental-health-referral",
    "home-care": "home-health-referral",
}
#: the providers besides the demo's own organizations (demo.ORGANIZATIONS)
PROVIDERS = {
    "harbor-food": "Harbor Community Food Network",
    "eastside-pantry": "Eastside Neighbors Pantry",
    "mystic-meals": "Mystic Valley Meals",
    "city-rides": "CityLink Medical Transport",
    "hearth-home": "Hearth Home Care",
    "northside-nurses": "Northside Visiting Nurses",
    "mindwell": "MindWell Counseling Center",
}
#: key -> (name, street, city, postal code)
LOCATIONS = {
    "central": ("Central Square site", "650 Massachusetts Ave", "Cambridge", "02139"),
    "riverside": ("Riverside campus", "100 River Rd", "Cambridge", "02139"),
    "kendall": ("Kendall site", "1 Broadway", "Cambridge", "02142"),
    "union": ("Union Square site", "20 Bow St", "Somerville", "02143"),
    "south-end": ("South End site", "400 Shawmut Ave", "Boston", "02118"),
    "fields-corner": ("Fields Corner site", "1500 Dorchester Ave", "Boston", "02122"),
    "medford": ("Medford Square site", "30 Salem St", "Medford", "02155"),
    "malden": ("Malden Center site", "200 Pleasant St", "Malden", "02148"),
}
#: key -> (name, category, provider key, location keys, phone)
SERVICES: dict[str, tuple[str, str, str, tuple[str, ...], str]] = {
    "pantry-central": (
        "Harbor Food Pantry, Central Square",
        "food-pantry",
        "harbor-food",
        ("central",),
        "555-0301",
    ),
    "pantry-fields": (
        "Harbor Food Pantry, Fields Corner",
        "food-pantry",
        "harbor-food",
        ("fields-corner",),
        "555-0302",
    ),
    "pantry-south-end": (
        "South End Community Pantry",
        "food-pantry",
        "harbor-food",
        ("south-end",),
        "555-0303",
    ),
    "pantry-union": ("Eastside Neighbors Pantry", "food-pantry", "eastside-pantry", ("union",), "555-0304"),
    "pantry-mobile": (
        "Eastside Mobile Market",
        "food-pantry",
        "eastside-pantry",
        ("malden", "medford"),
        "555-0305",
    ),
    "meals-mystic": (
        "Mystic Valley Home-Delivered Meals",
        "food-pantry",
        "mystic-meals",
        ("medford",),
        "555-0306",
    ),
    "rides-wheelchair": (
        "Reliable Rides wheelchair van",
        "transportation",
        "rides",
        ("riverside",),
        "555-0311",
    ),
    "rides-sedan": ("Reliable Rides sedan service", "transportation", "rides", ("riverside",), "555-0312"),
    "citylink-cambridge": (
        "CityLink Medical Transport, Cambridge",
        "transportation",
        "city-rides",
        ("kendall",),
        "555-0313",
    ),
    "citylink-boston": (
        "CityLink Medical Transport, Boston",
        "transportation",
        "city-rides",
        ("south-end",),
        "555-0314",
    ),
    "citylink-north": (
        "CityLink Medical Transport, North",
        "transportation",
        "city-rides",
        ("medford",),
        "555-0315",
    ),
    "dsme-riverside": (
        "Diabetes Self-Management Classes",
        "diabetes-education",
        "dm-program",
        ("riverside",),
        "555-0321",
    ),
    "dsme-union": (
        "Diabetes Self-Management Classes, Somerville",
        "diabetes-education",
        "dm-program",
        ("union",),
        "555-0322",
    ),
    "dsme-evening": (
        "Evening Diabetes Group",
        "diabetes-education",
        "dm-program",
        ("south-end",),
        "555-0323",
    ),
    "dsme-spanish": (
        "Diabetes Education in Spanish",
        "diabetes-education",
        "dm-program",
        ("fields-corner",),
        "555-0324",
    ),
    "nutrition-clinic": ("Dietitian Clinic", "nutrition", "nutrition", ("riverside",), "555-0331"),
    "nutrition-home": (
        "Medical Nutrition Therapy at Home",
        "nutrition",
        "nutrition",
        ("medford",),
        "555-0332",
    ),
    "cardio-hf": ("Heart Failure Clinic", "cardiology", "cardiology", ("riverside",), "555-0341"),
    "cardio-rehab": ("Cardiac Rehabilitation", "cardiology", "cardiology", ("kendall",), "555-0342"),
    "social-benefits": (
        "Benefits and Food Assistance Counseling",
        "social-services",
        "social-services",
        ("central",),
        "555-0351",
    ),
    "social-housing": (
        "Housing Stabilization Casework",
        "social-services",
        "social-services",
        ("south-end",),
        "555-0352",
    ),
    "bh-outpatient": (
        "Outpatient Psychiatry",
        "behavioral-health",
        "behavioral-health",
        ("riverside",),
        "555-0361",
    ),
    "bh-groups": ("Depression Counseling Groups", "behavioral-health", "mindwell", ("union",), "555-0362"),
    "bh-walk-in": ("Walk-in Crisis Support", "behavioral-health", "mindwell", ("central",), "555-0363"),
    "bh-telehealth": (
        "Telehealth Counseling",
        "behavioral-health",
        "behavioral-health",
        ("kendall",),
        "555-0364",
    ),
    "home-hearth": (
        "Hearth Home Care, personal care aides",
        "home-care",
        "hearth-home",
        ("medford",),
        "555-0371",
    ),
    "home-hearth-boston": (
        "Hearth Home Care, Boston",
        "home-care",
        "hearth-home",
        ("fields-corner",),
        "555-0372",
    ),
    "home-nurses": ("Northside Visiting Nurses", "home-care", "northside-nurses", ("malden",), "555-0373"),
    "home-nurses-cambridge": (
        "Northside Visiting Nurses, Cambridge",
        "home-care",
        "northside-nurses",
        ("central",),
        "555-0374",
    ),
    "home-safety": (
        "Home Safety and Fall Prevention Visits",
        "home-care",
        "northside-nurses",
        ("union",),
        "555-0375",
    ),
}

Conditional = Callable[[dict[str, Any], str], dict[str, Any]]
CreateAll = Callable[[FhirClient, list[dict[str, Any]]], list[str]]


def seed_directory(
    client: FhirClient,
    organizations: dict[str, str],
    conditional: Conditional,
    create_all: CreateAll,
    service_codes: dict[str, dict[str, Any]],
) -> dict[str, str]:
    """Create the providers, locations and services; ``organizations`` gains the providers. Returns
    service key -> ``HealthcareService/id``."""
    entries = [
        conditional({"resourceType": "Organization", "name": name, "active": True}, key)
        for key, name in PROVIDERS.items()
    ]
    for key, (name, street, city, postal) in LOCATIONS.items():
        location = {
            "resourceType": "Location",
            "status": "active",
            "name": name,
            "address": {"line": [street], "city": city, "state": "MA", "postalCode": postal, "country": "US"},
        }
        entries.append(conditional(location, f"location-{key}"))
    refs = create_all(client, entries)
    organizations.update(zip(PROVIDERS, refs[: len(PROVIDERS)], strict=True))
    locations = dict(zip(LOCATIONS, refs[len(PROVIDERS) :], strict=True))
    services = []
    for key, (name, category, provider, places, phone) in SERVICES.items():
        code = {
            k: v
            for k, v in service_codes[CATEGORY_SERVICE[category]].items()
            if k in ("system", "code", "display")
        }
        service = {
            "resourceType": "HealthcareService",
            "active": True,
            "providedBy": {"reference": organizations[provider]},
            "category": [
                {"coding": [{"system": CATEGORY_SYSTEM, "code": category, "display": CATEGORIES[category]}]}
            ],
            "type": [{"coding": [code], "text": code.get("display", name)}],
            "name": name,
            "location": [{"reference": locations[place]} for place in places],
            "telecom": [{"system": "phone", "value": phone, "use": "work"}],
        }
        services.append(conditional(service, f"service-{key}"))
    return dict(zip(SERVICES, create_all(client, services), strict=True))


def services_in(category: str) -> list[str]:
    """The keys of the services in one category, in a stable order."""
    return [key for key, spec in SERVICES.items() if spec[1] == category]
