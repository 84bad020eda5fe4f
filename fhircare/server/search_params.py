"""Search parameters fhircare needs that the embedded server does not define (R4 names and paths).

Each entry: name -> (kind, element paths, target type or None). The paths are SEKMET's dotted
element paths. Parameters SEKMET already has are left alone by the launcher.
"""

from __future__ import annotations

EXTRA_SEARCH_PARAMS: dict[str, dict[str, tuple[str, tuple[str, ...], str | None]]] = {
    # a schedule change finds the appointment's active reminders with it; unknown, the server would
    # ignore it and answer every active CommunicationRequest (the first page of them)
    "CommunicationRequest": {
        "based-on": ("reference", ("basedOn",), None),
    },
    "Goal": {
        "identifier": ("token", ("identifier",), None),
        "patient": ("reference", ("subject",), "Patient"),
        "subject": ("reference", ("subject",), None),
        "lifecycle-status": ("token", ("lifecycleStatus",), None),
        "achievement-status": ("token", ("achievementStatus",), None),
        "target-date": ("date", ("target.dueDate",), None),
        "category": ("token", ("category",), None),
    },
    "CareTeam": {
        "identifier": ("token", ("identifier",), None),
        "patient": ("reference", ("subject",), "Patient"),
        "subject": ("reference", ("subject",), None),
        "status": ("token", ("status",), None),
        "participant": ("reference", ("participant.member",), None),
        "category": ("token", ("category",), None),
    },
    "CarePlan": {
        "goal": ("reference", ("goal",), None),
        "care-team": ("reference", ("careTeam",), None),
        "activity-reference": ("reference", ("activity.reference",), None),
        "addresses": ("reference", ("addresses",), None),
        "part-of": ("reference", ("partOf",), None),
        "replaces": ("reference", ("replaces",), None),
        "author": ("reference", ("author",), None),
    },
    "QuestionnaireResponse": {
        "identifier": ("token", ("identifier",), None),
        "patient": ("reference", ("subject",), "Patient"),
        "subject": ("reference", ("subject",), None),
        "status": ("token", ("status",), None),
        "authored": ("date", ("authored",), None),
        "author": ("reference", ("author",), None),
        "questionnaire": ("uri", ("questionnaire",), None),
    },
    "Task": {
        "for": ("reference", ("for",), None),
        # not in R4 core: the due date fhircare keeps in restriction.period (Gravity SDOH referral shape)
        "restriction-period": ("date", ("restriction.period",), None),
    },
    "ServiceRequest": {
        "supporting-info": ("reference", ("supportingInfo",), None),
        "reason-reference": ("reference", ("reasonReference",), None),
    },
    "HealthcareService": {
        "service-category": ("token", ("category",), None),
    },
    "Location": {
        "address-postalcode": ("string", ("address.postalCode",), None),
        "address-city": ("string", ("address.city",), None),
    },
    "Appointment": {
        "service-request": ("reference", ("basedOn",), "ServiceRequest"),
    },
    "Coverage": {
        "period": ("date", ("period",), None),
    },
    "CoverageEligibilityRequest": {
        "enterer": ("reference", ("enterer",), None),
        "facility": ("reference", ("facility",), None),
        "insurer": ("reference", ("insurer",), None),
    },
    "CoverageEligibilityResponse": {
        "insurer": ("reference", ("insurer",), None),
        "requestor": ("reference", ("requestor",), None),
        "disposition": ("string", ("disposition",), None),
    },
    "Communication": {
        "topic": ("token", ("topic",), None),
        "about": ("reference", ("about",), None),
    },
    "RelatedPerson": {
        "telecom": ("token", ("telecom",), None),
        "active": ("token", ("active",), None),
        "gender": ("token", ("gender",), None),
    },
    "Provenance": {
        "activity": ("token", ("activity",), None),
        "when": ("date", ("occurredDateTime", "occurredPeriod"), None),
        "entity": ("reference", ("entity.what",), None),
        "signature-type": ("token", ("signature.type",), None),
    },
    "Claim": {
        "item-service": ("token", ("item.productOrService",), None),
    },
    "DocumentReference": {
        "related": ("reference", ("context.related",), None),
    },
}
