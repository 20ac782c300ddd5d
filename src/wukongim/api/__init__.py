"""wukongim.api."""
