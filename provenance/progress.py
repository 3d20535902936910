"""Progress for long work, injected into the API; the default says nothing.

The CLI passes a reporter that writes to stderr; tests and library users get silence
unless they ask. Keeping it an object (not print calls) keeps stdout clean for JSON.
"""

from __future__ import annotations


class Reporter:
    def info(self, message: str) -> None:
        """A step or a result a human wants to see."""

    def warn(self, message: str) -> None:
        """Something the user should know but that does not stop the work."""

    def log_line(self, check: str, line: str) -> None:
        """One line of a build's output."""
