"""The version of kitplay and of its API, shared by the daemon, the bridge and the CLI."""

__version__ = "0.1.0"
API_VERSION = "1"

__all__ = ["API_VERSION", "__version__"]
