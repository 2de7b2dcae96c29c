"""rawtcp: drive TCP by hand against a real Linux kernel."""

__version__ = "0.1.0"
