"""KVStore behaviour, run against the memory twin and RocksDB alike."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.unit.test_store_support import StoreHarness, make_harness
from wukongim.store.interfaces import HardState, LogEntry


@pytest.fixture(params=["memory", "rocks"])
def stores(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreHarness]:
    harness = make_harness(request.param, tmp_path / "db")
    yield harness
    harness.close()


def fill(stores: StoreHarness, cf: str, n: int) -> None:
    batch = stores.kv.batch()
    for i in range(n):
        batch.put(cf, b"k%03d" % i, b"v%d" % i)
    stores.kv.write(batch)


def test_put_get_delete(stores: StoreHarness) -> None:
    kv = stores.kv
    assert kv.get("state", b"a") is None
    batch = kv.batch()
    batch.put("state", b"a", b"1")
    batch.put("state", b"b", b"")
    batch.put("other", b"a", b"x")
    batch.put("state", b"a", b"2")  # later op in the batch wins
    kv.write(batch)
    assert kv.get("state", b"a") == b"2"
    assert kv.get("state", b"b") == b""
    assert kv.get("other", b"a") == b"x"
    batch = kv.batch()
    batch.delete("state", b"a")
    batch.delete("state", b"missing")
    kv.write(batch, sync=True)
    assert kv.get("state", b"a") is None
    assert kv.get("other", b"a") == b"x"


def test_scan_forward_reverse_limit(stores: StoreHarness) -> None:
    fill(stores, "state", 20)
    kv = stores.kv
    keys = [k for k, _ in kv.scan("state", b"k005", b"k010")]
    assert keys == [b"k005", b"k006", b"k007", b"k008", b"k009"]
    assert list(kv.scan("state", b"k005", b"k007")) == [(b"k005", b"v5"), (b"k006", b"v6")]
    keys = [k for k, _ in kv.scan("state", b"k005", b"k010", reverse=True)]
    assert keys == [b"k009", b"k008", b"k007", b"k006", b"k005"]
    assert [k for k, _ in kv.scan("state", b"k005", b"k010", limit=2)] == [b"k005", b"k006"]
    rev = [k for k, _ in kv.scan("state", b"k005", b"k010", reverse=True, limit=2)]
    assert rev == [b"k009", b"k008"]
    assert list(kv.scan("state", b"k005", b"k010", limit=0)) == []
    assert list(kv.scan("state", b"k010", b"k005")) == []
    assert list(kv.scan("state", b"z", b"zz")) == []
    assert list(kv.scan("nothing-here", b"", b"\xff")) == []
    assert len(list(kv.scan("state", b"", b"\xff"))) == 20
    # Prefix keys and bytes above 0x7f order as unsigned bytes.
    batch = kv.batch()
    for key in (b"p", b"p\x00", b"p\xff", b"p\x80\x00", b"q"):
        batch.put("bytes", key, key)
    kv.write(batch)
    assert [k for k, _ in kv.scan("bytes", b"p", b"q")] == [b"p", b"p\x00", b"p\x80\x00", b"p\xff"]


def test_delete_range(stores: StoreHarness) -> None:
    fill(stores, "state", 20)
    fill(stores, "other", 20)
    batch = stores.kv.batch()
    batch.delete_range("state", b"k003", b"k017")
    stores.kv.write(batch)
    keys = [k for k, _ in stores.kv.scan("state", b"", b"\xff")]
    assert keys == [b"k000", b"k001", b"k002", b"k017", b"k018", b"k019"]
    assert len(list(stores.kv.scan("other", b"", b"\xff"))) == 20
    batch = stores.kv.batch()
    batch.delete_range("state", b"k018", b"k018")  # empty range
    batch.put("state", b"k010", b"back")  # a put after the range delete in the same batch
    stores.kv.write(batch)
    assert stores.kv.get("state", b"k010") == b"back"
    assert stores.kv.get("state", b"k018") == b"v18"


def test_synced_write_survives_restart(stores: StoreHarness) -> None:
    fill(stores, "state", 5)  # unsynced, then made durable by the next synced write
    batch = stores.kv.batch()
    batch.put("state", b"applied", b"5")
    stores.kv.write(batch, sync=True)
    stores.restart()
    assert stores.kv.get("state", b"applied") == b"5"
    assert len(list(stores.kv.scan("state", b"k", b"l"))) == 5


def test_raft_sync_makes_earlier_state_writes_durable(stores: StoreHarness) -> None:
    fill(stores, "state", 3)  # unsynced state write
    stores.log.append(1, [LogEntry(1, 1, 0, b"x")])
    stores.log.set_hard_state(1, HardState(1, 1, 1))
    stores.log.sync()  # one WAL: the synced raft batch carries the state write with it
    stores.restart()
    assert stores.kv.get("state", b"k002") == b"v2"
    assert stores.log.load(1).hard_state == HardState(1, 1, 1)


def test_scan_is_a_snapshot_of_the_iteration_start(stores: StoreHarness) -> None:
    fill(stores, "state", 5)
    it = stores.kv.scan("state", b"", b"\xff")
    first = next(it)
    batch = stores.kv.batch()
    batch.put("state", b"k0025", b"new")
    stores.kv.write(batch)
    rest = list(it)
    assert first[0] == b"k000"
    assert [k for k, _ in rest] == [b"k001", b"k002", b"k003", b"k004"]
