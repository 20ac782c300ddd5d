"""SimNetwork: delays, drops, duplicates, partitions and clogs, all from the seed."""

import random
from typing import TypeVar

from wukongim.sim.clock import SimClock
from wukongim.sim.network import NetworkOptions, SimNetwork

P = TypeVar("P")


def deliver_all(net: SimNetwork[P], until: int) -> list[tuple[int, int, P]]:
    out: list[tuple[int, int, P]] = []
    for now in range(until + 1):
        out.extend(net.deliver(now))
    return out


def test_packets_arrive_within_the_delay_bounds_and_reorder() -> None:
    net: SimNetwork[str] = SimNetwork(random.Random(1), NetworkOptions(delay_min=1, delay_max=5))
    net.send(1, 2, [f"p{i}" for i in range(50)], now=0)
    assert net.deliver(0) == []
    got = deliver_all(net, 5)
    assert sorted(p for _, _, p in got) == sorted(f"p{i}" for i in range(50))
    assert [p for _, _, p in got] != [f"p{i}" for i in range(50)]  # reordered


def test_drop_and_duplicate_rates() -> None:
    options = NetworkOptions(delay_min=1, delay_max=1, drop=0.5, duplicate=0.5)
    net: SimNetwork[int] = SimNetwork(random.Random(2), options)
    net.send(1, 2, range(1000), now=0)
    got = [p for _, _, p in net.deliver(1)]
    assert 300 < len(set(got)) < 700
    assert len(got) > len(set(got))
    assert net.stats.dropped + len(set(got)) == 1000


def test_asymmetric_partition_blocks_one_direction() -> None:
    net: SimNetwork[str] = SimNetwork(random.Random(3), NetworkOptions(delay_min=1, delay_max=1))
    net.partition([1], [2, 3], symmetric=False)
    net.send(1, 2, ["a"], now=0)
    net.send(2, 1, ["b"], now=0)
    assert net.deliver(1) == [(2, 1, "b")]
    net.heal()
    net.send(1, 2, ["c"], now=1)
    assert net.deliver(2) == [(1, 2, "c")]


def test_packets_in_flight_into_a_partition_are_lost() -> None:
    net: SimNetwork[str] = SimNetwork(random.Random(4), NetworkOptions(delay_min=2, delay_max=2))
    net.send(1, 2, ["a"], now=0)
    net.partition([1], [2], symmetric=True)
    assert deliver_all(net, 3) == []


def test_clogged_link_holds_packets_until_unclogged() -> None:
    net: SimNetwork[str] = SimNetwork(random.Random(5), NetworkOptions(delay_min=1, delay_max=1))
    net.clog(1, 2)
    net.send(1, 2, ["a", "b"], now=0)
    net.send(2, 1, ["c"], now=0)
    assert deliver_all(net, 10) == [(2, 1, "c")]
    net.unclog(1, 2, now=10)
    assert sorted(p for _, _, p in net.deliver(11)) == ["a", "b"]


def test_same_seed_same_schedule() -> None:
    def run(seed: int) -> list[tuple[int, int, int]]:
        options = NetworkOptions(delay_min=1, delay_max=4, drop=0.2, duplicate=0.1)
        net: SimNetwork[int] = SimNetwork(random.Random(seed), options)
        for now in range(20):
            net.send(now % 3, (now + 1) % 3, range(now * 10, now * 10 + 10), now)
        return deliver_all(net, 30)

    assert run(9) == run(9)
    assert run(9) != run(10)


def test_sim_clock_is_a_clock() -> None:
    clock = SimClock(tick_ms=10, epoch_ms=1000)
    clock.advance(5)
    assert clock.now_ms() == 1050
    assert clock.monotonic_s() == 0.05
