"""wukongim.chat."""
