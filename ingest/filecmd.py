"""``ingest decode FILE...`` and ``ingest pcap FILE... -o OUT.pcap``: batch
mode over files (u2json / u2eve / u2boat parity).

``decode`` formats: ``unified2`` (streamed in windows), ``alertpkt`` (a file
of back-to-back Alertpkt datagrams of one size), and ``eve`` (Suricata EVE
JSON lines: alerts to every sink, flow/netflow events to the store's
``flows`` table, other events verbatim to JSON sinks, exactly what
``listen --eve-file`` gives, replay keys included).  ``auto`` sniffs the
first bytes; any input may be gzipped.

Inputs: a path, ``-`` (standard input, any format), or a quoted glob that
ingest expands itself (files in numeric-suffix order, as a spool is read).
An ingest bookmark (``*.ingest-bookmark``, which ``snort.u2.*`` matches) is
skipped quietly.  A file that is missing, unreadable or not alert data is
reported and skipped; the others are still decoded.

Exit codes: 0 everything decoded (malformed records inside a file are
reported on stderr, as ``listen`` counts them); 2 a usage or input error
(bad arguments, a sink that cannot be opened, an input file missing,
unreadable or in no known format: reported, the others decoded anyway);
1 a runtime failure (a sink failed or refused records, the output could not
be written).  ``pcap`` leaves no output file behind unless it succeeded.
"""

from __future__ import annotations

import argparse
import asyncio
import glob as globmod
import gzip
import io
import os
import re
import stat
import sys
import tempfile
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np

from .batch import AlertBatch
from .config import sensor_name_arg
from .maps import report as report_maps

#: bytes sniffed at the start of an input
HEAD = 64
#: EVE: bytes read per decode call, and the longest line believed
EVE_CHUNK = 4 << 20
EVE_MAX_LINE = 16 << 20
#: how many malformed records of one file are named one by one
REPORT_MAX = 10
BOOKMARK_SUFFIX = ".ingest-bookmark"
#: EVE reject reasons that say the line is no EVE event at all (a file of
#: nothing else is not EVE); the others (unparsable, bad_timestamp,
#: bad_alert, ...) are EVE events that failed, each its own failure
NOT_EVE = frozenset({"invalid_json", "not_object", "no_event_type", "oversized"})


def add_map_options(p: argparse.ArgumentParser, maps_help: str) -> None:
    """The map options of a command that enriches alerts (decode, collect)."""
    p.add_argument("--maps", metavar="DIR", help=maps_help)
    p.add_argument("--sid-msg", metavar="FILE", help="sid-msg.map (v1 or v2)")
    p.add_argument("--gen-msg", metavar="FILE", help="gen-msg.map")
    p.add_argument("--classification", metavar="FILE", help="classification.config")
    p.add_argument("--reference", metavar="FILE", help="reference.config")
    p.add_argument("--rules", action="append", metavar="FILE|DIR",
                   help="Snort 2/3 or Suricata rule file, or a directory of *.rules files, read as the signature "
                        "map (msg, gid, sid, rev, classtype, priority, references; repeatable)")


def add_parser(sub) -> None:
    d = sub.add_parser("decode", help="decode Unified2 / Alertpkt / EVE files to sinks (default jsonl:-)")
    d.add_argument("files", nargs="+", metavar="FILE", help="a file, - for standard input, or a quoted glob")
    d.add_argument("--format", dest="input_format", default="auto",
                   choices=("auto", "unified2", "alertpkt", "eve"), help="input format (default auto)")
    d.add_argument("--sink", action="append", metavar="URL",
                   help="jsonl:PATH, jsonl:- (stdout), sqlite:PATH, postgresql://... or null: (default jsonl:-)")
    d.add_argument("--profile", choices=("eve", "trisul"), default="eve",
                   help="JSON output profile (default eve; listen calls it --format)")
    d.add_argument("--sensor-name", type=sensor_name_arg, metavar="NAME",
                   help="the sensor name in store rows (default: the host name)")
    d.add_argument("--event-types", metavar="LIST", help="EVE: keep only these event types (comma-separated)")
    add_map_options(d, "load sid-msg.map, gen-msg.map, classification.config, reference.config from DIR")
    d.add_argument("--no-progress", action="store_true", help="no progress bar on a terminal")
    d.set_defaults(run=run_decode)
    p = sub.add_parser("pcap", help="write the packets of Unified2 files as one pcap (u2boat)")
    p.add_argument("files", nargs="+", metavar="FILE", help="a Unified2 file, - for standard input, or a quoted glob")
    p.add_argument("-o", "--output", required=True, metavar="OUT.pcap",
                   help="the pcap file (written through a temporary file), or - for standard output")
    p.set_defaults(run=run_pcap)


