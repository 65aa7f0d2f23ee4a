"""Start, find and stop the stack's background processes.

Each service runs detached in its own process group (session), with its pid in
``<run>/pids/<name>.pid`` and its output in ``<run>/logs/<name>.log``. Stopping
signals the whole group (so children such as tritonserver go too), waits, and
escalates to SIGKILL; nothing is left behind.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class RunPaths:
    root: Path

    @property
    def pids(self) -> Path:
        return self.root / "pids"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    def pidfile(self, name: str) -> Path:
        return self.pids / f"{name}.pid"

    def logfile(self, name: str) -> Path:
        return self.logs / f"{name}.log"

    def ensure(self) -> "RunPaths":
        self.pids.mkdir(parents=True, exist_ok=True)
        self.logs.mkdir(parents=True, exist_ok=True)
        return self


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie child of ours counts as dead
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def read_pid(paths: RunPaths, name: str) -> int | None:
    try:
        pid = int(paths.pidfile(name).read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if pid_alive(pid) else None


def spawn(
    paths: RunPaths,
    name: str,
    argv: list[str],
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> int:
    """Start ``argv`` detached, logging to the service's log file; return its pid."""
    paths.ensure()
    log = open(paths.logfile(name), "ab", buffering=0)
    log.write(f"\n--- {time.strftime('%Y-%m-%d %H:%M:%S')} starting: {' '.join(argv)}\n".encode())
    proc = subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, **(env or {})},
        cwd=str(cwd) if cwd else None,
        start_new_session=True,
        close_fds=True,
    )
    log.close()
    paths.pidfile(name).write_text(str(proc.pid))
    return proc.pid


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # the group may hold only zombies of ours; reap what we can
    for pid in _group_members(pgid):
        if pid_alive(pid):
            return True
    return False


def _group_members(pgid: int) -> list[int]:
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().split(")")[-1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:
            members.append(int(entry.name))
    return members


def stop(paths: RunPaths, name: str, first_signal: int = signal.SIGTERM, grace_s: float = 15.0) -> bool:
    """Stop the service's whole process group. Returns True if something was running."""
    try:
        pid = int(paths.pidfile(name).read_text().strip())
    except (OSError, ValueError):
        return False
    was_running = _group_alive(pid)
    if was_running:
        try:
            os.killpg(pid, first_signal)
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + grace_s
        while time.monotonic() < deadline and _group_alive(pid):
            _reap(pid)
            time.sleep(0.1)
        if _group_alive(pid):
            try:
                os.killpg(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline and _group_alive(pid):
                _reap(pid)
                time.sleep(0.05)
    _reap(pid)
    paths.pidfile(name).unlink(missing_ok=True)
    return was_running


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def port_open(host: str, port: int, timeout_s: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def port_listening(port: int) -> bool:
    """Is any socket on this machine listening on TCP ``port`` (any address)?"""
    target = f"{port:04X}"
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            cols = line.split()
            if cols[1].rsplit(":", 1)[1] == target and cols[3] == "0A":  # 0A = LISTEN
                return True
    return False


def wait_until(check, timeout_s: float, interval_s: float = 0.2, alive=None) -> bool:
    """Poll ``check()`` until true; stop early (False) if ``alive()`` turns false."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if check():
                return True
        except Exception:  # noqa: BLE001 - a failing probe means "not yet"
            pass
        if alive is not None and not alive():
            return False
        time.sleep(interval_s)
    return False


def rss_mb_of_group(pgid: int) -> float:
    """Resident memory of every process in the group, in MiB."""
    total_kb = 0
    for pid in _group_members(pgid):
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total_kb += int(line.split()[1])
        except OSError:
            continue
    return total_kb / 1024.0
