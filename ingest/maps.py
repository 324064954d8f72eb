"""Snort/Suricata rule metadata maps: sid-msg.map, gen-msg.map,
classification.config and reference.config.

* ``sid-msg.map`` v1 (``sid || msg || ref...``) and v2 (``gid || sid || rev
  || classification || priority || msg || ref...``), told apart per line so
  files with or without a ``#v1``/``#v2`` header, comments, blank lines or a
  stray trailing ``||`` all load (barnyard2 #113/#204).
* ``gen-msg.map`` (``gid || sid || msg``); a lookup for gid 3 (shared-object
  rules) falls back to gid 1, as Snort and py-idstools do.
* ``classification.config``: ``config classification: name,description,prio``;
  the class id is the 1-based order of the entries (what Snort writes into
  Unified2 and Alertpkt events).  By id for Unified2/Snort, by name for EVE.
* ``reference.config``: ``config reference: system url-prefix``.
* rule files (``--rules FILE|DIR``, ingest.rules): Snort 2/3 and Suricata
  rules give the signatures themselves; a bad rule line is counted and
  reported (:attr:`Maps.problems`), never fatal.

Which source gives a (gid, sid)'s signature, from the weakest to the
strongest (a later one replaces an earlier one): gen-msg.map, then
commented-out (disabled) rules, then sid-msg.map, then active rules.  The
rules the engine runs are what produced the alert, so they win over a map
made beside them (often by a tool run at another time); a sid-msg.map still
beats a disabled rule, and a disabled rule only fills a gap.  A rule's
priority is its ``priority:`` option, else its classtype's priority from
classification.config (none without one).

A loaded :class:`Maps` is immutable; reloading builds a new one and the
caller swaps it in with one assignment (atomic for readers).
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
from dataclasses import dataclass, field

import numpy as np

#: conventional file names looked for by ``--maps DIR``: an exact name first
#: (in this order), else one file whose name ends with ``-NAME``, ``_NAME``
#: or ``.NAME`` (``snort-sid-msg.map``, ``et_classification.config``); two
#: such candidates are ambiguous and refused (name the file with its flag)
SID_MSG_NAMES = ("sid-msg.map", "sid-msg-v2.map", "sid_msg.map")
GEN_MSG_NAMES = ("gen-msg.map", "gen_msg.map")
CLASSIFICATION_NAMES = ("classification.config",)
REFERENCE_NAMES = ("reference.config",)


class MapError(ValueError):
    """A map that cannot be used; the message names the file and line
    (``FILE:LINE: problem: 'the line'``).  At start-up it is a refusal (exit
    2); on a reload the old maps stay and this is the reason given."""


@dataclass(frozen=True)
class Signature:
    gid: int
    sid: int
    rev: int | None
    msg: str
    classification: str | None = None
    priority: int | None = None
    refs: tuple[str, ...] = ()
    #: a rule's metadata entries (``policy balanced-ips drop``, ...)
    metadata: tuple[str, ...] = ()


@dataclass(frozen=True)
class Classification:
    id: int
    name: str
    description: str
    priority: int


def _split(line: str) -> list[str]:
    parts = [p.strip() for p in line.split("||")]
    while parts and parts[-1] == "":  # stray trailing "||"
        parts.pop()
    return parts


def _int(text: str) -> int | None:
    """A decimal field that fits the alerts' unsigned 32-bit columns."""
    if not text.isascii() or not text.isdigit() or len(text) > 10:
        return None
    v = int(text)
    return v if v < 1 << 32 else None


def _lines(path: str):
    with open(path, encoding="utf-8-sig", errors="replace") as f:  # a BOM (Windows editors) is no part of line 1
        for n, raw in enumerate(f, 1):
            line = raw.strip()
            if line and not line.startswith("#"):
                yield n, line


def _bad(path: str, n: int, problem: str, line: str) -> MapError:
    shown = line if len(line) <= 100 else line[:97] + "..."
    return MapError(f"{path}:{n}: {problem}: {shown!r}")


