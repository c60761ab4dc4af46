"""Every exit code of ``kitplay`` is told alike in the README, ``kitplay --help`` and
docs/api.md, and they are the codes the command has: its own outcomes (0, 1, 2, 9, 130) and the
exit codes of the error classes in the registry (``daemon/protocol/errors.py``)."""

from __future__ import annotations

import os
import re
import subprocess
import sys

from kitplay.cli_client.main import LOCAL_EXITS, exit_codes
from kitplay.daemon.protocol.errors import ERRORS

from tests.helpers import ROOT


def _table_codes(text: str) -> set[int]:
    """The codes of the first `| exit code | meaning |` table in ``text``."""
    start = text.index("| exit code | meaning |")
    rows = []
    for line in text[start:].splitlines()[2:]:
        if not line.startswith("|"):
            break
        rows.append(int(line.split("|")[1].strip()))
    assert len(rows) == len(set(rows)), rows
    return set(rows)


def test_readme_help_and_api_doc_list_the_same_exit_codes() -> None:
    expected = {cls.exit_code for cls in ERRORS} | set(LOCAL_EXITS)
    assert {code for code, _ in exit_codes()} == expected
    readme = _table_codes((ROOT / "README.md").read_text())
    api = _table_codes((ROOT / "docs" / "api.md").read_text().split("## The `kitplay` command")[1])
    help_text = subprocess.run(
        [sys.executable, "-m", "kitplay.cli_client", "--help"], capture_output=True, text=True,
        check=True, env={**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "300"}).stdout
    epilog = " ".join(help_text.split("Exit codes:", 1)[1].split())
    in_help = {int(n) for n in re.findall(r"(?:^|, )(\d+) ", epilog.split(".", 1)[0] + ".")}
    assert readme == api == in_help == expected, (readme, api, in_help, expected)


def test_the_api_docs_error_table_has_each_classes_exit_code() -> None:
    text = (ROOT / "docs" / "api.md").read_text()
    for cls in ERRORS:
        row = f"| `{cls.__name__}` | {cls.code} | {cls.http_status} | {cls.exit_code} |"
        assert row in text, row
