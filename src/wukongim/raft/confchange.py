"""Single-server membership changes: the new ConfState after one ConfChange.

Rules of this file: pure functions. One change at a time keeps any two consecutive majorities
overlapping (Raft thesis §4.1); the core enforces "one at a time" and applies the result when the
change's entry is applied. Demoting a voter straight to learner is refused (remove, then add).
"""

from __future__ import annotations

from wukongim.raft.messages import ConfChange, ConfChangeType, ConfState


def apply_change(conf: ConfState, cc: ConfChange) -> ConfState | None:
    """The configuration after `cc`, or None if `cc` is not allowed on `conf`. Adding a member
    that is already there (as the same kind) returns `conf` unchanged."""
    nid = cc.node_id
    voters = [v for v in conf.voters if v != nid]
    learners = [v for v in conf.learners if v != nid]
    if cc.type == ConfChangeType.ADD_VOTER:
        voters.append(nid)  # also promotes a learner
    elif cc.type == ConfChangeType.ADD_LEARNER:
        if nid in conf.voters:
            return None
        learners.append(nid)
    return ConfState(tuple(sorted(voters)), tuple(sorted(learners)))
