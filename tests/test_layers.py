"""The package's layers, as docs/how-it-works.md describes them: each module imports only from its own layer or
those below (imports inside functions and under TYPE_CHECKING count too), there is no import cycle, and only a
backend's own folder imports its runtime."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "batchcheck"
# Lowest first. A module belongs to the layer of its longest matching prefix.
LAYERS = (
    ("values", ("batchcheck.version", "batchcheck.errors", "batchcheck.serial", "batchcheck.formats")),
    ("safety", ("batchcheck.safety.scan", "batchcheck.safety.slow_stage", "batchcheck.safety.supervise")),
    ("options", ("batchcheck.options",)),
    ("results", ("batchcheck.result",)),
    ("graph", ("batchcheck.graph",)),
    ("model", ("batchcheck.model",)),
    ("judging and inputs", ("batchcheck.judge", "batchcheck.load.images", "batchcheck.load.placeholders")),
    ("runner", ("batchcheck.run",)),
    ("plans and repair values", ("batchcheck.judge.calibrate", "batchcheck.plans", "batchcheck.repair.result")),
    ("backends", ("batchcheck.backends",)),
    ("opening", ("batchcheck.load.open",)),
    ("check and probe", ("batchcheck.checker", "batchcheck.probe")),
    ("commands", ("batchcheck.lint", "batchcheck.explain", "batchcheck.inspect", "batchcheck.repair")),
    ("reports", ("batchcheck.report",)),
    ("fronts", ("batchcheck.safety.remote", "batchcheck.strategies", "batchcheck.cli", "batchcheck.pytest",
                "batchcheck")),
)
RUNTIMES = {"batchcheck.backends.tf": ("tensorflow", "keras", "tf_keras"),
            "batchcheck.backends.onnx": ("onnx", "onnxruntime")}
MAX_LINES = 400


def modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def imports(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """Every module `name` imports, anywhere in its file (absolute names; outside modules by their top name)."""
    is_package = path.name == "__init__.py"
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".")[:len(name.split(".")) - node.level + is_package]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module
            for alias in node.names:
                found.add(f"{target}.{alias.name}" if f"{target}.{alias.name}" in known else target)
    return found


def layer_of(name: str) -> int:
    matches = [(len(prefix), index) for index, (_, prefixes) in enumerate(LAYERS) for prefix in prefixes
               if name == prefix or name.startswith(prefix + ".")]
    assert matches, f"module {name} is in no layer: add it to LAYERS (and to docs/how-it-works.md)"
    return max(matches)[1]


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    known = modules()
    return {name: imports(name, path, known) for name, path in known.items()}


def test_every_module_imports_only_its_own_layer_or_below(graph) -> None:
    upward = [f"{module} ({LAYERS[layer_of(module)][0]}) imports {target} ({LAYERS[layer_of(target)][0]})"
              for module, targets in graph.items() for target in targets
              if target.startswith("batchcheck") and layer_of(target) > layer_of(module)]
    assert not upward, "\n".join(upward)


def test_no_import_cycles(graph) -> None:
    inner = {m: {t for t in targets if t in graph} for m, targets in graph.items()}
    state: dict[str, int] = {}
    cycles = []

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for target in sorted(inner[module]):
            if state.get(target) == 1:
                cycles.append(" -> ".join(path[path.index(target):] + [target]))
            elif target not in state:
                visit(target, path + [target])
        state[module] = 2

    for module in sorted(inner):
        if module not in state:
            visit(module, [module])
    assert not cycles, "\n".join(cycles)


def test_only_a_backend_imports_its_runtime(graph) -> None:
    def inside(name: str, folder: str) -> bool:
        return name == folder or name.startswith(f"{folder}.")

    for folder, runtimes in RUNTIMES.items():
        outside = [f"{module} imports {target}" for module, targets in graph.items() if not inside(module, folder)
                   for target in targets if target.split(".")[0] in runtimes or inside(target, folder)]
        assert not outside, "\n".join(outside)


def test_modules_stay_small() -> None:
    long = {name: len(path.read_text().splitlines()) for name, path in modules().items()}
    assert not {name: lines for name, lines in long.items() if lines > MAX_LINES}
