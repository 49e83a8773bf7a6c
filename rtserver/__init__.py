"""rtserver: a real-time server for live-help marketplaces."""

__version__ = "0.1.0"
