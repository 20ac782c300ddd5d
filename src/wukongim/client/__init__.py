"""wukongim.client."""
