"""Named points on the crisis path where the fault-matrix tests kill the process.

With `SAFEWELL_FAILPOINTS=<file>` set, a process that reaches the point named in that file
empties the file and SIGKILLs itself, so a test can prove that a crash at each stage delays a
crisis but never loses or doubles it. The test arms the next point by writing its name into
the file again, so one restarted process serves the next stage. Unset (always, in production)
a point costs one environment lookup.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

# In the order a crisis message passes them.
POINTS = ("received", "stored", "triaged", "case_stored", "replied", "card_posted")


def reached(name: str) -> None:
    """Die here, at once and without cleanup, if the armed point is this one."""
    path = os.environ.get("SAFEWELL_FAILPOINTS")
    if not path:
        return
    armed = Path(path)
    try:
        if armed.read_text().strip() != name:
            return
    except OSError:
        return
    armed.write_text("")  # disarmed: the restarted process goes on
    os.kill(os.getpid(), signal.SIGKILL)
