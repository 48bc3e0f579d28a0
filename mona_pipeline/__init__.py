"""mona-pipeline: find one anime character in huge picture collections."""

__version__ = "0.1.0"
