"""Claims: one process at a time works on a model or a result cell, across processes and hosts.

A claim is a small file created atomically (``O_EXCL``) next to what it protects, recording the
holder's host and PID. A process that finds a claim checks its holder: on the same host a dead PID
(a killed run) is taken over at once; on another host (a cluster node) the claim is trusted until
it is older than ``stale_after`` seconds, since no PID can be checked there.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from pathlib import Path

HOST = socket.gethostname()
STALE_AFTER = 12 * 3600.0  # seconds before another host's claim is considered abandoned


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def holder(path: Path) -> dict | None:
    """The claim's holder ``{"host", "pid", "since"}``; None if there is no claim."""
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        return None
    except ValueError:  # being written this instant, or cut: judged by its age
        return {"host": None, "pid": None, "since": Path(path).stat().st_mtime}


def is_live(claim: dict, stale_after: float = STALE_AFTER) -> bool:
    """Whether a claim's holder may still be working."""
    if claim.get("host") == HOST and claim.get("pid"):
        return claim["pid"] == os.getpid() or _alive(int(claim["pid"]))
    return time.time() - float(claim.get("since") or 0) < (stale_after if claim.get("host") else 60)


def try_claim(path: Path, stale_after: float = STALE_AFTER) -> bool:
    """Claim ``path`` for this process; False if a live holder has it. A dead holder's claim is
    removed and taken over."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    for _ in range(3):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            claim = holder(path)
            if claim is None:
                continue  # released meanwhile
            if claim.get("host") == HOST and claim.get("pid") == os.getpid():
                return True
            if is_live(claim, stale_after):
                return False
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
            continue
        with os.fdopen(fd, "w") as fh:
            json.dump({"host": HOST, "pid": os.getpid(), "since": time.time()}, fh)
        return True
    return False


def release(path: Path) -> None:
    """Remove this process's claim (another holder's claim is left alone)."""
    claim = holder(path)
    if claim and claim.get("host") == HOST and claim.get("pid") == os.getpid():
        with contextlib.suppress(FileNotFoundError):
            Path(path).unlink()


@contextlib.contextmanager
def claimed(path: Path, poll: float = 2.0, stale_after: float = STALE_AFTER):
    """Hold the claim on ``path`` for the block, waiting while a live holder has it."""
    while not try_claim(path, stale_after):
        time.sleep(poll)
    try:
        yield
    finally:
        release(path)
