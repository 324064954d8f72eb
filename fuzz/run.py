"""Fuzz every C decoder with libFuzzer under ASan + UBSan, bounded.

    python fuzz/run.py                      # every target, 250,000 inputs or 300 s each
    python fuzz/run.py --runs 2500000 --seconds 3600 unified2 eve
    python fuzz/run.py --smoke              # CI: a few seconds per target

One target per C decoder (fuzz/fuzz_<name>.c):

=========  =====================================================================
alertpkt   csrc/alertpkt.c: Snort / Barnyard2 datagrams of every variant
unified2   csrc/unified2.c: decode (with array growth), resync, unwind, render
eve        csrc/eve.c: line splitter, JSON validator/extractor, gather, dedupe
format     csrc/format.c + jsonw.h: random alert structs and string tables,
           every rendered line checked to be a JSON object by eve.c
pgcopy     csrc/pgcopy.c: PostgreSQL binary COPY from random column
           descriptors (text tables with raw offsets/lengths, NULL flags,
           short output buffers); size and encode must agree, the stream parse
netflow    csrc/netflow.c: NetFlow v5 / v9 / IPFIX datagram sequences through
           one decoder state with small tables (templates carried over,
           eviction, withdrawal, held sets); seeds: pmacct's real exports
           (tests/data/netflow) and packets from ingest.gen.netflow
zeek       csrc/zeek.c: Zeek conn.log TSV lines with a random separator,
           field map and unset marker; seeds: the real conn.log files of
           tests/data/zeek with their own header's map
=========  =====================================================================

Seeds come from the shared data (``../shared/data`` beside the checkout, or
``$INGEST_SHARED_DATA``) and the reproducers beside it (``../shared/repro``);
the growing corpus, crash artifacts and a ``summary.json`` go to
``fuzz/build/`` (``--build-dir``).  One process per target, in turn (the
machine is shared): libFuzzer's default, in-process; ``-jobs``/``-workers``
would fork and log to ``fuzz-N.log`` in the working directory).  Needs clang with libFuzzer (Debian: ``apt-get install clang-14
libclang-rt-14-dev``).  Exit status 1 when any target crashed, 2 when it
could not run at all.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import os
import pathlib
import re
import shutil
import struct
import subprocess
import sys
import time

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent
CSRC = ROOT / "csrc"

#: target -> (C sources it links, -max_len)
TARGETS: dict[str, tuple[list[str], int]] = {
    "alertpkt": (["alertpkt.c", "hash.c"], 4096),
    "unified2": (["unified2.c"], 16384),
    "eve": (["eve.c", "hash.c"], 8192),
    "format": (["format.c", "eve.c", "hash.c"], 8192),
    "pgcopy": (["pgcopy.c"], 4096),
    "netflow": (["netflow.c"], 8192),
    "zeek": (["zeek.c"], 8192),
}

CFLAGS = ["-g", "-O1", "-fno-omit-frame-pointer", "-fsanitize=fuzzer,address,undefined",
          "-fno-sanitize-recover=all", "-std=gnu11", "-Wall", "-Wextra"]

ALERTPKT_LENS = (65864, 65928, 1856, 1844)


def shared_data() -> pathlib.Path:
    return pathlib.Path(os.environ.get("INGEST_SHARED_DATA") or ROOT.parent / "shared" / "data")


def find_clang() -> str:
    for cc in (os.environ.get("CC_FUZZ"), "clang", "clang-14", "clang-15", "clang-16"):
        if cc and shutil.which(cc):
            return cc
    raise SystemExit("fuzz: no clang found (Debian: apt-get install clang-14 libclang-rt-14-dev)")


def build(cc: str, name: str, out: pathlib.Path) -> pathlib.Path:
    srcs, _ = TARGETS[name]
    exe = out / f"fuzz_{name}"
    cmd = [cc, *CFLAGS, f"-I{CSRC}", str(HERE / f"fuzz_{name}.c"), *(str(CSRC / s) for s in srcs),
           "-o", str(exe)]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode:
        raise SystemExit(f"fuzz: building {name} failed:\n{' '.join(cmd)}\n{r.stderr}")
    return exe


# ---- seeds -------------------------------------------------------------------

def _captures(path: pathlib.Path) -> list[bytes]:
    """A real-engine capture: <u32 LE length><datagram>..., gzip'ed."""
    data = gzip.open(path).read()
    out, i = [], 0
    while i + 4 <= len(data):
        (n,) = struct.unpack_from("<I", data, i)
        out.append(data[i + 4: i + 4 + n])
        i += 4 + n
    return out


def _alertpkt_seed(d: bytes) -> bytes:
    """A datagram as the target's input: the variant, then its first bytes
    (message, headers, the start of the packet)."""
    if len(d) in ALERTPKT_LENS:
        return bytes([ALERTPKT_LENS.index(len(d))]) + d[:4000]
    return b"\x04" + d[:4000]


