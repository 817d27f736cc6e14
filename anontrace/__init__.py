"""anontrace: make network captures safe to share."""

__version__ = "0.1.0"
