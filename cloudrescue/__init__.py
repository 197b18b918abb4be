"""cloudrescue: repair unreachable cloud instances through rescue mode."""

__version__ = "0.1.0"