class InputError(Exception):
    """An input that cannot be decoded at all (missing, unreadable, no known format)."""


class SinkFailed(Exception):
    """A sink that is down (not one refusing a record): decode stops, exit 1."""


# ---- inputs -------------------------------------------------------------------

def _spool_order(path: str) -> tuple:
    """Numeric-suffix order (snort.u2.9 before snort.u2.10), as a spool is read."""
    return tuple(int(p) if p.isdigit() else p for p in re.split(r"(\d+)", path))


def expand(args: list[str]) -> list[tuple[str, bool]]:
    """'-', paths, and globs ingest expands itself (when no such file
    exists), each with whether it came from a glob.

    A path named on the command line is read whatever it is (a FIFO or
    ``<(zcat spool.gz)`` streams, as with ``cat``); of a glob's matches only
    regular files are read (:func:`open_input` with ``regular_only``): a
    FIFO, socket or directory that happens to match in a shared spool
    directory is reported and skipped, and can never block the command."""
    out: list[tuple[str, bool]] = []
    for a in args:
        if a != "-" and not os.path.lexists(a) and globmod.has_magic(a):
            matches = sorted(globmod.glob(a), key=_spool_order)
            out.extend((m, True) for m in matches)
            if not matches:
                out.append((a, False))  # no match: reported as missing
        else:
            out.append((a, False))
    return out


_BOOKMARK_NAME = re.compile(r"\.ingest-bookmark(\.[0-9a-f]+\.tmp)?$")  # and write_atomic's temp files


def is_bookmark(path: str) -> bool:
    return path != "-" and _BOOKMARK_NAME.search(os.path.basename(path)) is not None


def looks_like_bookmark(raw: bytes) -> bool:
    """A bookmark under another name (--unified2-bookmark, --bookmark-dir):
    a JSON object with a follower's keys and no event_type."""
    import json

    try:
        doc = json.loads(raw)
    except ValueError:
        return False
    return isinstance(doc, dict) and "event_type" not in doc and (
        {"spool", "file", "offset"} <= doc.keys() or {"path", "files"} <= doc.keys())


class _Prefixed(io.RawIOBase):
    """A stream with bytes already read from it put back in front."""

    def __init__(self, head: bytes, rest: BinaryIO) -> None:
        self._head = memoryview(head)
        self._rest = rest

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:  # type: ignore[override]
        if len(self._head):
            n = min(len(b), len(self._head))
            b[:n] = self._head[:n]
            self._head = self._head[n:]
            return n
        return self._rest.readinto(b)  # type: ignore[attr-defined]


#: a UTF-8 byte order mark (an eve.json saved by a Windows editor)
BOM = b"\xef\xbb\xbf"
#: how far a text input that starts with blank lines is read to find its first record
SNIFF_MAX = 1 << 20


def _text_start(head: bytes) -> bytes:
    """head without a leading byte order mark and whitespace."""
    return head.lstrip().removeprefix(BOM).lstrip()


