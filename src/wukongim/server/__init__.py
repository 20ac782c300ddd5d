"""wukongim.server."""
