"""The workflow catalogue: name -> class."""

from __future__ import annotations

from .base import Workflow
from .refer import Refer
from .simple import CoverageCheck, Educate, Enroll, FollowUp, PriorAuth, Transport
from .task_transition import TaskTransition

WORKFLOWS: dict[str, type[Workflow]] = {cls.name: cls for cls in (CoverageCheck, Educate, Enroll, FollowUp, PriorAuth, Refer, TaskTransition, Transport)}