def _read_sniff(f: BinaryIO) -> bytes:
    """The bytes the format is told by: HEAD bytes, or, when those are only
    blank lines (and a BOM), on to the first non-blank byte (at most
    SNIFF_MAX), so an EVE file that starts with blank lines is still EVE."""
    head = _read_head(f, HEAD)
    while len(head) >= HEAD and len(head) < SNIFF_MAX and not _text_start(head):
        more = _read_head(f, 4096)
        if not more:
            break
        head += more
    return head


def _read_head(f: BinaryIO, n: int) -> bytes:
    parts: list[bytes] = []
    have = 0
    while have < n:
        b = f.read(n - have)
        if not b:
            break
        parts.append(b)
        have += len(b)
    return b"".join(parts)


@dataclass
class Input:
    """One opened input: ``stream`` yields its (decompressed) bytes from the
    start; ``head`` is their first bytes.  ``path`` is set for a regular,
    uncompressed file (it can be memory-mapped and given replay keys)."""

    name: str
    stream: BinaryIO
    head: bytes
    path: str | None
    size: int | None  # bytes on disk, for the progress bar
    _closers: list

    def close(self) -> None:
        for c in reversed(self._closers):
            c.close()


def open_input(arg: str, *, regular_only: bool = False) -> Input:
    """Open a path or '-' for reading; InputError if it cannot be (or, with
    ``regular_only``, if it is no regular file: it is then never opened)."""
    if regular_only and arg != "-" and not os.path.isfile(arg):
        raise InputError(f"{arg}: matched by a glob but not a regular file" if os.path.lexists(arg)
                         else f"{arg}: no such file")
    if arg == "-":
        raw: BinaryIO = sys.stdin.buffer
        closers: list = []
        name, regular, size = "<stdin>", False, None
    else:
        try:
            raw = open(arg, "rb")  # closed by Input.close
        except FileNotFoundError:
            raise InputError(f"{arg}: no such file") from None
        except IsADirectoryError:
            raise InputError(f"{arg}: is a directory") from None
        except OSError as e:
            raise InputError(f"{arg}: cannot read: {e.strerror or e}") from None
        st = os.fstat(raw.fileno())
        if stat.S_ISDIR(st.st_mode):
            raw.close()
            raise InputError(f"{arg}: is a directory")
        closers = [raw]
        name, regular = arg, stat.S_ISREG(st.st_mode)
        size = st.st_size if regular else None
    try:
        head = _read_sniff(raw)
    except OSError as e:
        for c in closers:
            c.close()
        raise InputError(f"{name}: cannot read: {e.strerror or e}") from None
    stream: BinaryIO = io.BufferedReader(_Prefixed(head, raw), 1 << 20)  # type: ignore[arg-type]
    path = arg if regular else None
    if head[:2] == b"\x1f\x8b":
        stream = gzip.GzipFile(fileobj=stream, mode="rb")  # type: ignore[assignment]
        closers.append(stream)
        try:
            head = _read_sniff(stream)
        except (OSError, EOFError) as e:
            raise InputError(f"{name}: damaged gzip data: {e}") from None
        stream = io.BufferedReader(_Prefixed(head, stream), 1 << 20)  # type: ignore[arg-type]
        path = None
    return Input(name, stream, head, path, size, closers)


def sniff_head(head: bytes, name: str) -> str | None:
    """'unified2', 'eve', 'alertpkt?' (decided by size) or None (empty);
    InputError for a pcap or unknown data."""
    from . import unified2

    if not head:
        return None
    kind = unified2.sniff(head[:16])
    if kind == "pcap":
        raise InputError(f"{name}: this is a pcap file, not Unified2 (Snort's log_tcpdump output?)")
    if kind == "unified2":
        return "unified2"
    text = _text_start(head)
    if text[:1] == b"{":
        return "eve"
    if not text and len(head) < SNIFF_MAX:  # blank lines only
        return None
    return "alertpkt?"


