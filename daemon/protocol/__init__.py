"""The contract shared by the daemon, the bridge and the CLI: registry, errors, framing, client.

Standard library only (``aclient`` is the exception: it needs trio and is imported explicitly).
"""

from .errors import ERRORS as ERRORS
from .errors import KitplayError as KitplayError
from .registry import METHODS as METHODS
from .registry import Method as Method
from .registry import Param as Param

__all__ = ["ERRORS", "METHODS", "KitplayError", "Method", "Param"]
