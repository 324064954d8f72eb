"""ingest.sinks.outbox on real files: order, acknowledgement, the bound,
torn tails and damaged records, and a directory whose contents are not
trusted (links, FIFOs, foreign files).  The kill -9 test with real writer
processes is tests/integration/test_outbox_crash.py."""

from __future__ import annotations

import os
import stat
import threading
import tracemalloc

import pytest

from ingest.sinks.outbox import (
    ACK_NAME,
    REC_HEAD,
    SEG_HEAD,
    Outbox,
    OutboxError,
    OutboxFull,
)


def _segs(d) -> list[str]:
    return sorted(n for n in os.listdir(d) if n.startswith("seg-"))


def _disk_bytes(d) -> int:
    return sum(os.path.getsize(os.path.join(d, n)) for n in _segs(d))


def _fill(box: Outbox, n: int, size=lambda i: 100 + i) -> dict[int, bytes]:
    out = {}
    for i in range(n):
        payload = bytes([i % 251]) * size(i)
        out[box.append(payload, {"i": i})] = payload
    return out


@pytest.mark.parametrize("fsync", ["always", "segment", "never"])
def test_round_trip_in_order_across_reopen(tmp_path, fsync):
    d = str(tmp_path / "ob")
    with Outbox(d, 1 << 20, fsync=fsync, segment_bytes=4096) as box:
        want = _fill(box, 80)
        assert list(want) == list(range(1, 81))
        assert len(_segs(d)) > 1 and box.count == 80 and box.bytes == _disk_bytes(d)
        got = list(box.pending())
        assert [s for s, _, _ in got] == list(want)
        assert all(p == want[s] and m == {"i": s - 1} for s, m, p in got)
    with Outbox(d, 1 << 20, fsync=fsync, segment_bytes=4096) as box:
        got = list(box.pending())
        assert [(s, p) for s, _, p in got] == list(want.items())
        assert box.count == 80 and box.bytes == _disk_bytes(d)
        assert list(box.pending(after=70))[0][0] == 71


def test_modes_directory_0700_files_0600_whatever_the_umask(tmp_path):
    old = os.umask(0)
    try:
        d = tmp_path / "ob"
        with Outbox(str(d), 1 << 20) as box:
            box.append(b"x", {})
        assert stat.S_IMODE(os.stat(d).st_mode) == 0o700
        for n in os.listdir(d):
            assert stat.S_IMODE(os.stat(d / n).st_mode) == 0o600, n
    finally:
        os.umask(old)


def test_ack_removes_whole_segments_only_and_persists(tmp_path):
    d = str(tmp_path / "ob")
    with Outbox(d, 1 << 20, segment_bytes=4096) as box:
        want = _fill(box, 60)
        first_seg = _segs(d)[0]
        second = int(_segs(d)[1][4:])
        box.ack(second - 2)  # all but the last record of the first segment
        assert _segs(d)[0] == first_seg and box.count == 60 - (second - 2)
        box.ack(second - 1)
        assert first_seg not in _segs(d) and box.bytes == _disk_bytes(d)
        box.ack(30)
        assert [s for s, _, _ in box.pending()] == list(range(31, 61))
    with Outbox(d, 1 << 20, segment_bytes=4096) as box:  # a partly acknowledged segment
        assert [s for s, _, _ in box.pending()] == list(range(31, 61))
        assert box.count == 30
        box.ack(10**9)  # past the last record: clamped to it
        assert box.count == 0 and _segs(d) == [] and box.bytes == 0
        assert box.append(b"next", {}) == 61, "sequence numbers never go back"
        assert list(box.pending()) == [(61, {}, b"next")]
    assert want


def test_a_reopened_outbox_never_appends_to_an_old_segment(tmp_path):
    d = str(tmp_path / "ob")
    with Outbox(d, 1 << 20) as box:
        box.append(b"a", {})
    before = _segs(d)
    with Outbox(d, 1 << 20) as box:
        assert box.append(b"b", {}) == 2
    assert len(_segs(d)) == 2 and before[0] in _segs(d)


