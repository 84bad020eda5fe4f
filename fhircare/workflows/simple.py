"""Workflows whose FHIR shape is entirely in their mapping: no reads, no updates, no cross-field rules."""

from __future__ import annotations

from .base import Workflow


class Enroll(Workflow):
    name = "enroll"
    description = "Take a patient onto my caseload (Patient, family, CareTeam, CarePlan)"


class FollowUp(Workflow):
    name = "follow-up"
    description = "Make sure it happened: a follow-up Task for me, due on a date"


class Transport(Workflow):
    name = "transport"
    description = "Arrange a ride to an appointment (ServiceRequest + Task to the transport vendor)"


class CoverageCheck(Workflow):
    name = "coverage-check"
    description = "Verify insurance and eligibility (Coverage + CoverageEligibilityRequest)"


class Educate(Workflow):
    name = "educate"
    description = "Teach the patient or family and record it (Communication, optional DocumentReference)"
