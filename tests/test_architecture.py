"""The arrows point down: fhir <- mapping <- workflows, views <- web, cli. Only fhir/ speaks HTTP."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "fhircare"
SHARED = {"errors", "settings", "logs", "namespaces", "caching", "clock"}
# layer -> the fhircare layers it may import (besides itself and the shared modules)
ALLOWED = {
    "fhir": set(),
    "server": set(),
    "mapping": {"fhir"},
    "care": {"mapping", "fhir"},
    "workflows": {"care", "mapping", "fhir"},
    "views": {"care", "mapping", "fhir"},
    "demo": {"workflows", "views", "care", "mapping", "fhir"},
    "exchange": {"workflows", "views", "care", "mapping", "fhir"},
    "web": {"workflows", "views", "care", "mapping", "fhir", "server", "exchange"},
    "cli": {"demo", "workflows", "views", "care", "mapping", "fhir", "server", "web", "exchange"},
}


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = _module_name(path).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                module = ".".join([*base, node.module] if node.module else base)
                found.append(module)
                if not node.module:
                    found += [f"{module}.{alias.name}" for alias in node.names]
            elif node.module:
                found.append(node.module)
    return found


def _layer(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "fhircare" else None


def _files() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def test_imports_point_downward_only() -> None:
    violations = []
    for path in _files():
        own = _layer(_module_name(path))
        if own is None or own in SHARED or own == "__init__":
            continue
        for imported in _imports(path):
            target = _layer(imported)
            if target is None or target in SHARED or target == own or target.startswith("__"):
                continue
            if target not in ALLOWED.get(own, set()):
                violations.append(f"{path.relative_to(PACKAGE.parent)} ({own}) imports {imported} ({target})")
    assert violations == []


def test_shared_modules_import_no_layer() -> None:
    for name in SHARED:
        for imported in _imports(PACKAGE / f"{name}.py"):
            assert _layer(imported) in (None, *SHARED), f"fhircare/{name}.py imports {imported}"


def test_only_the_fhir_layer_imports_requests_or_urllib3() -> None:
    offenders = [
        str(path.relative_to(PACKAGE.parent))
        for path in _files()
        if _layer(_module_name(path)) != "fhir"
        and any(i.split(".")[0] in ("requests", "urllib3") for i in _imports(path))
    ]
    assert offenders == []


def test_only_fhir_models_imports_fhir_resources() -> None:
    offenders = [
        str(path.relative_to(PACKAGE.parent))
        for path in _files()
        if any(i.startswith("fhir.resources") for i in _imports(path))
        and path != PACKAGE / "fhir" / "models.py"
    ]
    assert offenders == []


def test_only_settings_reads_the_environment() -> None:
    offenders = []
    for path in _files():
        if path == PACKAGE / "settings.py":
            continue
        text = path.read_text(encoding="utf-8")
        if "os.environ" in text or "os.getenv" in text:
            offenders.append(str(path.relative_to(PACKAGE.parent)))
    assert offenders == []


def test_the_public_api_is_exactly_all_and_documented() -> None:
    """``fhircare.__all__`` names every public name of the package (and nothing else), each documented."""
    import types

    import fhircare

    public = {
        n for n, v in vars(fhircare).items() if not n.startswith("_") and not isinstance(v, types.ModuleType)
    }
    assert sorted(public) == sorted(n for n in fhircare.__all__ if n != "__version__")
    for name in (
        "run",
        "WorkflowResult",
        "FhirClient",
        "Settings",
        "worklist",
        "patient_summary",
        "find_gaps",
        "caseload",
        "authorizations",
        "history",
        "FhircareError",
        "PartialWrite",
        "TransientError",
    ):
        assert name in fhircare.__all__
    undocumented = [n for n in public if not (getattr(fhircare, n).__doc__ or "").strip()]
    assert undocumented == []


def test_the_library_logger_has_a_null_handler() -> None:
    """In a fresh interpreter (the suite's own CLI runs configure logging for themselves)."""
    import subprocess
    import sys

    code = "import logging, fhircare; h = logging.getLogger('fhircare').handlers; "
    code += "print(any(isinstance(x, logging.NullHandler) for x in h))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == "True"


def _cycle(graph: dict[str, set[str]]) -> list[str]:
    """One import cycle of ``graph`` (module -> modules it imports), or [] when there is none."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str]:
        state[node] = 1
        path.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == 1:
                return [*path[path.index(target) :], target]
            if target not in state and (found := visit(target)):
                return found
        path.pop()
        state[node] = 2
        return []

    for start in sorted(graph):
        if start not in state and (found := visit(start)):
            return found
    return []


def test_the_fhir_layer_has_no_import_cycle() -> None:
    """Every import counts, those under ``TYPE_CHECKING`` and inside functions too: the arrows inside
    fhircare/fhir point one way (the client asks its policy, the policy probes through a protocol)."""
    modules = {
        _module_name(path): path
        for path in _files()
        if _module_name(path).startswith("fhircare.fhir") and path.name != "__init__.py"
    }
    graph = {
        name: {imported for imported in _imports(path) if imported in modules and imported != name}
        for name, path in modules.items()
    }
    assert _cycle(graph) == []


def test_the_cycle_check_finds_a_cycle() -> None:
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) == []


MAX_MODULE_LINES = 300


def test_every_module_is_under_300_lines() -> None:
    """Split by job when a module grows past it (as workflows/base.py and fhir/transport.py were)."""
    long = {
        str(path.relative_to(PACKAGE.parent)): lines
        for path in _files()
        if (lines := len(path.read_text(encoding="utf-8").splitlines())) >= MAX_MODULE_LINES
    }
    assert long == {}