def test_the_bound_holds_and_full_stores_nothing(tmp_path):
    d = str(tmp_path / "ob")
    cap = 256 << 10
    with Outbox(d, cap, segment_bytes=32 << 10) as box:
        n = 0
        with pytest.raises(OutboxFull):
            while True:
                box.append(os.urandom(5000), {"n": n})
                n += 1
                assert _disk_bytes(d) <= cap
        held, files = box.bytes, {s: os.path.getsize(os.path.join(d, s)) for s in _segs(d)}
        assert held == _disk_bytes(d) <= cap and box.full == 1
        with pytest.raises(OutboxFull):
            box.append(os.urandom(5000), {})
        assert {s: os.path.getsize(os.path.join(d, s)) for s in _segs(d)} == files, "a refused append wrote"
        assert box.count == n
        box.ack(n // 2)  # frees whole segments: room again
        assert box.bytes < held
        box.append(os.urandom(5000), {})
        with pytest.raises(OutboxFull):  # a record larger than the whole bound
            box.append(bytes(cap), {})


def _last_record_span(path) -> tuple[int, int]:
    """(start, end) of the last record of a segment file."""
    with open(path, "rb") as f:
        data = f.read()
    pos = SEG_HEAD.size
    last = pos
    while pos < len(data):
        body_len = REC_HEAD.unpack_from(data, pos)[0]
        last, pos = pos, pos + REC_HEAD.size + body_len
    return last, pos


@pytest.mark.parametrize("cut", ["header", "body", "garbage", "zeros"])
def test_a_torn_tail_is_cut_and_counted_once(tmp_path, cut):
    d = str(tmp_path / "ob")
    with Outbox(d, 1 << 20) as box:
        want = _fill(box, 10)
    seg = os.path.join(d, _segs(d)[-1])
    start, end = _last_record_span(seg)
    with open(seg, "r+b") as f:
        if cut == "header":
            f.truncate(start + 7)
        elif cut == "body":
            f.truncate(end - 3)
        elif cut == "garbage":  # a record that was never whole, then junk
            f.seek(end)
            f.write(REC_HEAD.pack(50, 1234, 11, 0) + b"junk")
        else:  # a crash can leave zero-filled blocks past the last write
            f.seek(end)
            f.write(bytes(8192))
    with Outbox(d, 1 << 20) as box:
        got = [(s, p) for s, _, p in box.pending()]
        keep = 10 if cut in ("garbage", "zeros") else 9
        assert got == list(want.items())[:keep]
        assert box.cut_tails == 1 and box.cut_bytes > 0
        assert box.bytes == _disk_bytes(d)
        assert box.append(b"after", {}) == keep + 1
    with Outbox(d, 1 << 20) as box:
        assert box.cut_tails == 0, "a cut is made (and counted) once"
        assert [s for s, _, _ in box.pending()] == list(range(1, keep + 2))


def test_a_damaged_record_ends_its_segment_only(tmp_path):
    d = str(tmp_path / "ob")
    with Outbox(d, 1 << 20, segment_bytes=4096) as box:
        _fill(box, 60)
    segs = _segs(d)
    first, second = int(segs[0][4:]), int(segs[1][4:])
    with open(os.path.join(d, segs[0]), "r+b") as f:  # flip a byte in the third record's body
        pos = SEG_HEAD.size
        for _ in range(2):
            f.seek(pos)
            pos += REC_HEAD.size + REC_HEAD.unpack(f.read(REC_HEAD.size))[0]
        f.seek(pos + REC_HEAD.size + 5)
        b = f.read(1)
        f.seek(-1, os.SEEK_CUR)
        f.write(bytes([b[0] ^ 0xFF]))
    with Outbox(d, 1 << 20, segment_bytes=4096) as box:
        seqs = [s for s, _, _ in box.pending()]
        assert seqs == [first, first + 1] + list(range(second, 61))
        assert box.cut_tails == 1 and box.count == len(seqs)


def test_damage_found_while_replaying_is_counted_and_skipped(tmp_path):
    d = str(tmp_path / "ob")
    with Outbox(d, 1 << 20, segment_bytes=4096) as box:
        _fill(box, 60)
        segs = _segs(d)
        second = int(segs[1][4:])
        with open(os.path.join(d, segs[0]), "r+b") as f:  # after the open's check
            f.seek(SEG_HEAD.size + REC_HEAD.size + 1)
            f.write(b"\xff\xfe")
        seqs = [s for s, _, _ in box.pending()]
        assert seqs == list(range(second, 61)) and box.corrupt == 1


def test_a_segment_torn_at_its_creation_is_removed(tmp_path):
    d = tmp_path / "ob"
    with Outbox(str(d), 1 << 20) as box:
        box.append(b"a", {})
    (d / "seg-00000000000000000002").write_bytes(b"INGES")
    os.chmod(d / "seg-00000000000000000002", 0o600)
    with Outbox(str(d), 1 << 20) as box:
        assert box.cut_tails == 1 and "seg-00000000000000000002" not in _segs(d)
        assert [s for s, _, _ in box.pending()] == [1]


def test_foreign_names_are_left_alone(tmp_path):
    d = tmp_path / "ob"
    Outbox(str(d), 1 << 20).close()
    foreign = {"notes.txt": b"mine", "seg-1": b"short name", "seg-0000000000000000000x": b"hex",
               ".seg-00000000000000000001": b"hidden", "acked.tmp": b"tmp", "seg-00000000000000000001.bak": b"b"}
    for n, data in foreign.items():
        (d / n).write_bytes(data)
    (d / "subdir").mkdir()
    with Outbox(str(d), 1 << 20, segment_bytes=4096) as box:
        assert box.foreign == len(foreign) + 1
        _fill(box, 50)
        assert [s for s, _, _ in box.pending()] == list(range(1, 51))
        box.ack(50)
    for n, data in foreign.items():
        assert (d / n).read_bytes() == data, n
    assert (d / "subdir").is_dir()


def _refused(d, match: str) -> None:
    """Opening the outbox fails at once (no hang on a FIFO) with OutboxError."""
    out: list = []

    def run() -> None:
        try:
            Outbox(str(d), 1 << 20).close()
            out.append(None)
        except Exception as e:  # noqa: BLE001 - reported below
            out.append(e)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(10)
    assert out, "opening the outbox blocked"
    assert isinstance(out[0], OutboxError) and match in str(out[0]), out[0]


@pytest.mark.parametrize("kind", ["symlink", "fifo", "directory", "mode", "owner", "magic", "seq"])
def test_a_hostile_file_under_our_name_is_refused_and_untouched(tmp_path, kind):
    d = tmp_path / "ob"
    with Outbox(str(d), 1 << 20) as box:
        box.append(b"a", {})
    name = d / "seg-00000000000000000002"
    victim = tmp_path / "victim"
    victim.write_bytes(b"precious")
    good = (d / "seg-00000000000000000001").read_bytes()
    match = {"symlink": "symbolic link", "fifo": "not a regular file", "directory": "not a regular file",
             "mode": "mode 0644", "owner": "owned by uid 4242", "magic": "bad header",
             "seq": "bad header"}[kind]
    if kind == "symlink":
        name.symlink_to(victim)
    elif kind == "fifo":
        os.mkfifo(name, 0o600)
    elif kind == "directory":
        name.mkdir(0o700)
    else:
        data = {"magic": b"NOTOURS!" + bytes(16), "seq": good[:SEG_HEAD.size]}.get(kind, good)
        name.write_bytes(data)
        os.chmod(name, 0o644 if kind == "mode" else 0o600)
        if kind == "owner":
            if os.geteuid() != 0:
                pytest.skip("needs root to give a file away")
            os.chown(name, 4242, -1)
    _refused(d, match)
    assert victim.read_bytes() == b"precious"
    assert os.path.lexists(name), "refused means untouched"
    assert (d / "seg-00000000000000000001").read_bytes() == good


@pytest.mark.parametrize("kind", ["symlink", "big", "fifo"])
def test_a_hostile_ack_file_is_refused(tmp_path, kind):
    d = tmp_path / "ob"
    d.mkdir(0o700)
    victim = tmp_path / "victim"
    victim.write_bytes(b"precious")
    if kind == "symlink":
        (d / ACK_NAME).symlink_to(victim)
    elif kind == "fifo":
        os.mkfifo(d / ACK_NAME, 0o600)
    else:
        (d / ACK_NAME).write_bytes(bytes(4096))
        os.chmod(d / ACK_NAME, 0o600)
    _refused(d, {"symlink": "symbolic link", "big": "not ours", "fifo": "not a regular file"}[kind])
    assert victim.read_bytes() == b"precious"


def test_a_damaged_ack_record_falls_back_to_the_other_slot(tmp_path):
    d = tmp_path / "ob"
    with Outbox(str(d), 1 << 20) as box:
        _fill(box, 10)
        box.ack(3)
        box.ack(6)  # the two slots now hold 3 and 6
    raw = bytearray((d / ACK_NAME).read_bytes())
    i = 0 if raw[4:12] == (6).to_bytes(8, "little") else 16
    raw[i + 5] ^= 0xFF  # tear the newer one: the older acknowledgement stands
    (d / ACK_NAME).write_bytes(bytes(raw))
    with Outbox(str(d), 1 << 20) as box:
        assert box.acked == 3 and [s for s, _, _ in box.pending()] == list(range(4, 11))


def test_the_directory_must_be_private_and_real(tmp_path):
    real = tmp_path / "real"
    real.mkdir(0o700)
    (tmp_path / "link").symlink_to(real)
    with pytest.raises(OutboxError, match="not a directory"):
        Outbox(str(tmp_path / "link"), 1 << 20)
    loose = tmp_path / "loose"
    loose.mkdir()
    os.chmod(loose, 0o755)
    with pytest.raises(OutboxError, match="chmod 700"):
        Outbox(str(loose), 1 << 20)
    assert os.listdir(loose) == []
    if os.geteuid() == 0:
        theirs = tmp_path / "theirs"
        theirs.mkdir(0o700)
        os.chown(theirs, 4242, -1)
        with pytest.raises(OutboxError, match="owned by uid 4242"):
            Outbox(str(theirs), 1 << 20)
    with pytest.raises(OutboxError, match="parent directory does not exist"):
        Outbox(str(tmp_path / "no" / "such"), 1 << 20)
    (tmp_path / "file").write_bytes(b"")
    with pytest.raises(OutboxError, match="not a directory"):
        Outbox(str(tmp_path / "file"), 1 << 20)


def test_one_process_per_outbox(tmp_path):
    d = str(tmp_path / "ob")
    box = Outbox(d, 1 << 20)
    with pytest.raises(OutboxError, match="in use"):
        Outbox(d, 1 << 20)
    box.close()
    Outbox(d, 1 << 20).close()


def test_pending_sees_appends_and_acks_made_while_it_runs(tmp_path):
    d = str(tmp_path / "ob")
    with Outbox(d, 1 << 20, segment_bytes=4096) as box:
        _fill(box, 30)
        seen = []
        for seq, _, _ in box.pending():
            seen.append(seq)
            if seq == 5:
                box.ack(20)  # a concurrent consumer went ahead
            if seq < 40:
                box.append(b"more", {})
        # 30 + one append per record seen below 40 (5 + 19): the last is 54
        assert seen == list(range(1, 6)) + list(range(21, 55))


def test_replay_reads_one_record_at_a_time(tmp_path):
    """Memory does not grow with the spool: replaying 48 MiB holds about
    one record (1 MiB) at a time."""
    d = str(tmp_path / "ob")
    with Outbox(d, 64 << 20, fsync="never") as box:
        for i in range(48):
            box.append(os.urandom(1 << 20), {"i": i})
    tracemalloc.start()
    try:
        with Outbox(d, 64 << 20, fsync="never") as box:
            n = 0
            for _seq, meta, payload in box.pending():
                assert meta == {"i": n} and len(payload) == 1 << 20
                n += 1
            assert n == 48
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 << 20, f"replay held {peak} bytes"


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="fsync"):
        Outbox(str(tmp_path / "a"), 1 << 20, fsync="sometimes")
    with pytest.raises(ValueError, match="64 KiB"):
        Outbox(str(tmp_path / "a"), 1000)
    with Outbox(str(tmp_path / "b"), 1 << 20) as box:
        with pytest.raises(ValueError, match="meta"):
            box.append(b"", {"x": "y" * (1100 << 10)})


