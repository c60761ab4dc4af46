"""Named points where the daemon can be made to die, for crash-consistency tests.

Some crash windows are a few milliseconds wide (between a build's steps, between a commit and
its answer): too narrow to hit by killing the daemon at random.  With ``KITPLAY_FAILPOINT=name``
in its environment, the daemon SIGKILLs itself the first time it reaches ``name``; the tests
then start it again and check what it recovers.  Without the variable (always, outside the
tests) ``hit`` is one comparison.  The variable is taken out of the environment, so no job
inherits it.

Points: ``step.ended`` (a step's exit status read, nothing recorded yet), ``step.spawn`` (the
next step recorded, its process not started), ``submit.committed`` (new jobs committed, not
answered).
"""

from __future__ import annotations

import os
import signal

__all__ = ["hit"]

_ARMED = os.environ.pop("KITPLAY_FAILPOINT", "")


def hit(name: str) -> None:
    if _ARMED and name == _ARMED:
        os.kill(os.getpid(), signal.SIGKILL)
