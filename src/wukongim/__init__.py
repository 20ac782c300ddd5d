"""wukongim: a WuKongIM-compatible IM server in Python."""

__version__ = "0.1.0"
