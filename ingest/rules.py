"""Signatures read from the rules themselves (``--rules FILE|DIR``).

Snort 2, Snort 3 and Suricata rule files give the signature map directly,
so a user with local rules needs no hand-made sid-msg.map.  From each rule
this reads ``msg``, ``gid`` (default 1), ``sid``, ``rev``, ``classtype``,
``priority``, every ``reference`` and ``metadata``; every other option is
passed over (its value is still tokenised, so a ``;`` or ``)`` inside a
quoted content or pcre does not end it).

What a rule line may look like::

    alert tcp $HOME_NET any -> $EXTERNAL_NET 80 (msg:"..."; sid:1; rev:2;)   Snort 2 / Suricata
    alert http (msg:"..."; flow:to_server; service:http; sid:3; rev:1;)      Snort 3 service rule
    alert ( gid:116; sid:1; rev:2; msg:"(ipv4) ..."; rem:"..."; )            Snort 3 builtin rule
    alert ( msg:"DECODE_NOT_IPV4_DGRAM"; sid:1; gid:116; rev:1; ...)         Snort 2 preproc_rules
    # alert udp any 53 -> any any (msg:"..."; sid:4;)                        commented out (disabled)
    alert tcp any any -> any any ( \\                                          continued lines
        msg:"..."; sid:5; )

* A line ending in ``\\`` continues on the next (the backslash goes, the
  lines are joined); a rule is reported by the number of its first line.
* A commented-out rule (``#`` then an action word, as pulledpork and
  suricata-update disable rules) still gives its text: it is *disabled*,
  but an alert from an older ruleset may still carry its sid.  Disabled
  rules fill gaps; they never replace an active rule.  A comment that does
  not parse as a rule is prose, not an error.
* In an option value ``\\x`` stands for ``x`` (``\\;``, ``\\"``, ``\\\\``),
  quoted strings may hold ``;`` and ``)``; options without a value
  (``nocase;``) and a last option without its ``;`` are accepted.
* A bad rule (no action word, no option list, no or a non-numeric sid,
  gid, rev or priority, a sid or msg given twice, an unterminated quote) is
  counted and reported as ``FILE:LINE: problem: 'the line'`` -- never fatal
  for the rest of the file.  Configuration lines that may sit in a rules
  file (``var``, ``ipvar``, ``portvar``, ``include``, ``config``) are
  passed over.  A file that cannot be read is an error (OSError).

Which rule wins for one (gid, sid): an active rule over a disabled one;
between two of the same kind, the higher rev, then the first read (files
in the order given, a directory's ``*.rules`` sorted by name).  How rules
and sid-msg.map / gen-msg.map combine: see :meth:`ingest.maps.Maps.load`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

#: the first word of a rule: Snort 2, Snort 3 and Suricata actions
ACTIONS = frozenset({
    "alert", "log", "pass", "activate", "dynamic", "drop", "sdrop", "reject",
    "rejectsrc", "rejectdst", "rejectboth", "block", "react", "rewrite",
})
#: configuration lines a rules file may contain; not rules, not errors
DIRECTIVES = frozenset({"var", "ipvar", "portvar", "include", "config"})

# one option: NAME[:VALUE]; the value is quoted strings, escapes and
# anything but ';' and '"'; it ends at ';' or at the end of the body.
# _BODY checks a whole option list at once, _OPTION then lists its options
# (both in the regex engine: no per-character Python)
_NAME = r"\s*([A-Za-z_][\w.\-]*)\s*"
_QUOTED = r'(?::((?:[^;"\\]++|\\.|"(?:[^"\\]++|\\.)*+")*+))?\s*(?:;|$)'
# the same as Snort 2 and Suricata split options: at each ';' not escaped,
# quotes or not (a pcre with a stray '"' in it); tried when the above fails
_PLAIN = r"(?::((?:[^;\\]++|\\.)*+))?\s*(?:;|$)"


def _nocapture(pattern: str) -> str:
    return pattern.replace("([", "(?:[").replace("((", "(?:(")


_OPTION = re.compile(_NAME + _QUOTED, re.S)
_BODY = re.compile(f"(?:{_nocapture(_NAME + _QUOTED)})*+\\s*", re.S)
_OPTION_PLAIN = re.compile(_NAME + _PLAIN, re.S)
_BODY_PLAIN = re.compile(f"(?:{_nocapture(_NAME + _PLAIN)})*+\\s*", re.S)
#: the options read; every other one is passed over
_WANTED = frozenset({"msg", "sid", "gid", "rev", "classtype", "priority", "reference", "metadata"})
_UNESCAPE = re.compile(r"\\(.)", re.S)
_SPLIT_COMMA = re.compile(r"\s*,\s*")
# "# alert ..." / "#alert ..." / "## alert ...": a commented-out rule's start
_COMMENTED = re.compile(r"#[\s#]*([a-z]+)\s")


@dataclass(frozen=True)
class Rule:
    gid: int
    sid: int
    rev: int | None
    msg: str
    classtype: str | None
    priority: int | None
    refs: tuple[str, ...]
    metadata: tuple[str, ...]
    enabled: bool
    file: str
    line: int


@dataclass
class RuleSet:
    """What a set of rule files gave: the winning rule per (gid, sid), and
    what was counted on the way."""

    rules: dict[tuple[int, int], Rule] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)
    #: rules read (each file's active and disabled rules, duplicates included)
    active: int = 0
    disabled: int = 0
    #: (gid, sid) read again (the other copy lost: see the module docstring)
    duplicates: int = 0
    #: bad rule lines, and the first of them as ``FILE:LINE: problem: 'line'``
    bad: int = 0
    problems: list[str] = field(default_factory=list)

    #: how many problems are kept to be shown (the count covers all)
    KEEP = 20

    def _problem(self, path: str, n: int, problem: str, text: str) -> None:
        self.bad += 1
        if len(self.problems) < self.KEEP:
            shown = text if len(text) <= 100 else text[:97] + "..."
            self.problems.append(f"{path}:{n}: {problem}: {shown!r}")

    def _add(self, r: Rule) -> None:
        if r.enabled:
            self.active += 1
        else:
            self.disabled += 1
        key = (r.gid, r.sid)
        old = self.rules.get(key)
        if old is not None:
            self.duplicates += 1
            if (old.enabled, old.rev or 0) >= (r.enabled, r.rev or 0):
                return
        self.rules[key] = r


class RuleError(ValueError):
    pass


def _int(text: str, what: str) -> int:
    t = text.strip()
    if not t.isascii() or not t.isdigit() or len(t) > 10 or int(t) >= 1 << 32:
        raise RuleError(f"{what} is not a number from 0 to 4294967295")
    return int(t)


def _unquote(value: str) -> str:
    v = value.strip()
    if len(v) >= 2 and v[0] == '"' and v[-1] == '"':
        v = v[1:-1]
    return _UNESCAPE.sub(r"\1", v) if "\\" in v else v


def parse_rule(text: str, *, enabled: bool = True, file: str = "", line: int = 0) -> Rule:
    """One rule's text (continuations joined, no leading '#'); RuleError
    saying what is wrong."""
    action, _, _ = text.partition(" ")
    if action.partition("(")[0] not in ACTIONS:
        raise RuleError("not a rule (it starts with no action word such as alert or drop)")
    start = text.find("(")
    end = text.rstrip().rfind(")")
    if start < 0 or end != len(text.rstrip()) - 1 or end < start:
        raise RuleError("no option list '( ... )' at the end of the rule")
    body = text[start + 1:end]
    if _BODY.fullmatch(body):
        return _options(_OPTION.findall(body), enabled, file, line)
    if _BODY_PLAIN.fullmatch(body):
        return _options(_OPTION_PLAIN.findall(body), enabled, file, line)
    bad = _BODY.match(body).end()  # type: ignore[union-attr]  # (matches at least "")
    raise RuleError(f"cannot read the options from {body[bad:bad + 30]!r} on (an unterminated quote?)")


def _options(options: list[tuple[str, str]], enabled: bool, file: str, line: int) -> Rule:
    msg = classtype = None
    gid = sid = rev = priority = None
    refs: list[str] = []
    meta: list[str] = []
    for name, value in options:
        if name not in _WANTED:
            continue
        if name == "msg":
            if msg is not None:
                raise RuleError("msg given twice")
            msg = _unquote(value)
        elif name == "sid":
            if sid is not None:
                raise RuleError("sid given twice")
            sid = _int(value, "sid")
        elif name == "gid":
            if gid is not None:
                raise RuleError("gid given twice")
            gid = _int(value, "gid")
        elif name == "rev":
            rev = _int(value, "rev")
        elif name == "classtype":
            classtype = value.strip() or None
        elif name == "priority":
            priority = _int(value, "priority")
        elif name == "reference":
            ref = _unquote(value)
            system, _, ident = ref.partition(",")
            refs.append(f"{system.strip()},{ident.strip()}" if ident else ref.strip())
        elif name == "metadata":
            meta.extend(x for x in _SPLIT_COMMA.split(_unquote(value)) if x)
    if sid is None:
        raise RuleError("no sid")
    return Rule(1 if gid is None else gid, sid, rev, msg or "", classtype, priority, tuple(refs),
                tuple(meta), enabled, file, line)


def _logical_lines(text: str) -> Iterable[tuple[int, str]]:
    """(first line number, text) with '\\'-continued lines joined."""
    pending: list[str] = []
    first = 0
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.rstrip()
        if pending:
            part = line.lstrip()
            if part.startswith("#") and pending[0].lstrip().startswith("#"):
                part = part.lstrip("#").lstrip()  # a commented-out multi-line rule
            if part.endswith("\\"):
                pending.append(part[:-1])
                continue
            pending.append(part)
            yield first, " ".join(p.strip() for p in pending)
            pending = []
            continue
        if line.endswith("\\"):
            pending, first = [line[:-1]], n
            continue
        yield n, line
    if pending:
        yield first, " ".join(p.strip() for p in pending)


def read_text(text: str, path: str, into: RuleSet) -> None:
    """Add the rules of one file's text to into."""
    for n, line in _logical_lines(text):
        s = line.strip()
        if not s:
            continue
        if s[0] == "#":
            m = _COMMENTED.match(s)
            if m is None or m.group(1) not in ACTIONS or "sid" not in s:
                continue  # prose
            try:
                into._add(parse_rule(s[m.start(1):], enabled=False, file=path, line=n))
            except RuleError:
                pass  # a comment that mentions an action word: prose after all
            continue
        first = s.split(None, 1)[0]
        if first in DIRECTIVES:
            continue
        try:
            into._add(parse_rule(s, file=path, line=n))
        except RuleError as e:
            into._problem(path, n, str(e), s)


