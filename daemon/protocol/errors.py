"""Every error kitplay reports, with its JSON-RPC code, HTTP status and CLI exit code.

The tree, drawn once::

    KitplayError                      -32603  500  exit 70  (internal error)
    ├── ParseError                    -32700  400  exit 2
    ├── InvalidRequest                -32600  400  exit 2
    ├── MethodNotFound                -32601  404  exit 2
    ├── InvalidParams                 -32602  400  exit 2
    ├── NotFound                      -32001  404  exit 4   (unknown job, template, app)
    ├── InvalidState                  -32002  409  exit 5   (job ended, app exists)
    ├── LicenseNotAccepted            -32003  403  exit 6   (EULA not accepted)
    ├── ToolchainError                -32004  422  exit 7   (a tool or workspace problem)
    ├── Unsupported                   -32005  501  exit 8   (not available here)
    ├── MessageTooLarge               -32006  413  exit 2   (a frame over the size limit)
    ├── FileTooLarge                  -32010  413  exit 10  (a file over the files API's cap)
    ├── NotText                       -32011  422  exit 11  (a file read as text is not UTF-8)
    ├── RequestCancelled              -32800  409  exit 1   (as in LSP)
    └── DaemonUnreachable             -32099  503  exit 3   (client side: no daemon on the socket)

The bridge and the CLI read ``http_status`` and ``exit_code`` off these classes;
they keep no mapping tables of their own.  ``docs/api.md`` renders this table.
"""

from __future__ import annotations

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing slows `kitplay` down
if TYPE_CHECKING:
    from typing import Any


__all__ = [
    "ERRORS",
    "DaemonUnreachable",
    "FileTooLarge",
    "InvalidParams",
    "InvalidRequest",
    "InvalidState",
    "KitplayError",
    "LicenseNotAccepted",
    "MessageTooLarge",
    "MethodNotFound",
    "NotFound",
    "NotText",
    "ParseError",
    "RequestCancelled",
    "ToolchainError",
    "Unsupported",
    "describe_bug",
    "error_for_code",
]


class KitplayError(Exception):
    """Base of all kitplay errors; also the JSON-RPC internal error."""

    code = -32603
    http_status = 500
    exit_code = 70
    title = "internal error"

    def __init__(self, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.data = data

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.data is not None:
            out["data"] = self.data
        return out


class ParseError(KitplayError):
    code, http_status, exit_code, title = -32700, 400, 2, "parse error"


class InvalidRequest(KitplayError):
    code, http_status, exit_code, title = -32600, 400, 2, "invalid request"


class MethodNotFound(KitplayError):
    code, http_status, exit_code, title = -32601, 404, 2, "method not found"


class InvalidParams(KitplayError):
    code, http_status, exit_code, title = -32602, 400, 2, "invalid params"


class NotFound(KitplayError):
    code, http_status, exit_code, title = -32001, 404, 4, "not found"


class InvalidState(KitplayError):
    code, http_status, exit_code, title = -32002, 409, 5, "invalid state"


class LicenseNotAccepted(KitplayError):
    code, http_status, exit_code, title = -32003, 403, 6, "licence not accepted"


class ToolchainError(KitplayError):
    code, http_status, exit_code, title = -32004, 422, 7, "toolchain failure"


class Unsupported(KitplayError):
    code, http_status, exit_code, title = -32005, 501, 8, "not supported"


class MessageTooLarge(KitplayError):
    code, http_status, exit_code, title = -32006, 413, 2, "message too large"


class FileTooLarge(KitplayError):
    code, http_status, exit_code, title = -32010, 413, 10, "file too large"


class NotText(KitplayError):
    code, http_status, exit_code, title = -32011, 422, 11, "not text"


class RequestCancelled(KitplayError):
    code, http_status, exit_code, title = -32800, 409, 1, "request cancelled"


class DaemonUnreachable(KitplayError):
    code, http_status, exit_code, title = -32099, 503, 3, "daemon unreachable"


ERRORS: tuple[type[KitplayError], ...] = (
    ParseError,
    InvalidRequest,
    MethodNotFound,
    InvalidParams,
    KitplayError,
    NotFound,
    InvalidState,
    LicenseNotAccepted,
    ToolchainError,
    Unsupported,
    MessageTooLarge,
    FileTooLarge,
    NotText,
    RequestCancelled,
    DaemonUnreachable,
)

_BY_CODE = {cls.code: cls for cls in ERRORS}


def error_for_code(code: int, message: str, data: Any = None) -> KitplayError:
    """Rebuild the error class a client received (unknown codes become KitplayError)."""
    cls = _BY_CODE.get(code, KitplayError)
    err = cls(message, data)
    if cls is KitplayError and code != KitplayError.code:
        err.code = code
    return err


def describe_bug(e: BaseException, limit: int = 200) -> str:
    """An unexpected exception in a few words for an error message: its type and the start
    of its text, never its raw arguments (a UnicodeDecodeError's repr carries every byte it
    was decoding)."""
    text = " ".join(str(e).split())
    if len(text) > limit:
        text = text[:limit] + "..."
    return f"{type(e).__name__}: {text}" if text else type(e).__name__
