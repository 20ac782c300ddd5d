"""wukongim.protocol."""