def _alertpkt_size(n: int) -> int | None:
    from . import alertpkt

    for size in (alertpkt.SNORT_LEN, alertpkt.SNORT_APPID_LEN, alertpkt.BARNYARD2_LEN, alertpkt.BARNYARD2_32_LEN):
        if n and n % size == 0:
            return size
    return None


class _Progress:
    def __init__(self, total: int | None, enabled: bool) -> None:
        self.total = total or 0
        self.enabled = enabled and self.total > (8 << 20)
        self.last = -1

    def update(self, done: int) -> None:
        if not self.enabled:
            return
        pct = int(100 * min(done, self.total) / max(self.total, 1))
        if pct != self.last:
            self.last = pct
            bar = "#" * (pct // 4)
            print(f"\r[{bar:<25}] {pct:3d}%", end="", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.enabled and self.last >= 0:
            print(file=sys.stderr)


# ---- decoders, one per format ----------------------------------------------------

def _u2_report(name: str, res, status: dict) -> None:
    for _off, msg in res.errors:
        print(f"ingest: {name}: {msg}", file=sys.stderr)
    if res.fatal:
        status["input_error"] = True
    if res.orphan_packets or res.orphan_extra or res.unknown:
        print(f"ingest: {name}: {res.orphan_packets} orphan packets, {res.orphan_extra} orphan "
              f"extra-data, {res.unknown} records of unknown type skipped", file=sys.stderr)


def unified2_results(inp: Input) -> Iterator:
    """Unified2 results of an input: a regular file is memory-mapped, a pipe
    or gzip stream is decoded in windows as it is read."""
    from . import unified2

    if inp.path is not None:
        yield from unified2.iter_read(inp.path, origin=f"unified2:{inp.name}")
        return
    dec = unified2.Decoder(origin=f"unified2:{inp.name}")
    while True:
        got = dec.fill(inp.stream)
        eof = got == 0 and dec.room > 0
        res = dec.decode(final=eof)
        yield res
        if eof or dec.fatal is not None:
            return


def _unified2_batches(inp: Input, progress: _Progress, status: dict) -> Iterator[AlertBatch]:
    for res in unified2_results(inp):
        _u2_report(inp.name, res, status)
        progress.update(res.resume_offset)
        if len(res.alerts):
            yield res.batch


def _alertpkt_batches(inp: Input, status: dict) -> Iterator[AlertBatch]:
    from . import alertpkt

    data = inp.stream.read()
    n = _alertpkt_size(len(data))
    if n is None:
        raise InputError(f"{inp.name}: not recognised as Unified2, Alertpkt or EVE "
                         f"({len(data)} bytes is no whole number of Alertpkt datagrams); give --format")
    grams = alertpkt.split_datagrams(data, n)
    for i in range(0, len(grams), 256):
        res = alertpkt.decode_datagrams(grams[i: i + 256], f"alertpkt:{inp.name}")
        for slot, reason in res.rejected:
            print(f"ingest: {inp.name}: datagram {i + slot}: {reason}", file=sys.stderr)
        yield res.batch


def _eve_keys(inp: Input):
    """Replay keys as ``listen --eve-file`` gives them (file identity and
    record offset), so decoding a file into a store that already has it,
    or following it later, stores each alert once."""
    from .sources.tail import FP_LEN, EveFileSource, _replay_base

    if inp.path is None or len(inp.head) < FP_LEN:
        return None
    st = os.stat(inp.path)
    base = _replay_base(st.st_dev, st.st_ino, inp.head[:FP_LEN])
    return lambda start, res: EveFileSource._keys(base, start, res)


def _eve_batches(inp: Input, event_types: list[str], progress: _Progress,
                 status: dict) -> Iterator[AlertBatch]:
    """EVE lines, decoded in chunks as ``listen --eve-file`` decodes them."""
    from .eve import EveDecoder, split_lines

    dec = EveDecoder(4096, event_types=event_types)
    keys = _eve_keys(inp)
    origin = f"eve-file:{inp.name}"
    reasons: Counter[str] = Counter()
    carry = b""
    pos = 0  # absolute offset of carry[0]
    line = 0  # lines before carry[0]
    skipping = False  # inside an oversized line
    valid = 0  # records that were EVE events
    eve_like = 0  # rejected records that are EVE events all the same (unparsable, bad_alert, ...)
    first_reject = b""
    held: list[str] = []  # reports not printed yet
    while True:
        chunk = inp.stream.read(EVE_CHUNK)
        eof = not chunk
        data = carry + chunk if carry else chunk
        if skipping:
            nl = data.find(b"\n")
            if nl < 0:
                pos += len(data)
                carry = b""
                if eof:
                    break
                continue
            skipping = False
            pos, line, data = pos + nl + 1, line + 1, data[nl + 1:]
        offs, lens, used = split_lines(data, cap=max(1, data.count(b"\n")))
        if eof and used < len(data):  # a last line without its newline
            offs = np.append(offs, np.uint64(used))
            lens = np.append(lens, np.uint32(len(data) - used))
            used = len(data)
        if len(offs):
            res = dec.decode(data, offs, lens, origin=origin)
            for i, reason, raw in res.rejected:
                if not reasons:
                    first_reject = raw
                reasons[reason] += 1
                eve_like += reason not in NOT_EVE
                if sum(reasons.values()) <= REPORT_MAX:
                    held.append(f"ingest: {inp.name}: line {line + i + 1}: {reason}")
            batch = res.batch
            valid += len(batch) + (batch.events.count if batch.events is not None else 0) + \
                res.counts.get("filtered", 0)
            if valid or sum(reasons.values()) > 1:  # (a lone reject may be a bookmark: held)
                for msg in held:
                    print(msg, file=sys.stderr)
                held.clear()
            if keys is not None and len(batch):
                batch.keys = keys(pos, res)
            if len(batch) or batch.events is not None:
                yield batch
            line += len(offs)
        carry = data[used:]
        pos += used
        progress.update(pos)
        if len(carry) > EVE_MAX_LINE:
            reasons["oversized"] += 1
            print(f"ingest: {inp.name}: line {line + 1}: oversized (over {EVE_MAX_LINE} bytes)",
                  file=sys.stderr)
            pos += len(carry)
            carry = b""
            skipping = True
        if eof:
            break
    if not valid and sum(reasons.values()) == 1 and looks_like_bookmark(first_reject):
        print(f"ingest: {inp.name}: an ingest bookmark, not alert data: skipped", file=sys.stderr)
        return
    for msg in held:
        print(msg, file=sys.stderr)
    if reasons:
        n = sum(reasons.values())
        print(f"ingest: {inp.name}: {n} record{'s' if n > 1 else ''} rejected ("
              + ", ".join(f"{k}:{v}" for k, v in sorted(reasons.items())) + ")", file=sys.stderr)
        if not valid and not eve_like:  # not one EVE record: this is no EVE file
            raise InputError(f"{inp.name}: no valid EVE record (is it EVE JSON?)")


# ---- ingest decode ----------------------------------------------------------------

def run_decode(ns: argparse.Namespace) -> int:
    from .config import Config
    from .mapping import Enricher
    from .safefile import check_apart
    from .sinks.base import open_sink, sink_files

    files = expand(ns.files)
    urls = ns.sink or ["jsonl:-"]
    try:
        # an output that is one of the inputs would be read as it is written, without end
        check_apart([(f"--sink {u}", p) for u in urls for p in sink_files(u)],
                    [(f, globmod.escape(f)) for f, _ in files if f != "-"])
        cfg = Config().replace(maps=ns.maps, sid_msg=ns.sid_msg, gen_msg=ns.gen_msg,
                               classification=ns.classification, reference=ns.reference,
                               rules=tuple(ns.rules or ()), sensor_name=ns.sensor_name)
        enricher = Enricher()
        maps = cfg.load_maps()
        if maps is not None:
            enricher.set_maps(maps)
            report_maps(maps)  # as listen says it
        sinks = [open_sink(u, profile=ns.profile, sensor=cfg.sensor) for u in urls]
    except (OSError, ValueError) as e:
        print(f"ingest: error: {e}", file=sys.stderr)
        return 2
    event_types = [t for t in (ns.event_types or "").split(",") if t.strip()]
    if [f for f, _ in files].count("-") > 1:
        print("ingest: error: '-' (standard input) can be read only once", file=sys.stderr)
        return 2
    status = {"input_error": False, "refused": 0}
    try:
        asyncio.run(_decode_all(ns, files, sinks, enricher, event_types, status))
    except (OSError, ValueError, SinkFailed) as e:
        print(f"ingest: error: {e}", file=sys.stderr)
        return 1
    if status["refused"]:
        print(f"ingest: error: {status['refused']} records refused by a sink (see above)", file=sys.stderr)
        return 1
    return 2 if status["input_error"] else 0


async def _decode_all(ns: argparse.Namespace, files: list[tuple[str, bool]], sinks: list, enricher,
                      event_types, status: dict) -> None:
    try:
        for arg, globbed in files:
            if is_bookmark(arg):
                print(f"ingest: {arg}: an ingest bookmark, not alert data: skipped", file=sys.stderr)
                continue
            try:
                inp = open_input(arg, regular_only=globbed)
            except InputError as e:
                print(f"ingest: error: {e}; skipped", file=sys.stderr)
                status["input_error"] = True
                continue
            try:
                await _decode_one(ns, inp, sinks, enricher, event_types, status)
            except InputError as e:
                print(f"ingest: error: {e}; skipped", file=sys.stderr)
                status["input_error"] = True
            finally:
                inp.close()
    finally:
        for s in sinks:
            await s.aclose()


async def _decode_one(ns: argparse.Namespace, inp: Input, sinks: list, enricher, event_types,
                      status: dict) -> None:
    from .isolate import record_bytes, write_isolating

    kind = ns.input_format
    if kind == "auto":
        found = sniff_head(inp.head, inp.name)
        if found is None:
            print(f"ingest: {inp.name}: empty, nothing to decode", file=sys.stderr)
            return
        kind = "alertpkt" if found == "alertpkt?" else found
    progress = _Progress(inp.size if inp.path else None, sys.stderr.isatty() and not ns.no_progress)
    if kind == "unified2":
        batches = _unified2_batches(inp, progress, status)
    elif kind == "eve":
        batches = _eve_batches(inp, event_types, progress, status)
    else:
        batches = _alertpkt_batches(inp, status)

    def refused(sink):
        def reject(part, err) -> None:
            status["refused"] += 1
            if status["refused"] <= REPORT_MAX:
                rec = record_bytes(part)
                print(f"ingest: error: {sink.name} refused a record of {inp.name}: {err}: "
                      f"{rec[:200]!r}", file=sys.stderr)
        return reject

    async def write(sink, item) -> None:
        try:
            await write_isolating(sink.write, item, refused(sink))
        except BrokenPipeError:
            raise  # a reader that went away (| head): ends quietly (cli)
        except Exception as e:  # down (locked, disk full ...): a batch run stops, says where
            raise SinkFailed(f"sink {sink.name} failed while decoding {inp.name}: "
                             f"{type(e).__name__}: {e}") from e

    try:
        for batch in batches:
            item = enricher.apply(batch)
            await asyncio.gather(*(write(s, item) for s in sinks))
    finally:
        progress.close()


# ---- ingest pcap ------------------------------------------------------------------

def run_pcap(ns: argparse.Namespace) -> int:
    """Every input is checked before anything is written, and the pcap is
    written to a temporary file renamed into place only on success: a
    failed run never leaves an empty or partial OUT.pcap (nor clobbers an
    existing one).  ``-o -`` writes it to standard output."""
    files = expand(ns.files)
    if [f for f, _ in files].count("-") > 1:
        print("ingest: error: '-' (standard input) can be read only once", file=sys.stderr)
        return 2
    inputs: list[Input] = []
    try:
        for arg, globbed in files:
            if is_bookmark(arg):
                print(f"ingest: {arg}: an ingest bookmark, not alert data: skipped", file=sys.stderr)
                continue
            inputs.append(open_input(arg, regular_only=globbed))
        for inp in inputs:
            kind = sniff_head(inp.head, inp.name)
            if kind is None:
                print(f"ingest: {inp.name}: empty, no packets", file=sys.stderr)
            elif kind != "unified2":
                raise InputError(f"{inp.name}: not a Unified2 file")
    except InputError as e:
        for inp in inputs:
            inp.close()
        print(f"ingest: error: {e}", file=sys.stderr)
        return 2
    if ns.output == "-":
        return _pcap_to_stdout(inputs)
    out_dir = os.path.dirname(os.path.abspath(ns.output))
    try:
        fd, tmp = tempfile.mkstemp(prefix=".ingest-pcap-", dir=out_dir)
    except OSError as e:
        for inp in inputs:
            inp.close()
        print(f"ingest: error: {ns.output}: cannot write: {e.strerror or e}", file=sys.stderr)
        return 2
    rc = 0
    try:
        with os.fdopen(fd, "wb") as out:
            os.fchmod(out.fileno(), 0o640)  # packets are as sensitive as the alerts
            writer = _write_pcap(out, inputs)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, ns.output)
    except InputError as e:
        print(f"ingest: error: {e}; no pcap written", file=sys.stderr)
        rc = 2
    except (OSError, ValueError) as e:
        print(f"ingest: error: {e}; no pcap written", file=sys.stderr)
        rc = 1
    finally:  # also on Ctrl-C (KeyboardInterrupt): never a temporary file left behind
        for inp in inputs:
            inp.close()
        if os.path.lexists(tmp):
            os.unlink(tmp)
    if rc:
        return rc
    _pcap_done(writer, ns.output)
    return 0


def _write_pcap(out: BinaryIO, inputs: list[Input]):
    """The packets of every input, as one pcap, to out (InputError: an
    input that cannot be read to its end)."""
    from . import unified2

    writer = unified2.PcapWriter(out)
    for inp in inputs:
        if not inp.head:
            continue
        for res in unified2_results(inp):
            for _off, msg in res.errors:
                print(f"ingest: {inp.name}: {msg}", file=sys.stderr)
            if res.fatal:
                raise InputError(f"{inp.name}: cannot be read to its end")
            writer.write(res)
    writer.close()
    return writer


def _pcap_done(writer, where: str) -> None:
    extra = f" ({writer.skipped} of another link type skipped)" if writer.skipped else ""
    print(f"ingest: wrote {writer.written} packets to {where}{extra}", file=sys.stderr)


def _pcap_to_stdout(inputs: list[Input]) -> int:
    """``-o -``: the pcap goes to standard output as it is made (for a
    pipe: ``| tcpdump -r -``), so a failure half-way leaves what was
    written; exit 2 or 1 says so.  Never to a terminal."""
    try:
        if os.isatty(1):
            print("ingest: error: -o -: standard output is a terminal; redirect it or give -o FILE",
                  file=sys.stderr)
            return 2
        out = sys.stdout.buffer
        writer = _write_pcap(out, inputs)
        out.flush()
    except InputError as e:
        print(f"ingest: error: {e}; the pcap on standard output is incomplete", file=sys.stderr)
        return 2
    except BrokenPipeError:
        raise  # the reader went away: end as cat does (cli)
    except (OSError, ValueError) as e:
        print(f"ingest: error: {e}; the pcap on standard output is incomplete", file=sys.stderr)
        return 1
    finally:
        for inp in inputs:
            inp.close()
    _pcap_done(writer, "standard output")
    return 0
