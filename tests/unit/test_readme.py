"""README and ``--help`` agree: the README's command-line synopsis names
exactly the long options each subcommand's parser has (both directions), so
an option added, renamed or removed without the README fails here.  And the
LICENSE file is the license pyproject.toml declares."""

from __future__ import annotations

import argparse
import pathlib
import re
import tomllib

from ingest import cli

ROOT = pathlib.Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()


def _parsers() -> dict[str, argparse.ArgumentParser]:
    """Every (sub)command's parser, by its words ('listen', 'query flows')."""
    out: dict[str, argparse.ArgumentParser] = {}

    def walk(parser: argparse.ArgumentParser, words: str) -> None:
        out[words] = parser
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    walk(sub, f"{words} {name}".strip())

    walk(cli.build_parser(), "")
    return out


def _options(parser: argparse.ArgumentParser) -> set[str]:
    return {o for a in parser._actions for o in a.option_strings
            if o.startswith("--") and o != "--help"}


def _synopsis() -> dict[str, set[str]]:
    """The README's ``## Command line`` block: long options per command."""
    section = README[README.index("## Command line"):]
    block = section[section.index("```\n") + 4:]
    block = block[:block.index("```")]
    commands = set(_parsers())
    found: dict[str, set[str]] = {}
    current = None
    for line in block.splitlines():
        if line.startswith("ingest "):
            words = line.split()[1:]
            name = ""
            for w in words:  # the longest run of words that names a command
                if f"{name} {w}".strip() in commands:
                    name = f"{name} {w}".strip()
                else:
                    break
            current = name
            found.setdefault(current, set())
            if "[every flag of listen]" in line:
                found[current] |= found["listen"]
        assert current is not None, line
        found[current] |= set(re.findall(r"--[a-z0-9][a-z0-9-]*", line.split("#")[0]))
    return found


def test_synopsis_names_every_option_of_every_subcommand():
    parsers = _parsers()
    synopsis = _synopsis()
    leaves = {name for name, p in parsers.items()
              if not any(isinstance(a, argparse._SubParsersAction) for a in p._actions)}
    assert leaves <= set(synopsis), f"subcommands missing from the README synopsis: {leaves - set(synopsis)}"
    for name in sorted(synopsis):
        have = _options(parsers[name])
        said = synopsis[name]
        assert not have - said, f"ingest {name}: options --help has but README lacks: {sorted(have - said)}"
        assert not said - have, f"ingest {name}: options README names but --help lacks: {sorted(said - have)}"


def test_license_matches_pyproject():
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert meta["license"] == {"text": "MIT"}
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("MIT License") and "Permission is hereby granted, free of charge" in text
    assert "the MIT license" in README.lower() or "mit license" in README.lower()


def test_every_option_and_subcommand_says_what_it_does():
    """--help is where a user looks first: no option without a line of help,
    no subcommand without its summary (decode's --maps, pcap's -o and gen's
    --kind had none)."""
    parsers = _parsers()
    for name, parser in parsers.items():
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for choice in action._choices_actions:
                    assert choice.help, f"ingest {name} {choice.dest}: no summary"
            elif action.option_strings:
                assert action.help, f"ingest {name} {'/'.join(action.option_strings)}: no help"


def _section(title: str) -> str:
    text = README[README.index(title):]
    return text[:text.index("\n## ", 1)] if "\n## " in text[1:] else text


def test_stats_example_and_counters_are_what_the_stats_line_has():
    """The README's stats line has the fields a real one has, in order, and
    every counter the code can report is named in the README."""
    from ingest.stats import Stats

    st = Stats()
    st.dispatched["sqlite:./alerts.db"] = 1
    fields = [f.split("=")[0] for f in st.line().split()[2:]]
    block = _section("### Stats")
    example = block[block.index("```\n") + 4:]
    example = example[:example.index("```")].strip().splitlines()[0]
    assert [f.split("=")[0] for f in example.split()[2:]] == fields
    for key in st.snapshot():
        assert f"`{key}`" in README, f"the final stats' {key!r} is not named in the README"
    src = "\n".join(p.read_text() for p in (ROOT / "ingest").rglob("*.py"))
    named = set(re.findall(r"(?:add_extra|set_extra)\(\s*\"([a-z0-9_]+)\"", src))
    named |= set(re.findall(r"stats\.extra\[\"([a-z0-9_]+)\"\]", src))
    named |= set(re.findall(r"_note\(\"([a-z0-9_]+)\"", src))
    named |= {f"eve_{n}" for n in re.findall(r"for name in \(([^)]*)\):\s*\n\s*if res\.counts", src)
              for n in re.findall(r"\"([a-z]+)\"", n)}
    assert "eve_filtered" in named and "unified2_file_shrank" in named
    missing = sorted(k for k in named if f"`{k}`" not in README)
    assert not missing, f"counters the code reports but the README never names: {missing}"
    from ingest.stats import NOTABLE

    periodic = block[block.index("The periodic line adds"):].split("\n\n")[0]
    said = set(re.findall(r"`([a-z0-9_]+)`", periodic))
    assert said == set(NOTABLE), f"periodic line: README {sorted(said)} vs code {sorted(NOTABLE)}"


