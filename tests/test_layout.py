"""The package layout: imports flow one way (cli -> training -> evaluation -> inference -> data, models -> base),
no cycles, the core never imports the terminal libraries, and every module imports on its own."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "s2s_cli"
BASE = {
    "s2s_cli",
    "s2s_cli.errors",
    "s2s_cli.tokens",
    "s2s_cli.languages",
    "s2s_cli.config",
    "s2s_cli.presets",
    "s2s_cli.files",
    "s2s_cli.manifest",
    "s2s_cli.memory",
}
# Each layer may import its own package and any layer below it. data and models sit side by side, apart.
LAYERS = [
    ("base", lambda m: m in BASE or m == "s2s_cli.rundir"),
    ("data", lambda m: m.startswith("s2s_cli.data")),
    ("models", lambda m: m.startswith("s2s_cli.models")),
    ("inference", lambda m: m.startswith("s2s_cli.inference")),
    ("evaluation", lambda m: m == "s2s_cli.evaluation"),
    ("training", lambda m: m.startswith("s2s_cli.training")),
    ("cli", lambda m: m.startswith("s2s_cli.cli") or m in ("s2s_cli.console", "s2s_cli.__main__")),
]
BELOW = {
    "base": {"base"},
    "data": {"base", "data"},
    "models": {"base", "models"},
    "inference": {"base", "data", "models", "inference"},
    "evaluation": {"base", "data", "models", "inference", "evaluation"},
    "training": {"base", "data", "models", "inference", "evaluation", "training"},
    "cli": {"base", "data", "models", "inference", "evaluation", "training", "cli"},
}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def layer(module: str) -> str:
    return next(name for name, member in LAYERS if member(module))


def imports(path: Path, top_level_only: bool = False) -> set[str]:
    """The modules a file imports (`from s2s_cli.x import y` counts as s2s_cli.x.y when that is a module)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    nodes = tree.body if top_level_only else ast.walk(tree)
    found = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names if f"{node.module}.{alias.name}" in MODULES}
    return found


def test_every_module_is_in_a_layer():
    for module in MODULES:
        assert layer(module), module


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_flow_one_way(module):
    allowed = BELOW[layer(module)]
    for imported in imports(MODULES[module]):
        if imported in MODULES and imported != module:
            assert layer(imported) in allowed, f"{module} ({layer(module)}) imports {imported} ({layer(imported)})"


def test_the_core_never_imports_the_terminal_libraries():
    for module, path in MODULES.items():
        if layer(module) != "cli":
            assert not {name.split(".")[0] for name in imports(path)} & {"typer", "rich"}, module


def test_no_import_cycles():
    graph = {m: {i for i in imports(p, top_level_only=True) if i in MODULES and i != m} for m, p in MODULES.items()}
    graph = {m: {i for i in deps if not m.startswith(i + ".")} for m, deps in graph.items()}  # a package's own parent

    done: set[str] = set()

    def visit(module: str, path: list[str]) -> None:
        assert module not in path, " -> ".join([*path[path.index(module) :], module])
        if module not in done:
            for dep in graph[module]:
                visit(dep, [*path, module])
            done.add(module)

    for module in graph:
        visit(module, [])


def test_every_module_imports_in_a_fresh_interpreter():
    code = "import importlib, sys\nfor name in sys.argv[1:]:\n    importlib.import_module(name)\n"
    modules = [m for m in MODULES if m != "s2s_cli.__main__"]
    result = subprocess.run([sys.executable, "-c", code, *modules], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]


def test_modules_stay_small():
    for module, path in MODULES.items():
        lines = len(path.read_text(encoding="utf-8").splitlines())
        assert lines <= 320, f"{module} has {lines} lines: split it by concern"