def _lines(path: pathlib.Path, limit: int = 40, size: int = 4000) -> list[bytes]:
    """Stretches of an eve.json file: up to `limit` chunks of whole lines."""
    raw = gzip.open(path).read() if path.suffix == ".gz" else path.read_bytes()
    out, cur = [], b""
    for line in raw.splitlines(keepends=True):
        if len(cur) + len(line) > size and cur:
            out.append(cur)
            cur = b""
            if len(out) >= limit:
                break
        cur += line[:size]
    if cur and len(out) < limit:
        out.append(cur)
    return out


#: what the NATS sink publishes for non-EVE alerts (ingest.wire): the
#: "ingest" member and alert.references the wire decoder reads
WIRE_SEED = (
    b'{"timestamp":"2025-11-27T18:03:50.000005+0000","flow_id":7,"event_type":"alert","vlan":[12],'
    b'"src_ip":"192.0.2.1","src_port":40000,"dest_ip":"198.51.100.7","dest_port":443,"proto":"TCP",'
    b'"alert":{"action":"blocked","gid":1,"signature_id":2000001,"rev":2,"signature":"ET \\"x\\"",'
    b'"category":"A","severity":1,"references":["http://cve.mitre.org/x",["y"]]},'
    b'"ingest":{"source":"snort","sensor_id":3,"event_id":9,"class_id":5,"app_name":"SSH\\u00e9",'
    b'"packet_anomaly":true},"packet":"AAAA"}\n'
    b'{"timestamp":"2025-11-27T18:03:51.000000+0000","event_type":"alert","src_ip":"2001:db8::1",'
    b'"dest_ip":"2001:db8::2","proto":"IPv6-ICMP","icmp_type":128,"icmp_code":0,"alert":{"gid":1,'
    b'"signature_id":5,"rev":0,"severity":3},"ingest":{"source":"unified2","sensor_id":0,'
    b'"event_id":4294967295,"class_id":0},"unified2":{"blocked":0}}\n'
)


def seeds(name: str, data: pathlib.Path) -> list[bytes]:
    real = data / "real"
    repro = data.parent / "repro"
    out: list[bytes] = []
    if name == "alertpkt":
        for p in sorted(real.glob("*/*datagrams.bin.gz")):
            if "suricata" not in str(p):
                out += [_alertpkt_seed(d) for d in _captures(p)]
        for p in sorted((data / "alertpkt").glob("*.bin.gz")):
            raw = gzip.open(p).read()
            size = next((n for n in ALERTPKT_LENS if len(raw) % n == 0), 0)
            if size:
                out += [_alertpkt_seed(raw[i: i + size]) for i in range(0, len(raw), size)]
    elif name == "unified2":
        files = [*sorted((data / "unified2").glob("*")), *sorted(real.glob("*/snort.u2.*")),
                 *sorted(real.glob("*/unified2.log")), *sorted(repro.glob("u2_*")),
                 *sorted(repro.glob("unified2-*"))]
        for p in files:
            if p.is_file() and p.suffix != ".py":
                b = p.read_bytes()
                out += [b[i: i + 16384] for i in range(0, min(len(b), 1 << 20), 16384)]
    elif name == "eve":
        for p in [*sorted((data / "eve").rglob("*.json")), real / "suricata-7.0.0" / "eve.json",
                  real / "suricata-7.0.0" / "big-eve.json.gz"]:
            if p.is_file():
                out += _lines(p)
        for p in sorted(real.glob("suricata-*/dgram-datagrams.bin.gz")):
            out += _captures(p)
        for p in sorted(real.glob("suricata-*/stream-conn-*.bin.gz")):
            raw = gzip.open(p).read()
            out += [raw[i: i + 4000] for i in range(0, len(raw), 4000)]
        for p in sorted(repro.glob("eve*")):
            out.append(p.read_bytes()[:8000])
        out.append(WIRE_SEED)
    elif name == "format":
        # alerts with addresses, ports, vlan, texts; the fuzzer does the rest
        alert = struct.pack("<qQ16s16s9I3H5BB", 1_700_000_000_000_000, 7,
                            bytes(10) + b"\xff\xff\xc0\x00\x02\x01", bytes.fromhex("20010db8" + "00" * 11 + "01"),
                            1, 2, 1, 1000001, 3, 4, 2, 0, 1, 80, 443, 12, 1, 4, 6, 2, 0x17, 0)
        texts = "TEST-TCP4 content EVILSTRING \"q\" \\ \x01 été ☃".encode()
        table = struct.pack(">HHHH", 0, len(texts), 5, 7)
        for ctl in (0, 1, 0x10, 0x11):
            out.append(bytes([ctl, 2, 2]) + alert * 2 + table + texts)
    elif name == "pgcopy":
        # 3 rows, one column of each kind (kind byte k-1, width, NULL flags
        # present?, [table], values, [flags]); a text table of 2 entries
        # over "hello world"
        body = (bytes([0, 0, 0]) + struct.pack("<3q", 1, -2, 1 << 40)
                + bytes([1, 0, 1]) + struct.pack("<3q", 7, -7, 65535) + bytes([1, 0, 1])
                + bytes([2, 0, 0, 2]) + struct.pack("<4I", 0, 5, 6, 5) + struct.pack("<3i", 0, 1, -1)
                + bytes([3, 16, 0]) + b"10.0.0.1".ljust(16, b"\0") * 3
                + b"hello world")
        for cap in (0, 1, 9):
            out.append(bytes([3, 3, cap]) + body)
    elif name == "netflow":
        out += _netflow_seeds()
    elif name == "zeek":
        out += _zeek_seeds()
    return [s for s in out if s]


