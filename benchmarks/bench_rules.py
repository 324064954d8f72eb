"""Loading rule files (``--rules``) against py-idstools' rule parser.

    PYTHONPATH=. python benchmarks/bench_rules.py DIR|FILE... [--rounds 5] [--sid-msg MAP]

A ruleset is not committed (the Emerging Threats open ruleset is 10+ MB):
name one on the command line (a directory of ``*.rules``, as ``--rules``
takes it; e.g. a checkout of a repository mirroring ``emerging-*.rules``).

Each round, in this order, both in this process: (a) py-idstools 0.6.5
``idstools.rule.parse_file`` over every file (the parser suricata-update
grew from), (b) ``ingest.maps.Maps.load(rules=...)``, the whole start-up
load (read, parse, pick the winner per sid, build the signature map).  The
result is the median of the within-round ratios (b)/(a) in rules/s, with
their range, and the best wall time of each.

It also says what each found (rules, commented out, bad lines) and, with
``--sid-msg``, how many entries of that sid-msg.map (from the same
snapshot) carry exactly the rule's message.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time


def files_of(specs: list[str]) -> list[str]:
    from ingest.rules import rule_files

    return [f for s in specs for f in rule_files(s)]


def run_idstools(files: list[str]) -> tuple[float, int]:
    from idstools import rule as IR

    t = time.perf_counter()
    n = 0
    for f in files:
        n += len(IR.parse_file(f))
    return time.perf_counter() - t, n


def run_ingest(specs: list[str]):
    from ingest.maps import Maps

    t = time.perf_counter()
    m = Maps.load(rules=specs)
    return time.perf_counter() - t, m


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("rules", nargs="+", help="rule files or directories of *.rules")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--sid-msg", help="a sid-msg.map of the same snapshot, to compare messages")
    ns = ap.parse_args()
    files = files_of(ns.rules)
    size = sum(os.path.getsize(f) for f in files)
    print(f"{len(files)} rule files, {size / 1e6:.1f} MB; python {sys.version.split()[0]}")
    ratios, t_ids, t_ing = [], [], []
    m = None
    n_ids = 0
    for _ in range(ns.rounds):
        a, n_ids = run_idstools(files)
        b, m = run_ingest(ns.rules)
        t_ids.append(a)
        t_ing.append(b)
        ratios.append(a / b)  # same rules read: the rate ratio is the time ratio
    assert m is not None
    active_disabled = m.rules_summary
    print(f"ingest: {active_disabled}; {len(m.signatures)} signatures")
    print(f"py-idstools: {n_ids} rules parsed")
    print(f"(a) py-idstools parse_file   best {min(t_ids):.3f} s")
    print(f"(b) ingest Maps.load(rules)  best {min(t_ing):.3f} s")
    print(f"(b)/(a) speed: median {statistics.median(ratios):.1f}x "
          f"(range {min(ratios):.1f}x-{max(ratios):.1f}x, {ns.rounds} rounds)")
    if ns.sid_msg:
        from ingest.maps import parse_sid_msg

        entries = parse_sid_msg(ns.sid_msg)
        same = sum(1 for e in entries if (s := m.signature(e.gid, e.sid)) is not None and s.msg == e.msg)
        missing = sum(1 for e in entries if m.signature(e.gid, e.sid) is None)
        print(f"sid-msg.map: {len(entries)} entries, {same} with the rule's message, "
              f"{missing} without a rule, {len(entries) - same - missing} with another message")
    return 0


if __name__ == "__main__":
    sys.exit(main())
