"""The demo: a synthetic caseload seeded through the workflows, and one coordinator's morning on it.
It uses fhircare as any user does (workflows and views); ``fhircare demo`` runs it."""

from .morning import MorningStep, play_morning
from .seed import Seeder
from .world import COORDINATORS, DemoWorld

__all__ = ["COORDINATORS", "DemoWorld", "MorningStep", "Seeder", "play_morning"]
