"""Mapping: enrich whole batches before they reach the sinks.

Vectorised over the batch; no per-alert Python.  Resolves the
classification text (``alert.category``) from a class-id table, and with
``ingest.maps`` loaded (``set_maps``) the signature message of alerts that
carry none (Unified2), one lookup per distinct (gid, sid), and the
signature's references (``alert.references``: reference.config URLs of the
sid-msg.map references), again one lookup per distinct (gid, sid).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from .batch import AlertBatch, copy_rows
from .strings import Strings


@dataclass
class Enriched:
    """A batch plus what mapping derived for it, shared by every sink."""

    batch: AlertBatch
    #: per alert, index into ``strings`` of its category, or -1
    categories: np.ndarray | None
    #: batch.strings followed by the category texts and the references (a
    #: list, or a pool whose last segments hold them)
    strings: Strings
    #: per alert, index into ``strings`` of its references (a JSON array),
    #: or -1; None when no alert has any
    references: np.ndarray | None = None

    @property
    def extra_strings(self) -> list[str]:
        return self.strings[len(self.batch.strings):]


class Enricher:
    def __init__(self, classifications: dict[int, str] | None = None) -> None:
        self.set_classifications(classifications or {})
        self._sigs = None

    def set_maps(self, maps) -> None:
        """Use an ``ingest.maps.Maps``: signature messages for alerts that
        carry none (Unified2: msg_idx == -1) and categories by class id.
        One assignment each, so a reload (SIGHUP) swaps atomically."""
        self.set_classifications(maps.categories() if maps is not None else {})
        self._sigs = maps

    @property
    def maps(self):
        """The ``ingest.maps.Maps`` in use (None without maps)."""
        return self._sigs

    def _references(self, batch: AlertBatch, strings: Strings) -> tuple[np.ndarray | None, Strings]:
        """Per alert, the index of its references' JSON array appended to
        strings (one lookup per distinct (gid, sid)).  References the alert
        arrived with (``batch.refs``: a collector's input) win."""
        got = batch.refs
        if got is not None and len(batch) and (got >= 0).all():
            return got, strings
        maps = self._sigs
        if maps is None or len(batch) == 0 or not getattr(maps, "has_references", False):
            return (got if got is not None and (got >= 0).any() else None), strings
        a = batch.alerts
        keys = np.stack([a["gid"], a["sid"]], axis=1).astype(np.int64)
        uniq, inv = np.unique(keys, axis=0, return_inverse=True)
        base = len(strings)
        new: list[str] = []
        idx = np.full(len(uniq), -1, dtype=np.int32)
        for j, text in enumerate(maps.references_json(uniq)):
            if text is not None:
                idx[j] = base + len(new)
                new.append(text)
        if not new:
            return (got if got is not None and (got >= 0).any() else None), strings
        mapped = idx[inv.reshape(-1)]
        if got is not None:
            mapped = np.where(got >= 0, got, mapped).astype(np.int32)
        return mapped, strings + new

    def _signatures(self, batch: AlertBatch) -> AlertBatch:
        """Fill msg_idx == -1 from the maps, looking up each distinct
        (gid, sid) once."""
        maps = self._sigs
        if maps is None or len(batch) == 0:
            return batch
        a = batch.alerts
        need = np.flatnonzero(a["msg_idx"] < 0)
        if not len(need):
            return batch
        keys = np.stack([a["gid"][need], a["sid"][need]], axis=1).astype(np.int64)
        uniq, inv = np.unique(keys, axis=0, return_inverse=True)
        msgs = maps.messages(uniq)
        base = len(batch.strings)
        new: list[str] = []
        idx = np.full(len(uniq), -1, dtype=np.int32)
        for j, m in enumerate(msgs):
            if m is not None:
                idx[j] = base + len(new)
                new.append(m)
        if not new:
            return batch
        alerts = copy_rows(a)
        alerts["msg_idx"][need] = idx[inv.reshape(-1)]
        # replace(): keeps every other part of the batch (EVE raw pool, events, keys ...)
        return dataclasses.replace(batch, alerts=alerts, strings=batch.strings + new)

    def set_classifications(self, classifications: dict[int, str]) -> None:
        """Replace the class-id -> category table (atomically: one assignment)."""
        names = list(classifications.values())
        size = (max(classifications) + 1) if classifications else 0
        table = np.full(size, -1, dtype=np.int32)
        for j, cid in enumerate(classifications):
            table[cid] = j
        self._cls = (table, names)
        # EVE gives the classification by its description (alert.category):
        # the reverse table turns it into the class id.
        self._by_name = {name: cid for cid, name in classifications.items()}

    def _class_ids_from_text(self, batch: AlertBatch) -> None:
        """Set class_id from the engine's category text where it is 0."""
        by_name = self._by_name
        cat = batch.cat
        if not by_name or cat is None or not (cat >= 0).any():
            return
        used = np.unique(cat[cat >= 0])
        lut = np.zeros(len(batch.strings) + 1, dtype=np.uint32)  # [-1] -> 0
        for i in used.tolist():
            lut[i] = by_name.get(batch.strings[i], 0)
        cid = batch.alerts["class_id"]
        batch.alerts["class_id"] = np.where(cid == 0, lut[cat], cid)

    def apply(self, batch: AlertBatch) -> Enriched:
        item = self._categories(self._signatures(batch))
        refs, strings = self._references(item.batch, item.strings)
        if refs is None:
            return item
        return Enriched(item.batch, item.categories, strings, refs)

    def _categories(self, batch: AlertBatch) -> Enriched:
        table, names = self._cls
        if batch.cat is not None and len(batch):
            self._class_ids_from_text(batch)
        if not names or len(batch) == 0:
            return Enriched(batch, batch.cat, batch.strings)
        cid = batch.alerts["class_id"]
        known = cid < len(table)
        local = np.where(known, table[np.where(known, cid, 0)], -1)
        used = np.unique(local[local >= 0])
        base = len(batch.strings)
        remap = np.full(len(names), -1, dtype=np.int32)
        remap[used] = base + np.arange(len(used), dtype=np.int32)
        cats = np.where(local >= 0, remap[np.maximum(local, 0)], -1).astype(np.int32)
        if batch.cat is not None:  # the engine's own text wins
            cats = np.where(batch.cat >= 0, batch.cat, cats).astype(np.int32)
        return Enriched(batch, cats, batch.strings + [names[i] for i in used.tolist()])
