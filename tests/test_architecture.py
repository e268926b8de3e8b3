"""The shape of src/mailramp (docs/architecture.md): no import cycle between modules or
between packages, no package importing one in a layer above it, and concrete adapters built
by the composition root alone.

Imports are read from the source (ast), as Python would run them: an import inside a
function counts (it runs when the function does); one under `if TYPE_CHECKING:` does not.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

SOURCE = Path(__file__).resolve().parents[1] / "src"
PACKAGE = "mailramp"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SOURCE).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST, module: str, is_package: bool) -> Iterator[str]:
    """Every module `tree` imports at run time: for `from a.b import c`, both `a.b` and
    `a.b.c` (the caller keeps `a.b` only when `c` is not a module of its own: importing a
    submodule is not counted as depending on its package's `__init__`)."""
    stack: list[ast.AST] = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and _is_type_checking(node):
            stack.extend(node.orelse)
            continue
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".")
                anchor = anchor[: len(anchor) - node.level + (1 if is_package else 0)]
                base = ".".join([*anchor, base] if base else anchor)
            yield base
            yield from (f"{base}.{alias.name}" for alias in node.names)
        stack.extend(ast.iter_child_nodes(node))


def import_graph() -> dict[str, set[str]]:
    """Module → the mailramp modules it imports."""
    files = {_module_name(path): path for path in (SOURCE / PACKAGE).rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for module, path in files.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        targets = set(_imports(tree, module, path.name == "__init__.py"))
        parents = {t.rsplit(".", 1)[0] for t in targets if t in files and "." in t}
        graph[module] = {
            t
            for t in targets
            if t in files and t != module and not (t in parents and _only_as_parent(tree, t))
        }
    return graph


def _only_as_parent(tree: ast.AST, package: str) -> bool:
    """Whether `package` appears only as the `from` part of imports of its submodules."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import) and any(a.name == package for a in node.names):
            return False
        if isinstance(node, ast.ImportFrom) and node.module == package and not node.level:
            submodules = [(SOURCE / package.replace(".", "/") / f"{a.name}.py") for a in node.names]
            if not all(path.exists() or path.with_suffix("").is_dir() for path in submodules):
                return False
    return True


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one member (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_import_cycle_between_modules() -> None:
    graph = import_graph()
    assert len(graph) > 100  # the whole package was read
    assert cycles(graph) == []


# Lowest first; a package may import its own layer's packages (acyclically) and those below.
LAYERS = (
    ("kit", "errors", "config"),
    (
        "accounts",
        "auth",
        "mailboxes",
        "metrics",
        "suppression",
        "campaigns",
        "tracking",
        "sending",
        "deliverability",
        "conversations",
        "webhooks",
        "legacy",
    ),
    ("storage", "providers", "oauth", "observability"),
    ("runtime",),
    ("web", "cli", "db_manager", "demo", "__main__"),
)
# The adapters: only the composition root (and the adapters themselves) import them.
ADAPTERS = (
    "mailramp.storage.sql",
    "mailramp.storage.mongo",
    "mailramp.providers",
    "mailramp.oauth",
)
COMPOSITION_ROOT = {"mailramp.runtime"}


def package_of(module: str) -> str:
    """mailramp.sending.worker → mailramp.sending (a top-level module is its own package)."""
    return ".".join(module.split(".")[:2])


def package_graph(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """The module graph with each module folded into its package."""
    folded: dict[str, set[str]] = {}
    for module, targets in graph.items():
        if module == PACKAGE:
            continue
        source = package_of(module)
        edges = folded.setdefault(source, set())
        edges.update(package_of(t) for t in targets if package_of(t) not in (source, PACKAGE))
    return folded


def test_no_import_cycle_between_packages() -> None:
    packages = package_graph(import_graph())
    assert len(packages) >= 20
    assert cycles(packages) == []


def test_no_package_imports_a_higher_layer() -> None:
    layer = {f"{PACKAGE}.{name}": level for level, names in enumerate(LAYERS) for name in names}
    packages = package_graph(import_graph())
    assert set(packages) <= set(layer), f"packages without a layer: {set(packages) - set(layer)}"
    upward = sorted(
        f"{source} -> {target}"
        for source, targets in packages.items()
        for target in targets
        if layer[target] > layer[source]
    )
    assert upward == []


def test_only_the_composition_root_imports_adapters() -> None:
    def is_adapter(module: str) -> bool:
        return any(module == a or module.startswith(a + ".") for a in ADAPTERS)

    outside = sorted(
        f"{module} -> {target}"
        for module, targets in import_graph().items()
        if module not in COMPOSITION_ROOT and not is_adapter(module)
        for target in targets
        if is_adapter(target)
    )
    assert outside == []


def test_the_layer_check_finds_an_upward_import() -> None:
    graph = {"mailramp.sending.worker": {"mailramp.storage.sql.store", "mailramp.kit.clock"}}
    assert package_graph(graph) == {"mailramp.sending": {"mailramp.storage", "mailramp.kit"}}


def test_the_cycle_finder_finds_a_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c"]]
    tree = ast.parse(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from mailramp.runtime import Runtime\n"
        "def f():\n    from mailramp.kit import clock\n"
    )
    assert set(_imports(tree, "mailramp.x", False)) >= {"mailramp.kit", "mailramp.kit.clock"}
    assert "mailramp.runtime" not in set(_imports(tree, "mailramp.x", False))