def test_append_many_is_one_write_all_or_none(tmp_path):
    d = str(tmp_path / "ob")
    with Outbox(d, 1 << 20, segment_bytes=4096) as box:
        box.append(b"first", {})
        recs = [(bytes([i % 256]) * 50, {"i": i}) for i in range(500)]  # 1,500 buffers: two writev calls
        seqs = box.append_many(recs)
        assert seqs == list(range(2, 502))
        assert len(_segs(d)) == 2, "one call goes into one segment (past segment_bytes)"
        got = list(box.pending(after=1))
        assert [(p, m) for _, m, p in got] == recs
        before = box.bytes
        with pytest.raises(OutboxFull):
            box.append_many([(b"x", {}), (bytes(1 << 20), {})])
        assert box.bytes == before == _disk_bytes(d) and box.count == 501
        assert box.append_many([]) == []


def test_a_short_write_stores_nothing(tmp_path):
    """The file system refuses part of a write (here the process's file-size
    limit, as a full disk does): the record is cut back, nothing is kept."""
    import resource
    import signal

    d = str(tmp_path / "ob")
    with Outbox(d, 4 << 20) as box:
        box.append(b"a" * 1000, {})
        seg = os.path.join(d, _segs(d)[0])
        size = os.path.getsize(seg)
        old_sig = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        old_lim = resource.getrlimit(resource.RLIMIT_FSIZE)
        resource.setrlimit(resource.RLIMIT_FSIZE, (size + 100, old_lim[1]))
        try:
            with pytest.raises(OSError):
                box.append(b"b" * 1000, {})
        finally:
            resource.setrlimit(resource.RLIMIT_FSIZE, old_lim)
            signal.signal(signal.SIGXFSZ, old_sig)
        assert os.path.getsize(seg) == size and box.count == 1
        assert box.append(b"c", {}) == 2
    with Outbox(d, 4 << 20) as box:
        assert [p for _, _, p in box.pending()] == [b"a" * 1000, b"c"] and box.cut_tails == 0