def _zeek_seeds() -> list[bytes]:
    """The real TSV conn.logs (tests/data/zeek), in chunks of whole lines,
    each behind its header's separator, field map and unset marker."""
    sys.path.insert(0, str(ROOT))
    from ingest.flows.zeek import _READ, read_header

    out = []
    for p in sorted((ROOT / "tests" / "data" / "zeek").glob("*.log")):
        raw = p.read_bytes()
        if not raw.startswith(b"#separator"):
            continue
        h = read_header(raw)
        assert h.fields is not None
        nf = len(h.fields)
        head = bytes([h.sep[0], (nf - 1) % 64]) + bytes((i + 1) % 256 for i in h.idx) + bytes([len(h.unset)]) + h.unset
        body = [ln for ln in raw.splitlines(keepends=True) if not ln.startswith(b"#")]
        for k in range(0, len(body), 20):
            out.append(head + b"".join(body[k:k + 20]))
    assert len(_READ) == 16
    return out


def _frame(datagrams: list[bytes]) -> bytes:
    """The netflow target's input: a selector byte, then <u16 LE length><datagram>..."""
    return b"\x00" + b"".join(struct.pack("<H", len(d)) + d for d in datagrams)


def _netflow_seeds() -> list[bytes]:
    """pmacct's real exports (tests/data/netflow), whole and per datagram,
    and built packets of every kind ingest.gen.netflow makes."""
    out = []
    for p in sorted((ROOT / "tests" / "data" / "netflow").glob("*.bin.gz")):
        caps = _captures(p)
        out.append(_frame(caps))
        out += [_frame([d]) for d in caps]
    sys.path.insert(0, str(ROOT))
    from ingest.gen import netflow as G

    f4 = [G.Flow(), G.Flow(proto=1, dport=0x0301), G.Flow(proto=17, app=b"dns")]
    f6 = [G.Flow(src="2001:db8::1", dst="2001:db8::2", rpkts=3, rbytes=300, app=b"x" * 260)]
    bi = [*G.IPV6, (2, 8, G.PEN_REVERSE), (1, 8, G.PEN_REVERSE), (1234, 4, 9999), (96, 65535),
          (777, 65535, 9999)]
    opt9 = G.v9_options_template(257, [(1, 4)], [(34, 4)])
    out.append(_frame([G.v5(f4, seq=1), G.v5(f4, seq=9, sampling=10)]))
    out.append(_frame([G.v9([G.v9_template(256, G.V9_IPV4), opt9,
                             struct.pack("!HHII", 257, 12, 0, 100), G.v9_data(256, G.V9_IPV4, f4)], seq=1)]))
    # the time and reason elements pmacct does not send: flowStart/EndSeconds,
    # flowEndReason, systemInitTimeMilliseconds with uptimes, reverse totals
    # (raw values: ingest.gen fills only the fields its Flow has)
    tf = [(8, 4), (12, 4), (7, 2), (11, 2), (4, 1), (150, 4), (151, 4), (136, 1), (160, 8), (22, 4), (21, 4),
          (85, 8, G.PEN_REVERSE), (86, 8, G.PEN_REVERSE), (85, 8), (86, 8)]
    rec = (bytes([10, 0, 0, 1, 10, 0, 0, 2]) + struct.pack("!HHB", 1234, 80, 6)
           + struct.pack("!IIB", 1_700_000_000, 1_700_000_009, 3) + struct.pack("!QII", 1_699_999_000_000, 1000, 9000)
           + struct.pack("!QQQQ", 500, 5, 700, 7))
    out.append(_frame([G.ipfix([G.ipfix_template(500, tf), struct.pack("!HH", 500, 4 + 2 * len(rec)) + rec * 2],
                               seq=3)]))
    out.append(_frame([G.ipfix([G.ipfix_data(300, bi, f6)], seq=0),
                       G.ipfix([G.ipfix_template(300, bi), G.ipfix_data(300, bi, f6)], seq=1),
                       G.ipfix([G.ipfix_options_template(600, [(149, 4)], [(305, 4)]),
                                G.ipfix_options_data(600, [(0, 4), (4, 4)]), G.ipfix_withdraw(300),
                                G.ipfix_withdraw(2)], seq=2)]))
    return out


