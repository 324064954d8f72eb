"""The SQLite store's recent flows in memory: each alert's flow chosen
without asking the store, when the store can say nothing else.

The store's indexes stay the truth (ingest.flows.correlate); this is a
shortcut in front of them, for the C writer's path of the SQLite sink.  It
keeps two things, both bounded in bytes:

* the **recent flows**: the newest :data:`CAPACITY` flows this process
  stored that no later write can replace or remove -- NetFlow/IPFIX
  records, which have no engine flow id (a flow with one, EVE or Zeek, is
  replaced when seen again, and made unique by
  :func:`ingest.flows.correlate.dedupe_flows`) -- with what the matching
  rules read: ``tuple_key``, ``start_us``, ``coalesce(end_us, start_us)``,
  ``vlan`` and ``id`` (40 bytes a flow: 10 MiB);
* a **Bloom filter** of the 5-tuple keys of every other flow in the store
  (those stored before this process started, by another process, with an
  engine flow id, and the recent flows evicted for newer ones):
  :data:`BLOOM_BITS` bits (8 MiB), three bits a key, all in one word.

The invariant: every flow of the store with a key and a start is either
among the recent flows, exactly as stored, or its key is in the filter.
So an alert whose key the filter has not seen can match only recent flows,
and :meth:`RecentFlows.choose` applies the rules to them (the engine flow
id rule cannot apply: recent flows have none); any other alert is left to
the store (the INSERT's subquery).  A false positive of the filter costs
one index probe, never a wrong link.

What keeps the invariant: the filter starts as the keys of the whole store
(one scan of the ``flows_tuple`` index when the first batch with flows is
written: about 0.2 s a million flows; a store of more than
:data:`SCAN_MAX` flows is not scanned and every alert goes to the store);
``PRAGMA data_version`` is read in every batch's transaction, and when
another connection committed anything since (another writer, a retention
``DELETE``), everything is dropped and scanned again; a batch whose
transaction fails drops everything too (its flows may not be in the
store).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np

#: recent flows kept (40 bytes each)
CAPACITY = 1 << 18
#: the filter's size in bits (8 MiB)
BLOOM_BITS = 1 << 26
#: a store with more flows than this is not scanned: its alerts all go to the store
SCAN_MAX = 16_000_000

_WORDS = BLOOM_BITS // 64
_WORD_SHIFT = np.uint64(64 - (_WORDS.bit_length() - 1))
_SALT_WORD = np.uint64(0x9E3779B97F4A7C15)
_SALT_BITS = np.uint64(0xC2B2AE3D27D4EB4F)


def _word_and_mask(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A blocked filter: each key's three bits lie in one 64-bit word (one
    cache line read a lookup).  The keys are already a good 63-bit hash:
    multiplied by odd constants, the high bits taken for the word, three
    6-bit slices for the bits."""
    k = keys.astype(np.uint64)
    with np.errstate(over="ignore"):
        word = (k * _SALT_WORD) >> _WORD_SHIFT
        h = k * _SALT_BITS
    one, six = np.uint64(1), np.uint64(63)
    mask = ((one << ((h >> np.uint64(58)) & six)) | (one << ((h >> np.uint64(52)) & six))
            | (one << ((h >> np.uint64(46)) & six)))
    return word, mask


