"""The workflow catalogue: name -> class."""

from __future__ import annotations

from .base import Workflow
from .refer import Refer
from .task_transition import TaskTransition

WORKFLOWS: dict[str, type[Workflow]] = {cls.name: cls for cls in (Refer, TaskTransition)}
