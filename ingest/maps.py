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

A loaded :class:`Maps` is immutable; reloading builds a new one and the
caller swaps it in with one assignment (atomic for readers).
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass, field

import numpy as np

#: usual file names looked for by ``--maps DIR`` (first match wins)
SID_MSG_NAMES = ("sid-msg.map", "sid-msg-v2.map", "sid_msg.map")
GEN_MSG_NAMES = ("gen-msg.map", "gen_msg.map")
CLASSIFICATION_NAMES = ("classification.config",)
REFERENCE_NAMES = ("reference.config",)


@dataclass(frozen=True)
class Signature:
    gid: int
    sid: int
    rev: int | None
    msg: str
    classification: str | None = None
    priority: int | None = None
    refs: tuple[str, ...] = ()


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
    try:
        return int(text)
    except ValueError:
        return None


def _lines(path: str):
    with open(path, encoding="utf-8", errors="replace") as f:
        for n, raw in enumerate(f, 1):
            line = raw.strip()
            if line and not line.startswith("#"):
                yield n, line


def parse_sid_msg(path: str) -> list[Signature]:
    """sid-msg.map v1 or v2 (per line; headers and comments ignored)."""
    out: list[Signature] = []
    for _n, line in _lines(path):
        p = _split(line)
        if len(p) >= 6 and _int(p[0]) is not None and _int(p[1]) is not None \
                and _int(p[2]) is not None and _int(p[4]) is not None:
            cls = None if p[3] in ("", "NOCLASS") else p[3]
            out.append(Signature(int(p[0]), int(p[1]), int(p[2]), p[5], cls, int(p[4]),
                                 tuple(p[6:])))
        elif len(p) >= 2 and _int(p[0]) is not None:
            out.append(Signature(1, int(p[0]), None, p[1], None, None, tuple(p[2:])))
        # anything else is not a map entry: skipped
    return out


def parse_gen_msg(path: str) -> list[Signature]:
    out: list[Signature] = []
    for _n, line in _lines(path):
        p = _split(line)
        if len(p) >= 3 and _int(p[0]) is not None and _int(p[1]) is not None:
            out.append(Signature(int(p[0]), int(p[1]), None, p[2]))
    return out


_CLASS_RE = re.compile(r"^config\s+classification\s*:\s*(.*)$", re.I)
_REF_RE = re.compile(r"^config\s+reference\s*:\s*(\S+)\s+(\S+)", re.I)


def parse_classification(path: str) -> list[Classification]:
    out: list[Classification] = []
    for _n, line in _lines(path):
        m = _CLASS_RE.match(line)
        if not m:
            continue
        parts = [p.strip() for p in m.group(1).split(",")]
        if len(parts) < 3:
            continue
        name, prio = parts[0], _int(parts[-1])
        desc = ",".join(parts[1:-1]).strip()
        out.append(Classification(len(out) + 1, name, desc, prio if prio is not None else 0))
    return out


def parse_reference(path: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for _n, line in _lines(path):
        m = _REF_RE.match(line)
        if m:
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

    @classmethod
    def load(cls, *, sid_msg: str | None = None, gen_msg: str | None = None,
             classification: str | None = None, reference: str | None = None) -> Maps:
        sigs: dict[tuple[int, int], Signature] = {}
        files = [p for p in (gen_msg, sid_msg, classification, reference) if p]
        if gen_msg:
            for s in parse_gen_msg(gen_msg):
                sigs[(s.gid, s.sid)] = s
        if sid_msg:  # rule messages win over generator messages
            for s in parse_sid_msg(sid_msg):
                sigs[(s.gid, s.sid)] = s
        classes = {c.id: c for c in parse_classification(classification)} if classification else {}
        refs = parse_reference(reference) if reference else {}
        h = hashlib.sha256()
        for p in files:
            with open(p, "rb") as f:
                h.update(hashlib.sha256(f.read()).digest())
        return cls(sigs, classes, refs, tuple(os.path.abspath(p) for p in files), h.hexdigest()[:16])

    @classmethod
    def from_dir(cls, directory: str, **overrides: str | None) -> Maps:
        """Load the usual file names found in directory (a Snort etc/ dir);
        explicit paths in overrides win."""
        def find(names: tuple[str, ...]) -> str | None:
            for name in names:
                p = os.path.join(directory, name)
                if os.path.isfile(p):
                    return p
            return None

        paths = {
            "sid_msg": find(SID_MSG_NAMES),
            "gen_msg": find(GEN_MSG_NAMES),
            "classification": find(CLASSIFICATION_NAMES),
            "reference": find(REFERENCE_NAMES),
        }
        paths.update({k: v for k, v in overrides.items() if v})
        if not any(paths.values()):
            raise ValueError(f"{directory}: no sid-msg.map, gen-msg.map, classification.config "
                             "or reference.config found")
        return cls.load(**paths)

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
            out.append(sig.msg if sig is not None else None)
        return out

    def categories(self) -> dict[int, str]:
        """class id -> description, as ``alert.category``."""
        return {cid: c.description for cid, c in self.classifications.items()}
