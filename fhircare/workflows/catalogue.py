"""The workflow catalogue: name -> class."""

from __future__ import annotations

from .assess import Assess
from .base import Workflow
from .care_plan import CarePlanWorkflow
from .prior_auth import PriorAuth
from .refer import Refer
from .schedule import Schedule
from .simple import CoverageCheck, Educate, Enroll, FollowUp, Transport
from .task_transition import TaskTransition
from .transition import Transition

WORKFLOWS: dict[str, type[Workflow]] = {
    cls.name: cls
    for cls in (
        Assess,
        CarePlanWorkflow,
        CoverageCheck,
        Educate,
        Enroll,
        FollowUp,
        PriorAuth,
        Refer,
        Schedule,
        TaskTransition,
        Transition,
        Transport,
    )
}