def rule_files(spec: str) -> list[str]:
    """A FILE, or a DIR's ``*.rules`` files sorted by name (RuleError when
    it cannot be listed or holds none)."""
    if os.path.isdir(spec):
        try:
            entries = os.listdir(spec)
        except OSError as e:
            raise RuleError(f"--rules {spec}: {e.strerror or e}") from None
        names = sorted(e for e in entries if e.endswith(".rules")
                       and os.path.isfile(os.path.join(spec, e)))
        if not names:
            raise RuleError(f"--rules {spec}: no *.rules files in this directory")
        return [os.path.join(spec, e) for e in names]
    return [spec]


def load(specs: Iterable[str], digest=None) -> RuleSet:
    """Read every rule file named by specs (files, or directories of
    ``*.rules``).  RuleError when a file cannot be read; digest (a hashlib
    object), when given, is fed each file's bytes."""
    out = RuleSet()
    for spec in specs:
        for path in rule_files(spec):
            try:
                with open(path, "rb") as f:
                    data = f.read()
            except OSError as e:  # the file itself unreadable: the one fatal case
                raise RuleError(f"--rules {path}: {e.strerror or e}") from None
            if digest is not None:
                digest.update(data)
            out.files.append(path)
            read_text(data.decode("utf-8-sig", errors="replace"), path, out)
    return out
