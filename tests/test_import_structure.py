"""The package's imports: no cycle, no front door importing another, and nothing the plugin runs imports its dev tooling on load.

The imports are read from the source (``ast``), as they stand, so a lazy import inside a
function counts for cycles too; imports under ``if TYPE_CHECKING:`` never run and are left out.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "plexsync_recovery_plugin"
NAME = PACKAGE.name
#: Developer tooling and the test kit: only the command line's ``bench``/``demo`` load it, when run.
DEV = (f"{NAME}.dev", f"{NAME}.testing")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(path): path for path in PACKAGE.rglob("*.py")}


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _targets(module: str, node: ast.Import | ast.ImportFrom) -> set[str]:
    """The package modules an import statement loads (``from . import x`` names module ``x``)."""
    if isinstance(node, ast.Import):
        return {alias.name for alias in node.names if alias.name in MODULES}
    if node.level:
        base = module.split(".") if MODULES[module].name == "__init__.py" else module.split(".")[:-1]
        base = base[: len(base) - node.level + 1]
        target = ".".join(base + ([node.module] if node.module else []))
    else:
        target = node.module or ""
    found = {f"{target}.{alias.name}" for alias in node.names if f"{target}.{alias.name}" in MODULES}
    if target in MODULES and len(found) < len(node.names):
        found.add(target)
    return found


def _imports(module: str) -> tuple[set[str], set[str]]:
    """``(at load time, anywhere)``: the package modules ``module`` imports, TYPE_CHECKING blocks left out."""
    at_load: set[str] = set()
    anywhere: set[str] = set()

    def visit(node: ast.AST, in_function: bool) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child, in_function)
            return
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            targets = _targets(module, node) - {module}
            anywhere.update(targets)
            if not in_function:
                at_load.update(targets)
        inside = in_function or isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
        for child in ast.iter_child_nodes(node):
            visit(child, inside)

    visit(ast.parse(MODULES[module].read_text()), False)
    return at_load, anywhere


GRAPH = {module: _imports(module) for module in MODULES}


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in edges[node]:
            if nxt not in index:
                connect(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for node in edges:
        if node not in index:
            connect(node)
    return found


def test_the_package_has_no_import_cycle():
    assert _cycles({module: anywhere for module, (_, anywhere) in GRAPH.items()}) == []


def test_no_runtime_module_imports_dev_tooling_when_it_loads():
    runtime = {module for module in MODULES if not module.startswith(DEV)}
    offenders = {
        module: sorted(target for target in at_load if target.startswith(DEV))
        for module, (at_load, _) in GRAPH.items()
        if module in runtime
    }
    assert {module: found for module, found in offenders.items() if found} == {}


def test_the_checks_see_a_cycle_and_a_dev_import():
    """The two checks above can fail: a planted cycle and a planted dev import are found."""
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    at_load, _ = GRAPH[f"{NAME}.cli.dev_cmds"]
    _, anywhere = GRAPH[f"{NAME}.cli.dev_cmds"]
    assert not any(target.startswith(DEV) for target in at_load)
    assert f"{NAME}.dev.bench" in anywhere  # loaded lazily, when the command runs


#: The front doors: each parses, calls the one API and prints its answers. ``stash_plugin.install``
#: is not a door (it copies the plugin's files) and the command line's ``stash-plugin`` uses it.
DOORS = {
    "command line": (f"{NAME}.cli",),
    "Stash plugin": tuple(
        m for m in MODULES if m.startswith(f"{NAME}.stash_plugin.") and m != f"{NAME}.stash_plugin.install"
    ),
    "daemon": (f"{NAME}.worker.watch",),
    "status page": (f"{NAME}.web",),
}
#: The one way a door may load another: ``plexsync-recovery watch`` is the daemon's process, and
#: with ``--http`` it serves the status page from it.
HOSTS = {("command line", "daemon"), ("command line", "status page")}


def _door_of(module: str) -> str | None:
    return next((door for door, names in DOORS.items() if any(module == n or module.startswith(n + ".") for n in names)), None)


def _doors_crossed(graph: dict[str, tuple[set[str], set[str]]]) -> set[tuple[str, str, str, str]]:
    crossed = set()
    for module, (_, anywhere) in graph.items():
        door = _door_of(module)
        for target in anywhere:
            other = _door_of(target)
            if door and other and other != door and (door, other) not in HOSTS:
                crossed.add((door, other, module, target))
    return crossed


def test_front_doors_never_import_each_other():
    """Doors share the API and ``formatting`` beneath them, so no door prints another's words."""
    assert _doors_crossed(GRAPH) == set()


def test_the_door_check_sees_a_crossing():
    stash_task = f"{NAME}.stash_plugin.tasks"
    planted = {**GRAPH, stash_task: (set(), GRAPH[stash_task][1] | {f"{NAME}.cli.commands"})}
    assert _doors_crossed(planted) == {("Stash plugin", "command line", stash_task, f"{NAME}.cli.commands")}
