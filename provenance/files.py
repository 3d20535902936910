"""Bounded reads of files that come from outside: bundles, key files, policies.

Only regular files are read (a device such as /dev/zero never ends, and opening a FIFO
waits for a writer forever), and never more than the limit, whatever the file's size says.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from provenance.errors import UsageError


def read_regular(
    path: Path,
    limit: int,
    what: str,
    *,
    error: type[UsageError] = UsageError,
    missing_hint: str | None = None,
) -> bytes:
    """The bytes of regular file `path`, at most `limit` of them, or `error` saying why not.

    >>> read_regular(Path("provenance.pub"), 64 * 1024, "public key")  # doctest: +SKIP
    """
    try:
        # O_NONBLOCK: opening a FIFO must not wait for a writer; fstat then refuses it.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        msg = f"{what} {path} does not exist"
        raise error(msg, missing_hint) from None
    except OSError as e:
        msg = f"cannot read {what} {path}: {e.strerror}"
        raise error(msg) from None
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            msg = f"{what} {path} is a directory"
            raise error(msg, f"pass the {what} file itself")
        if not stat.S_ISREG(st.st_mode):
            msg = f"{what} {path} is not a regular file"
            raise error(msg, f"pass the {what} file itself, not a device, FIFO or socket")
        if st.st_size > limit:
            msg = f"{what} {path} is {st.st_size} bytes, over the {limit}-byte limit"
            raise error(msg)
        with os.fdopen(os.dup(fd), "rb") as f:
            data = f.read(limit + 1)  # a file growing under us stops here
    except OSError as e:
        msg = f"cannot read {what} {path}: {e.strerror}"
        raise error(msg) from None
    finally:
        os.close(fd)
    if len(data) > limit:
        msg = f"{what} {path} is over the {limit}-byte limit"
        raise error(msg)
    return data
