"""wukongim.cluster."""
