from __future__ import annotations

from tests.unit.chat.harness import Harness
from wukongim.chat.fanout import Delivery, plan_deliveries, recv_channel_id, recv_from_uid
from wukongim.chat.ids import SYSTEM_UID


def test_recv_channel_id_rewrite() -> None:
    assert recv_channel_id(1, "b", "b", "a") == "a"
    assert recv_channel_id(1, "b", "a", "a") == "b"  # sender's other devices keep the peer
    assert recv_channel_id(2, "g", "g", "a") == "g"
    assert recv_from_uid(SYSTEM_UID) == ""
    assert recv_from_uid("a") == "a"


def test_person_plan_rewrites_channel_and_clears_own_red_dot() -> None:
    h = Harness()
    cmd = h.send_cmd("a", "b", 1, red_dot=True)
    result = h.apply(cmd)[0]
    plan = plan_deliveries(cmd, result)  # type: ignore[arg-type]
    assert sorted(plan, key=lambda d: d.uid) == [
        Delivery("a", "b", red_dot=False, is_sender=True),
        Delivery("b", "a", red_dot=True, is_sender=False),
    ]


def test_group_plan_and_rejected_send() -> None:
    h = Harness()
    h.group("g", "a", "b")
    cmd = h.send_cmd("a", "g", 2, red_dot=True)
    plan = plan_deliveries(cmd, h.apply(cmd)[0])  # type: ignore[arg-type]
    assert [(d.uid, d.channel_id, d.red_dot) for d in plan] == [
        ("a", "g", False),
        ("b", "g", True),
    ]
    bad = h.send_cmd("z", "g", 2)
    assert plan_deliveries(bad, h.apply(bad)[0]) == []  # type: ignore[arg-type]
