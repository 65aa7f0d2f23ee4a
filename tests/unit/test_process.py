from __future__ import annotations

import signal
import socket
import sys
import time

from usr.stack import process
from usr.stack.process import RunPaths


def test_spawn_and_stop_kills_the_whole_group(tmp_path) -> None:
    paths = RunPaths(tmp_path).ensure()
    # a parent that ignores SIGTERM and has a child: stop must escalate and take both
    code = ("import signal,subprocess,sys,time; signal.signal(signal.SIGTERM, signal.SIG_IGN);"
            "subprocess.Popen([sys.executable,'-c','import time; time.sleep(60)']); print('up', flush=True); time.sleep(60)")
    pid = process.spawn(paths, "svc", [sys.executable, "-c", code])
    assert process.wait_until(lambda: "up" in paths.logfile("svc").read_text(), 10)
    assert process.wait_until(lambda: len(process._group_members(pid)) == 2, 10)
    members = process._group_members(pid)
    assert process.read_pid(paths, "svc") == pid
    t0 = time.monotonic()
    assert process.stop(paths, "svc", first_signal=signal.SIGTERM, grace_s=1.0)
    assert time.monotonic() - t0 < 8
    assert not any(process.pid_alive(m) for m in members)
    assert process.read_pid(paths, "svc") is None
    assert not process.stop(paths, "svc")  # nothing left to stop


def test_port_listening_sees_a_listener() -> None:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    assert not process.port_listening(port)
    s.listen()
    try:
        assert process.port_listening(port) and process.port_open("127.0.0.1", port)
    finally:
        s.close()
    assert not process.port_listening(port)
