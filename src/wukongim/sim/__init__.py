"""wukongim.sim: the deterministic cluster simulator behind `wukongim simulate`.

One seed sets up everything (`options.draw_options`): nodes on a `SimNetwork` with `SimDisk`s,
driven by the clients of `workload`, with faults from `nemesis` and crashes in `cluster`;
`invariants` checks safety after every step, `linearizability` checks the client history at the
end, `runner` runs many seeds or replays one with a trace. Findings: docs/sim-findings.md.
"""
