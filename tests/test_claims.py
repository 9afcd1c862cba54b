"""Per-cell claims (survey_lib.claims): a claim records its holder's host and PID, so a claim left
by a killed process on this host is taken over at once, a live holder's is respected, and another
host's claim is trusted until it is stale."""

import json
import os
import subprocess
import sys
import time

from survey_lib import claims


def _write(path, **holder):
    path.write_text(json.dumps(holder))


def _dead_pid() -> int:
    """The PID of a process that has exited (and been reaped)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_dead_holders_claim_is_taken_over_at_once(tmp_path):
    path = tmp_path / "cell.claim"
    _write(path, host=claims.HOST, pid=_dead_pid(), since=time.time())
    assert claims.try_claim(path)
    assert claims.holder(path)["pid"] == os.getpid()
    claims.release(path)
    assert not path.exists()


def test_a_live_holders_claim_is_respected(tmp_path):
    path = tmp_path / "cell.claim"
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        _write(path, host=claims.HOST, pid=live.pid, since=time.time() - 10 * claims.STALE_AFTER)
        assert not claims.try_claim(path)  # however old: the holder is alive
        claims.release(path)  # another holder's claim is left alone
        assert claims.holder(path)["pid"] == live.pid
    finally:
        live.kill()
        live.wait()
    assert claims.try_claim(path)  # killed: taken over at once


def test_another_hosts_claim_is_trusted_until_stale(tmp_path):
    path = tmp_path / "cell.claim"
    _write(path, host="another-node", pid=1, since=time.time() - 60)
    assert not claims.try_claim(path, stale_after=3600)
    _write(path, host="another-node", pid=1, since=time.time() - 7200)
    assert claims.try_claim(path, stale_after=3600)
