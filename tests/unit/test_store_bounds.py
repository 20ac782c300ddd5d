"""The term runs RocksRaftLogStore keeps per group, checked against a plain list."""

from __future__ import annotations

import random

from wukongim.store.interfaces import LogEntry
from wukongim.store.raftlog import _Bounds


def test_term_runs_follow_appends_and_compactions() -> None:
    rng = random.Random(5)
    for _ in range(200):
        bounds = _Bounds(1, 0)
        model: dict[int, int] = {}
        first, last, term = 1, 0, 1
        for _ in range(30):
            if rng.random() < 0.2 and last >= first:
                upto = rng.randint(first, last + 2)
                bounds.compacted(upto)
                model = {i: t for i, t in model.items() if i > upto}
                first, last = upto + 1, max(last, upto)
                continue
            start = rng.randint(first, last + 1)
            count = rng.randint(1, 6)
            batch = []
            for i in range(start, start + count):
                term += rng.random() < 0.3
                batch.append(LogEntry(i, term, 0, b""))
            bounds.appended(batch)
            model = {i: t for i, t in model.items() if i < start}
            model.update({e.index: e.term for e in batch})
            last = start + count - 1
            assert (bounds.first, bounds.last) == (first, last)
            for i in range(first - 2, last + 3):
                assert bounds.term(i) == model.get(i), (i, bounds.starts, bounds.terms)
