"""The code's shape: no import cycle, kernels independent of the harness, small modules."""

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("bench", "kernels")
#: The longest a module of bench/ may be, in lines.
MOST_LINES = 400


def modules() -> dict[str, Path]:
    """``{dotted name: file}`` of every module of bench/ and kernels/ (a package as its __init__)."""
    found = {}
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            parts = path.relative_to(REPO).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def imports(name: str, path: Path, known: dict) -> set[str]:
    """The modules of ``known`` that ``path`` imports, wherever the import statement is (inside
    functions too): ``from .x import y`` names ``x`` (or ``x.y`` where that is a module)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[:len(anchor) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
        else:
            continue
        for target in targets:
            while target and target not in known:  # a name inside a module: the module
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def graph() -> dict[str, set[str]]:
    known = modules()
    return {name: imports(name, path, known) for name, path in known.items()}


def cycle(edges: dict[str, set[str]]) -> list[str]:
    """One import cycle of ``edges`` as the list of its modules, or [] (depth-first search)."""
    state, stack = {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == "open":
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = "done"
        return []

    for node in sorted(edges):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return []


def test_the_graph_finds_a_cycle_where_there_is_one():
    assert cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]
    assert cycle({"a": {"b"}, "b": {"c"}, "c": set()}) == []
    known = modules()
    assert "bench.results.files" in imports("bench.results.rows", known["bench.results.rows"], known)
    assert "kernels.spec" in imports("kernels.base", known["kernels.base"], known)


def test_no_import_cycle_in_bench_or_kernels():
    assert cycle(graph()) == []


def test_kernels_import_nothing_from_bench():
    edges = graph()
    assert {(m, t) for m, targets in edges.items() if m.startswith("kernels") for t in targets
            if t.startswith("bench")} == set()


def test_no_module_of_bench_is_over_400_lines():
    sizes = {name: len(path.read_text().splitlines()) for name, path in modules().items() if name.startswith("bench")}
    assert {name: n for name, n in sizes.items() if n > MOST_LINES} == {}
