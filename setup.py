"""Wheel builds carry the data fhircare reads at run time.

``mappings/``, ``profiles/`` and ``rules/`` live at the top of the repository, where integrators read and
override them. A wheel has no repository, so ``build_py`` copies them into ``fhircare/_data/``;
``fhircare.settings`` looks there when it is not running from a source tree. Everything else about
the package is declared in ``pyproject.toml``.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

DATA_DIRS = ("mappings", "profiles", "rules")
HERE = Path(__file__).resolve().parent


class BuildPyWithData(build_py):
    def run(self) -> None:
        super().run()
        if self.editable_mode:
            return  # an editable install reads the source tree directly
        target = Path(self.build_lib) / "fhircare" / "_data"
        for name in DATA_DIRS:
            shutil.rmtree(target / name, ignore_errors=True)
            shutil.copytree(HERE / name, target / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))


setup(cmdclass={"build_py": BuildPyWithData})