def parse_sid_msg(path: str) -> list[Signature]:
    """sid-msg.map v1 (``sid || msg || ref...``) or v2 (``gid || sid || rev
    || classification || priority || msg || ref...``), told apart per line;
    headers, comments and blank lines are skipped, anything else is a
    MapError naming the line."""
    out: list[Signature] = []
    for n, line in _lines(path):
        p = _split(line)
        if len(p) >= 6 and _int(p[0]) is not None and _int(p[1]) is not None \
                and _int(p[2]) is not None:
            prio = _int(p[4])
            if prio is None:
                raise _bad(path, n, "v2 entry whose priority is not a number", line)
            if not p[5]:
                raise _bad(path, n, "v2 entry without a message", line)
            cls = None if p[3] in ("", "NOCLASS") else p[3]
            out.append(Signature(int(p[0]), int(p[1]), int(p[2]), p[5], cls, prio, tuple(p[6:])))
        elif len(p) >= 2 and _int(p[0]) is not None and p[1]:
            out.append(Signature(1, int(p[0]), None, p[1], None, None, tuple(p[2:])))
        else:
            raise _bad(path, n, "not a sid-msg.map entry (v1 'sid || msg || ref...' or v2 "
                                "'gid || sid || rev || classification || priority || msg || ref...')",
                       line)
    return out


def parse_gen_msg(path: str) -> list[Signature]:
    """gen-msg.map: ``gid || sid || msg``; anything else is a MapError."""
    out: list[Signature] = []
    for n, line in _lines(path):
        p = _split(line)
        if len(p) >= 3 and _int(p[0]) is not None and _int(p[1]) is not None and p[2]:
            out.append(Signature(int(p[0]), int(p[1]), None, p[2]))
        else:
            raise _bad(path, n, "not a gen-msg.map entry ('gid || sid || msg')", line)
    return out


_CLASS_RE = re.compile(r"^config\s+classification\s*:\s*(.*)$", re.I)
_REF_RE = re.compile(r"^config\s+reference\s*:\s*(\S+)\s+(\S+)\s*$", re.I)


def parse_classification(path: str) -> list[Classification]:
    """``config classification: name,description,priority``; the class id is
    the entry's 1-based position.  Anything else is a MapError."""
    out: list[Classification] = []
    for n, line in _lines(path):
        m = _CLASS_RE.match(line)
        if not m:
            raise _bad(path, n, "not a 'config classification: name,description,priority' line",
                       line)
        parts = [p.strip() for p in m.group(1).split(",")]
        prio = _int(parts[-1]) if len(parts) >= 3 else None
        if prio is None or not parts[0]:
            raise _bad(path, n, "classification needs a name, a description and a numeric "
                                "priority", line)
        desc = ",".join(parts[1:-1]).strip()
        out.append(Classification(len(out) + 1, parts[0], desc, prio))
    return out


def parse_reference(path: str) -> dict[str, str]:
    """``config reference: system url-prefix``; anything else is a MapError."""
    out: dict[str, str] = {}
    for n, line in _lines(path):
        m = _REF_RE.match(line)
        if not m:
            raise _bad(path, n, "not a 'config reference: system url-prefix' line", line)
        out[m.group(1).lower()] = m.group(2)
    return out