class RecentFlows:
    """The recent flows and the filter (see the module's docstring).
    ``slack_us``: --correlate-slack."""

    def __init__(self, slack_us: int, capacity: int = CAPACITY) -> None:
        self.slack_us = int(slack_us)
        self.capacity = int(capacity)
        self._bloom = np.zeros(_WORDS, np.uint64)
        self._saturated = False  # the store was too big to scan: the filter says yes to all
        self._valid = False  # the filter holds the store's keys (else: scan before use)
        self._version: int | None = None  # PRAGMA data_version when last seen
        self.decided = 0  # alerts with a key whose flow (or none) was chosen here
        self.asked = 0  # alerts with a key left to the store
        self.scans = 0  # times the store's keys were read
        self._clear()

    # -- state -------------------------------------------------------------

    def _clear(self) -> None:
        z = np.zeros(0, np.int64)
        self._key, self._start, self._end, self._vlan, self._id = z, z, z, z, z

    def invalidate(self) -> None:
        """Forget everything: the next :meth:`begin` scans the store again."""
        self._valid = False
        self._version = None
        self._clear()

    def nbytes(self) -> int:
        return int(self._bloom.nbytes + sum(a.nbytes for a in (self._key, self._start, self._end,
                                                                  self._vlan, self._id)))

    def begin(self, data_version: int, flow_count: Callable[[], int],
              scan: Callable[[], Iterable[np.ndarray]]) -> None:
        """In a batch's transaction, before anything is chosen:
        ``data_version`` is the connection's ``PRAGMA data_version``;
        ``flow_count()`` an upper bound of the store's flows, ``scan()``
        the keys of all of them, in chunks (called only when the state must
        be made again)."""
        if self._valid and data_version == self._version:
            return
        self._clear()
        self._bloom[:] = 0
        self._saturated = flow_count() > SCAN_MAX
        if not self._saturated:
            for keys in scan():  # (in chunks: the filter's bytes, not the store's keys, in memory)
                self._add_keys(keys)
            self.scans += 1
        self._valid = True
        self._version = data_version

    def _add_keys(self, keys: np.ndarray) -> None:
        keys = np.asarray(keys, np.int64)
        word, mask = _word_and_mask(keys[keys != 0])
        if not len(word):
            return
        # (np.bitwise_or.at is ~1 us a key: the masks OR-ed per word first)
        order = np.argsort(word, kind="stable")
        word, mask = word[order], mask[order]
        first = np.flatnonzero(np.concatenate(([True], word[1:] != word[:-1])))
        self._bloom[word[first]] |= np.bitwise_or.reduceat(mask, first)

    def _maybe(self, keys: np.ndarray) -> np.ndarray:
        """Whether a stored flow that is not recent may have the key."""
        if self._saturated:
            return np.ones(len(keys), bool)
        word, mask = _word_and_mask(keys)
        return (self._bloom[word] & mask) == mask  # type: ignore[no-any-return]

    # -- writes --------------------------------------------------------------

    def other_flows(self, keys: np.ndarray) -> None:
        """Flows stored that are not kept as recent (an engine flow id, or
        ids not known): into the filter."""
        self._add_keys(keys)

    def add(self, ids: np.ndarray, keys: np.ndarray, start: np.ndarray, start_valid: np.ndarray,
            end: np.ndarray, end_valid: np.ndarray, vlan: np.ndarray, vlan_valid: np.ndarray) -> None:
        """Flows just stored with these ids, without an engine flow id (the
        values as stored; ``*_valid``: not NULL).  A flow without a key or a
        start can match no alert and is not kept."""
        keep = (keys != 0) & start_valid
        if not keep.any():
            return
        s = start[keep]
        e = np.where(end_valid[keep], end[keep], s)  # coalesce(end_us, start_us)
        v = np.where(vlan_valid[keep], vlan[keep], -1)
        new = [np.asarray(x, np.int64) for x in (keys[keep], s, e, v, ids[keep])]
        order = np.lexsort((new[4], new[0]))  # the batch by key, then id
        new = [x[order] for x in new]
        # merged into the sorted arrays (O(n) copies, no sort of them all):
        # the new ids are above every kept one, so among equal keys they go last
        old = (self._key, self._start, self._end, self._vlan, self._id)
        if not len(self._id) or new[4].min() > self._id.max():
            at = np.searchsorted(self._key, new[0], "right") + np.arange(len(new[0]))
            rest = np.ones(len(self._id) + len(new[0]), bool)
            rest[at] = False
            cat = []
            for o, x in zip(old, new, strict=True):
                c = np.empty(len(rest), np.int64)
                c[at], c[rest] = x, o
                cat.append(c)
        else:  # (not this sink's own new rows: sorted again)
            cat = [np.concatenate((o, x)) for o, x in zip(old, new, strict=True)]
            order = np.lexsort((cat[4], cat[0]))
            cat = [c[order] for c in cat]
        if len(cat[0]) > self.capacity:  # the oldest go into the filter, down to 3/4
            drop = len(cat[0]) - self.capacity * 3 // 4
            cut = np.partition(cat[4], drop - 1)[drop - 1]
            gone = cat[4] <= cut
            self._add_keys(cat[0][gone])
            cat = [c[~gone] for c in cat]
        self._key, self._start, self._end, self._vlan, self._id = cat

    # -- choosing ------------------------------------------------------------

    def choose(self, keys: np.ndarray, ts: np.ndarray, vlan: np.ndarray, vlan_valid: np.ndarray
               ) -> tuple[np.ndarray, np.ndarray]:
        """Each alert's flow by the rules, where the recent flows decide:
        (``ref``, ``ask``).  ``keys`` 0: no key (no flow, decided).  ``ask``
        True: a stored flow that is not recent may match, the store must
        choose; else ``ref`` is the flow's id, or -1 for none."""
        n = len(keys)
        ref = np.full(n, -1, np.int64)
        ask = np.zeros(n, bool)
        has = keys != 0
        if not has.any():
            return ref, ask
        ask[has] = self._maybe(keys[has])
        look = np.flatnonzero(has & ~ask)
        self.decided += len(look)
        self.asked += int(has.sum()) - len(look)
        if not len(look) or not len(self._key):
            return ref, ask
        k = keys[look]
        lo = np.searchsorted(self._key, k, "left")
        at = np.minimum(lo, len(self._key) - 1)
        cnt = (self._key[at] == k).astype(np.int64)  # mostly one flow a key, or none
        nxt = np.minimum(lo + 1, len(self._key) - 1)
        more = np.flatnonzero((cnt == 1) & (nxt != at) & (self._key[nxt] == k))
        if len(more):
            cnt[more] = np.searchsorted(self._key, k[more], "right") - lo[more]
        total = int(cnt.sum())
        if not total:
            return ref, ask
        owner = np.repeat(look, cnt)
        first = np.repeat(lo - (np.cumsum(cnt) - cnt), cnt)
        idx = first + np.arange(total)
        t = ts[owner]
        s = self.slack_us
        av = np.where(vlan_valid, vlan, -1)[owner]
        fv = self._vlan[idx]
        ok = ((self._start[idx] <= t + s) & (self._end[idx] >= t - s)
              & ((av == -1) | (fv == -1) | (fv == av)))
        if not ok.any():
            return ref, ask
        owner, idx, t = owner[ok], idx[ok], t[ok]
        if len(owner) < 2 or (owner[1:] != owner[:-1]).all():  # one flow each (owner is ascending)
            ref[owner] = self._id[idx]
            return ref, ask
        # the closest start, then the older row (the engine flow id rule
        # cannot apply: recent flows have none)
        order = np.lexsort((self._id[idx], np.abs(self._start[idx] - t), owner))
        owner, idx = owner[order], idx[order]
        firsts = np.ones(len(owner), bool)
        firsts[1:] = owner[1:] != owner[:-1]
        ref[owner[firsts]] = self._id[idx[firsts]]
        return ref, ask
