"""The contract shared by the daemon, the bridge and the CLI: registry, errors, framing, client.

Standard library only (``aclient`` is the exception: it needs trio and is imported explicitly).
The names below are loaded on first use: ``kitplay``'s common commands import the client and
the errors, never the registry (building it costs a millisecond and a half of their start).
"""

from .errors import ERRORS as ERRORS
from .errors import KitplayError as KitplayError

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing slows `kitplay` down
if TYPE_CHECKING:
    from .registry import METHODS as METHODS
    from .registry import Method as Method
    from .registry import Param as Param

__all__ = ["ERRORS", "METHODS", "KitplayError", "Method", "Param"]


def __getattr__(name: str) -> object:
    if name in ("METHODS", "Method", "Param"):
        from . import registry

        return getattr(registry, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
