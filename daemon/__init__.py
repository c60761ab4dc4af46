"""kitplayd: the per-user daemon that owns every kitplay job.

This package's ``__init__`` must stay light: the ``kitplay`` client imports
``daemon.protocol`` and must not pull in trio, Quart or Hypercorn.
"""

from .protocol.version import API_VERSION as API_VERSION
from .protocol.version import __version__ as __version__

__all__ = ["API_VERSION", "__version__"]
