"""wukongim.store."""