def test_schema_sketch_is_the_stores_schema(tmp_path):
    """The README's schema block names every table and view of a fresh
    store, and every column of each table, in order."""
    import asyncio
    import sqlite3

    from ingest.sinks.sqlite import SqliteSink

    db = tmp_path / "a.db"
    asyncio.run(SqliteSink(str(db)).aclose())
    con = sqlite3.connect(db)
    try:
        objects = {n: t for t, n in con.execute(
            "SELECT type, name FROM sqlite_master WHERE type IN ('table', 'view')")}
        columns = {n: [r[1] for r in con.execute(f'PRAGMA table_info("{n}")')]
                   for n, t in objects.items() if t == "table"}
    finally:
        con.close()
    block = _section("### The SQLite store")
    block = block[block.index("```sql\n") + 7:]
    block = re.sub(r"--[^\n]*", "", block[:block.index("```")])
    sketch = {m.group(1): [c.strip().strip('"') for c in m.group(2).split(",")] if m.group(2) else None
              for m in re.finditer(r"(\w+)(?:\(([^)]*)\))?", block)}
    assert set(sketch) == set(objects), (sorted(sketch), sorted(objects))
    for name, cols in columns.items():
        assert sketch[name] == cols, f"README's {name}(...) is not the store's {cols}"


def _docs() -> str:
    return "\n".join(p.read_text() for p in (ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))))


def test_every_python_and_c_name_the_docs_give_exists():
    """A renamed function, constant or module leaves no stale name in the
    README or docs/: every ``ingest.module.name`` resolves, every
    ``ingest_*``/``INGEST_*`` C name is in csrc/ingest.h, every repository
    path named exists."""
    import importlib

    text = _docs()
    for dotted in sorted(set(re.findall(r"\bingest(?:\.[A-Za-z_][A-Za-z0-9_]*)+", text))):
        parts = dotted.split(".")
        pkg = ROOT / "ingest" / parts[1]
        if not (pkg.with_suffix(".py").exists() or pkg.is_dir()):
            continue  # a member of the JSON output's "ingest" object (ingest.app_name)
        for i in range(len(parts), 0, -1):  # the longest importable module, then attributes
            try:
                obj = importlib.import_module(".".join(parts[:i]))
            except ImportError:
                continue
            for attr in parts[i:]:
                assert hasattr(obj, attr), f"{dotted}: {attr} not found"
                obj = getattr(obj, attr)
            break
        else:
            raise AssertionError(f"{dotted}: no such module")
    header = (ROOT / "csrc" / "ingest.h").read_text()
    # Prometheus metric names (ingest.ops.metrics builds every family by its name)
    metric_names = set(re.findall(r'"(ingest_[a-z_]+)"', (ROOT / "ingest" / "ops" / "metrics.py").read_text()))
    for name in sorted(set(re.findall(r"\b(?:ingest|INGEST)_[A-Za-z0-9_]+", text))):
        if name in ("ingest_deadletter",) or name.startswith("INGEST_SHARED") or \
                name in ("INGEST_SANITIZE", "INGEST_DEBUG", "INGEST_TEST_SEED", "INGEST_SQLITE_NATIVE",
                         "INGEST_NATIVE_READER"):
            continue  # file names and environment variables, not C names
        if name.removesuffix("_total") in metric_names:
            continue
        assert re.search(rf"\b{name}\b", header), f"{name}: not in csrc/ingest.h"
    for path in sorted(set(re.findall(r"(?<![/\w.-])(?:csrc|ingest|tests|benchmarks|fuzz|docs)/[A-Za-z0-9_./-]*[A-Za-z0-9_]", text))):
        if path.startswith("fuzz/build"):
            continue  # made by fuzz/run.py
        assert (ROOT / path).exists(), f"{path}: named in the docs, not in the repository"
