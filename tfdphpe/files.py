"""Writing files so that a crash never leaves one that looks complete when it is not."""

from __future__ import annotations

import os


def atomic_write(path: str, text: str, mode: int | None = None) -> str:
    """Writes ``text`` to ``path`` through a temporary file that is fsynced and renamed over it.

    A reader sees the old file or the whole new one, never a torn write, also after a power loss
    (the data reach the disk before the rename does). ``mode`` (e.g. 0o600) is set on the
    temporary file before the text is written, so a secret is never readable by others.
    """
    tmp = f"{path}.tmp-{os.getpid()}"
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
    fd = os.open(tmp, flags, 0o666 if mode is None else mode)
    try:
        if mode is not None:
            os.fchmod(fd, mode)
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    return path
