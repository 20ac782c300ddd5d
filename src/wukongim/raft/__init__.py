"""wukongim.raft."""
