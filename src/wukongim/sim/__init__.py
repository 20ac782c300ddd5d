"""wukongim.sim."""
