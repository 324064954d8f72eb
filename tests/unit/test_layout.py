"""The package's layout (DESIGN.md): no import cycle anywhere in ``ingest``,
and the runtime never imports a tool (``ingest.bench``, ``ingest.gen``).

Imports are read from the source (every ``import`` statement, also the ones
inside functions), so a lazy import cannot hide a cycle."""

from __future__ import annotations

import ast
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[2]
PKG = ROOT / "ingest"
TOOLS = ("ingest.bench", "ingest.gen")


def _modules() -> dict[str, tuple[pathlib.Path, bool]]:
    mods = {}
    for f in PKG.rglob("*.py"):
        parts = list(f.relative_to(ROOT).with_suffix("").parts)
        if "peers" in parts:  # the bench's peer programs, not modules of the package
            continue
        is_pkg = parts[-1] == "__init__"
        if is_pkg:
            parts = parts[:-1]
        mods[".".join(parts)] = (f, is_pkg)
    return mods


def _graph() -> dict[str, set[str]]:
    mods = _modules()
    graph: dict[str, set[str]] = {}
    for name, (path, is_pkg) in mods.items():
        deps: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                deps.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = name.split(".") if is_pkg else name.split(".")[:-1]
                    base = base[:len(base) - (node.level - 1)]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                for a in node.names:
                    sub = f"{target}.{a.name}"
                    deps.add(sub if sub in mods else target)
        graph[name] = {d for d in deps if d in mods and d != name}
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_no_import_cycle():
    assert _cycles(_graph()) == []


def test_tools_live_in_their_subpackages():
    flat = sorted(p.name for p in PKG.glob("*.py") if p.stem.startswith(("bench", "gen")))
    assert flat == [], "bench/gen modules belong in ingest/bench/ and ingest/gen/"
    assert (PKG / "bench" / "__init__.py").is_file()
    assert (PKG / "gen" / "__init__.py").is_file()


def test_runtime_never_imports_a_tool():
    graph = _graph()
    for mod, deps in graph.items():
        if mod == "ingest.cli" or mod.startswith(TOOLS):
            continue  # the CLI plugs the tools in; tools may use the runtime and each other
        bad = sorted(d for d in deps if d.startswith(TOOLS))
        assert not bad, f"{mod} imports {bad}"
    # gen is the lower tool: the bench drives gen, never the other way round
    for mod, deps in graph.items():
        if mod.startswith("ingest.gen"):
            assert not any(d.startswith("ingest.bench") for d in deps), mod


def test_gen_public_names():
    """``from ingest import gen; gen.alert_specs(...)`` keeps working."""
    from ingest import bench, gen

    specs = gen.alert_specs(3, seed=1, base_time=1_795_000_000)
    assert [s.event_id for s in specs] == [1, 2, 3]
    templates, _ = gen.build_templates("barnyard2", 2, seed=1)
    assert templates.shape == (2, gen.KINDS["barnyard2"][1])
    for name in ("sender_for", "LineSender", "load_eve_records", "write_spool", "add_parser", "run"):
        assert callable(getattr(gen, name)), name
    for name in ("run_bench", "format_report", "add_parser", "run"):
        assert callable(getattr(bench, name)), name
    assert (bench.DEFAULT_PEERS / "recv_count.c").is_file()
    assert (bench.DEFAULT_PEERS / "naive_recv.py").is_file()