@dataclass(frozen=True)
class Maps:
    """Loaded maps (immutable).  Build with :meth:`load` or :meth:`from_dir`."""

    signatures: dict[tuple[int, int], Signature] = field(default_factory=dict)
    classifications: dict[int, Classification] = field(default_factory=dict)
    references: dict[str, str] = field(default_factory=dict)
    #: the files loaded, and a digest of their contents (the map version)
    files: tuple[str, ...] = ()
    digest: str = ""
    #: (kind, file, entries) per file loaded, for the start-up line
    counts: tuple[tuple[str, str, int], ...] = ()
    #: rule files: one start-up phrase (None without --rules), the number of
    #: bad rule lines and the first of them (``FILE:LINE: problem: 'line'``)
    rules_summary: str | None = None
    bad_rules: int = 0
    problems: tuple[str, ...] = ()
    #: (gid, sid) -> rendered ``alert.references`` (a JSON array), built on use
    _refs_json: dict[tuple[int, int], str | None] = field(default_factory=dict, repr=False,
                                                          compare=False)

    @classmethod
    def load(cls, *, sid_msg: str | None = None, gen_msg: str | None = None,
             classification: str | None = None, reference: str | None = None,
             rules: tuple[str, ...] | list[str] = ()) -> Maps:
        """Load the given files (rules: rule files or directories of
        ``*.rules``); MapError (naming FILE:LINE) on a malformed map line or
        a rules directory without rules, OSError when a file cannot be read.
        A bad rule line is no error: it is counted (:attr:`bad_rules`)."""
        from . import rules as R

        sigs: dict[tuple[int, int], Signature] = {}
        counts: list[tuple[str, str, int]] = []
        files = [p for p in (gen_msg, sid_msg, classification, reference) if p]
        classes = {c.id: c for c in parse_classification(classification)} if classification else {}
        by_name = {c.name: c for c in classes.values()}
        h = hashlib.sha256()
        ruleset = None
        if rules:
            try:
                ruleset = R.load(rules, digest=h)
            except R.RuleError as e:
                raise MapError(str(e)) from None
        if gen_msg:
            gens = parse_gen_msg(gen_msg)
            sigs.update(((s.gid, s.sid), s) for s in gens)
            counts.append(("gen-msg", gen_msg, len(gens)))
        if ruleset is not None:  # disabled rules fill what gen-msg.map left
            sigs.update((k, _rule_signature(r, by_name)) for k, r in ruleset.rules.items()
                        if not r.enabled)
        replaced = 0
        if sid_msg:  # rule messages win over generator messages
            entries = parse_sid_msg(sid_msg)
            sigs.update(((s.gid, s.sid), s) for s in entries)
            counts.append(("sid-msg", sid_msg, len(entries)))
            if ruleset is not None:
                replaced = sum(1 for s in entries if (r := ruleset.rules.get((s.gid, s.sid)))
                               is not None and r.enabled and r.msg and r.msg != s.msg)
        summary = None
        if ruleset is not None:  # active rules win over everything
            sigs.update((k, _rule_signature(r, by_name)) for k, r in ruleset.rules.items()
                        if r.enabled)
            files.extend(ruleset.files)
            nfiles = len(ruleset.files)
            where = os.path.basename(ruleset.files[0]) if nfiles == 1 else f"{nfiles} rule files"
            summary = f"{where} {ruleset.active} rules + {ruleset.disabled} commented out"
            if ruleset.duplicates:
                summary += f" ({ruleset.duplicates} sids read twice)"
            if ruleset.bad:
                summary += f", {ruleset.bad} bad rule lines"
            if replaced:
                summary += f", {replaced} sid-msg.map messages replaced by the rules'"
        if classification:
            counts.append(("classification", classification, len(classes)))
        refs = parse_reference(reference) if reference else {}
        if reference:
            counts.append(("reference", reference, len(refs)))
        for p in (gen_msg, sid_msg, classification, reference):
            if p:
                with open(p, "rb") as f:
                    h.update(hashlib.sha256(f.read()).digest())
        return cls(sigs, classes, refs, tuple(os.path.abspath(p) for p in files),
                   h.hexdigest()[:16], tuple(counts), summary,
                   ruleset.bad if ruleset is not None else 0,
                   tuple(ruleset.problems) if ruleset is not None else ())

    @classmethod
    def from_dir(cls, directory: str, **overrides: str | None) -> Maps:
        """Load the conventional file names found in directory (a Snort etc/
        dir; see SID_MSG_NAMES): an exact name first, else the one file
        named ``PREFIX-NAME`` (``_``/``.`` also separate a prefix).  Explicit
        paths in overrides win.  MapError when nothing is found or a name is
        ambiguous."""
        try:
            entries = sorted(os.listdir(directory))
        except OSError as e:
            raise MapError(f"--maps {directory}: {e.strerror}") from None

        def find(kind: str, names: tuple[str, ...]) -> str | None:
            for name in names:
                p = os.path.join(directory, name)
                if os.path.isfile(p):
                    return p
            found = [e for e in entries if any(e.endswith(sep + name) and len(e) > len(name) + 1
                                               for name in names for sep in "-_.")
                     and os.path.isfile(os.path.join(directory, e))]
            if len(found) > 1:
                raise MapError(f"--maps {directory}: several {kind} files ({', '.join(found)}); "
                               f"name the one to use with --{kind}")
            return os.path.join(directory, found[0]) if found else None

        rules = overrides.pop("rules", None) or ()
        paths: dict[str, str | None] = {k: v for k, v in overrides.items() if v}
        for key, kind, names in (("sid_msg", "sid-msg", SID_MSG_NAMES),
                                 ("gen_msg", "gen-msg", GEN_MSG_NAMES),
                                 ("classification", "classification", CLASSIFICATION_NAMES),
                                 ("reference", "reference", REFERENCE_NAMES)):
            if key not in paths:
                paths[key] = find(kind, names)
        if not any(paths.values()):
            raise MapError(f"--maps {directory}: no sid-msg.map, gen-msg.map, "
                           "classification.config or reference.config found")
        return cls.load(**paths, rules=tuple(rules))

    def describe(self) -> str:
        """One line: what was loaded from where (the start-up line)."""
        noun = {"sid-msg": "signatures", "gen-msg": "generator messages",
                "classification": "classifications", "reference": "reference systems"}
        parts = [f"{os.path.basename(f)} {n} {noun[k]}" for k, f, n in self.counts]
        if self.rules_summary:
            parts.append(self.rules_summary)
        return f"{', '.join(parts) or 'nothing'} (version {self.digest})"

    def warnings(self) -> list[str]:
        """The bad rule lines to report (the first few, FILE:LINE each, and
        how many more there were)."""
        out = list(self.problems)
        if self.bad_rules > len(out):
            out.append(f"... and {self.bad_rules - len(out)} more bad rule lines")
        return out

    def references_json(self, keys: np.ndarray) -> list[str | None]:
        """``alert.references`` for distinct (gid, sid) keys (an (n, 2)
        integer array): a JSON array of the signature's references, each the
        reference.config URL for it (``cve,2003-0352`` ->
        ``http://cve.mitre.org/...=2003-0352``) or, for a system
        reference.config does not name, the reference as the map has it;
        None for a signature without references."""
        out: list[str | None] = []
        cache = self._refs_json
        for g, s in keys.tolist():
            if (g, s) not in cache:
                sig = self.signature(g, s)
                cache[(g, s)] = None if sig is None or not sig.refs else json.dumps(
                    [self.reference_url(r) or r for r in sig.refs], ensure_ascii=False,
                    separators=(",", ":"))
            out.append(cache[(g, s)])
        return out

    @functools.cached_property
    def has_references(self) -> bool:
        return any(s.refs for s in self.signatures.values())

    def signature(self, gid: int, sid: int) -> Signature | None:
        s = self.signatures.get((gid, sid))
        if s is None and gid == 3:
            s = self.signatures.get((1, sid))
        return s

    def classification(self, class_id: int) -> Classification | None:
        return self.classifications.get(class_id)

    @property
    def classifications_by_name(self) -> dict[str, Classification]:
        """For EVE, whose alerts name their classification ("category")."""
        return {c.name: c for c in self.classifications.values()}

    def reference_url(self, ref: str) -> str | None:
        """``cve,2003-0352`` -> the reference.config URL for it."""
        system, _, ident = ref.partition(",")
        prefix = self.references.get(system.strip().lower())
        if prefix is None:
            return None
        return prefix if prefix.startswith(("http://", "https://")) and not ident else \
            (prefix if "://" in prefix else "http://" + prefix) + ident.strip()

    def messages(self, keys: np.ndarray) -> list[str | None]:
        """Messages for distinct (gid, sid) keys (an (n, 2) integer array)."""
        out: list[str | None] = []
        for g, s in keys.tolist():
            sig = self.signature(g, s)
            out.append(sig.msg if sig is not None and sig.msg else None)  # a rule may have no msg
        return out

    def categories(self) -> dict[int, str]:
        """class id -> description, as ``alert.category``."""
        return {cid: c.description for cid, c in self.classifications.items()}


def _rule_signature(r, by_name: dict[str, Classification]) -> Signature:
    """A rule as a Signature: its priority, else its classtype's."""
    prio = r.priority
    if prio is None and r.classtype is not None:
        c = by_name.get(r.classtype)
        prio = c.priority if c is not None else None
    return Signature(r.gid, r.sid, r.rev, r.msg, r.classtype, prio, r.refs, r.metadata)


def report(maps: Maps | None) -> None:
    """Log the start-up (or reload) lines for maps: what was loaded, and
    each bad rule line as a warning (FILE:LINE, the maps' style)."""
    import logging

    if maps is None:
        return
    log = logging.getLogger("ingest.maps")
    log.info(f"maps: {maps.describe()}")
    for w in maps.warnings():
        log.warning(f"rules: {w}")
