"""kitplayd: the per-user daemon that owns every kitplay job.

This package's ``__init__`` must stay light: the ``kitplay`` client imports
``daemon.protocol`` and must not pull in trio, Quart or Hypercorn.
"""

__version__ = "0.1.0"
API_VERSION = "1"

__all__ = ["API_VERSION", "__version__"]