def write_seeds(name: str, dest: pathlib.Path, data: pathlib.Path) -> int:
    dest.mkdir(parents=True, exist_ok=True)
    n = 0
    for s in seeds(name, data):
        (dest / hashlib.sha1(s).hexdigest()).write_bytes(s)
        n += 1
    return n


# ---- running -----------------------------------------------------------------

def run_target(exe: pathlib.Path, name: str, build_dir: pathlib.Path, runs: int, seconds: int,
               data: pathlib.Path, verbose: bool) -> dict:
    corpus = build_dir / "corpus" / name
    seed_dir = build_dir / "seeds" / name
    crashes = build_dir / "crashes"
    corpus.mkdir(parents=True, exist_ok=True)
    crashes.mkdir(parents=True, exist_ok=True)
    nseeds = write_seeds(name, seed_dir, data)
    before = set(crashes.iterdir())
    log = build_dir / f"{name}.log"
    cmd = [str(exe), f"-runs={runs}", f"-max_total_time={seconds}", f"-max_len={TARGETS[name][1]}",
           "-print_final_stats=1", f"-artifact_prefix={crashes}/{name}-",
           "-timeout=25", "-rss_limit_mb=4096", str(corpus), str(seed_dir)]
    t0 = time.monotonic()
    with open(log, "w") as f:
        rc = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT).returncode
    elapsed = time.monotonic() - t0
    text = log.read_text(errors="replace")
    m = re.search(r"stat::number_of_executed_units:\s*(\d+)", text)
    done = re.findall(r"Done (\d+) runs", text)
    inputs = int(m.group(1)) if m else int(done[-1]) if done else 0
    new = sorted(set(crashes.iterdir()) - before)
    res = {"target": name, "inputs": inputs, "seconds": round(elapsed, 1), "crashes": len(new),
           "exit": rc, "seeds": nseeds, "artifacts": [str(p) for p in new], "log": str(log)}
    if rc != 0 or new:
        res["crashes"] = max(1, len(new))
        tail = "\n".join(text.splitlines()[-60:])
        print(f"fuzz: {name}: CRASH (exit {rc}); log {log}\n{tail}", file=sys.stderr)
    elif verbose:
        print("\n".join(text.splitlines()[-5:]))
    return res


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("targets", nargs="*", metavar="TARGET",
                    help=f"targets to run: {', '.join(TARGETS)} (default: all)")
    ap.add_argument("--runs", type=int, default=250_000, help="inputs per target (default 250,000)")
    ap.add_argument("--seconds", type=int, default=300, help="time bound per target (default 300)")
    ap.add_argument("--smoke", action="store_true", help="a short bounded run (CI): 20,000 inputs or 20 s")
    ap.add_argument("--build-dir", type=pathlib.Path, default=HERE / "build")
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args(argv)
    if args.smoke:
        args.runs, args.seconds = 20_000, 20
    names = args.targets or list(TARGETS)
    unknown = [n for n in names if n not in TARGETS]
    if unknown:
        ap.error(f"unknown target(s) {', '.join(unknown)}; choose from {', '.join(TARGETS)}")
    data = shared_data()
    if not data.is_dir():
        print(f"fuzz: note: no shared data at {data}: running from built-in seeds only", file=sys.stderr)
    cc = find_clang()
    args.build_dir.mkdir(parents=True, exist_ok=True)
    results = []
    for name in names:
        exe = build(cc, name, args.build_dir)
        r = run_target(exe, name, args.build_dir, args.runs, args.seconds, data, args.verbose)
        print(f"fuzz: {name:9s} {r['inputs']:>11,} inputs  {r['seconds']:>7.1f} s  "
              f"{r['crashes']} crashes  ({r['seeds']} seeds)", flush=True)
        results.append(r)
    total = sum(r["inputs"] for r in results)
    crashed = sum(r["crashes"] for r in results)
    print(f"fuzz: total {total:,} inputs, {sum(r['seconds'] for r in results):.0f} s, {crashed} crashes")
    (args.build_dir / "summary.json").write_text(json.dumps(
        {"clang": cc, "results": results, "total_inputs": total, "crashes": crashed}, indent=1) + "\n")
    return 1 if crashed else 0


if __name__ == "__main__":
    sys.exit(main())
