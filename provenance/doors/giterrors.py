"""What git's failures say, as one line: apart from git.py (which runs git) as nixerrors.py
is from nix.py, so that the runner stays about which command to run.
"""

from __future__ import annotations


def git_message(stderr: str) -> str:
    """Git's error as one line: its `fatal:`/`error:` lines joined, not just the last one.

    Git often ends with advice ("Please make sure you have the correct access rights /
    and the repository exists."), and the last line alone reads "...and the repository
    exists.", which says nothing. Control characters are escaped: the text may quote a
    hostile remote.
    """
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    picked = [
        ln.split(":", 1)[1].strip()
        for ln in lines
        if ln.startswith(("fatal:", "error:")) and ln.split(":", 1)[1].strip()
    ]
    text = "; ".join(picked[:3]) if picked else (lines[0] if lines else "no message")
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
