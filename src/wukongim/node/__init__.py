"""wukongim.node: one node's Raft groups, state machines and log store, stepped synchronously
(`node.Node`), shared by the asyncio server and the simulator."""
