"""wukongim.node."""
