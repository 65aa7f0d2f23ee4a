"""Bring the local stack up, report on it, and take it down with nothing left behind."""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass

from usr.config import Config
from usr.stack import process
from usr.stack.process import RunPaths
from usr.stack.services import Service, services


@dataclass
class ServiceStatus:
    name: str
    mode: str
    managed: bool
    pid: int | None
    ports: list[int]
    healthy: bool
    detail: str
    rss_mb: float | None
    seconds_to_healthy: float | None = None

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def run_paths(config: Config) -> RunPaths:
    return RunPaths(config.run.dir).ensure()


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _status_of(svc: Service, paths: RunPaths, seconds: float | None = None) -> ServiceStatus:
    pid = process.read_pid(paths, svc.name) if svc.managed else None
    if svc.managed and svc.start is not None and pid is None:
        health_ok, detail = False, "not running"
    else:
        h = svc.check()
        health_ok, detail = h.ok, h.detail
    return ServiceStatus(svc.name, svc.mode, svc.managed, pid, svc.ports, health_ok, detail,
                         round(process.rss_mb_of_group(pid), 1) if pid else None, seconds)


def _tail(paths: RunPaths, name: str, lines: int = 25) -> str:
    try:
        return "\n".join(paths.logfile(name).read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def up(config: Config, only: set[str] | None = None) -> list[ServiceStatus]:
    """Start every managed service that is not running (``only``: just these) and wait
    until each is healthy."""
    paths = run_paths(config)
    statuses: list[ServiceStatus] = []
    t_all = time.monotonic()
    for svc in services(config):
        if only is not None and svc.name not in only:
            continue
        for note in svc.notes:
            _log(f"[{svc.name}] {note}")
        t0 = time.monotonic()
        pid = process.read_pid(paths, svc.name) if svc.managed else None
        if svc.start is not None and pid is None:
            busy = [p for p in svc.ports if process.port_listening(p)]
            if busy:
                down(config)
                raise RuntimeError(f"[{svc.name}] port(s) {busy} already in use by another program; "
                                   f"change them in the configuration")
            _log(f"[{svc.name}] starting ({svc.mode})")
            pid = svc.start(paths)
        alive = (lambda p=pid: process.pid_alive(p)) if pid else None
        if svc.prepare is not None:
            svc.prepare()
        ok = process.wait_until(lambda s=svc: s.check().ok, config.run.startup_timeout_s, 0.25, alive)
        st = _status_of(svc, paths, round(time.monotonic() - t0, 2))
        statuses.append(st)
        if not ok:
            _log(f"[{svc.name}] did not become healthy: {st.detail}\n--- last log lines ---\n{_tail(paths, svc.name)}")
            down(config)
            raise RuntimeError(f"[{svc.name}] failed to start; see {paths.logfile(svc.name)}")
        if svc.on_healthy is not None and (message := svc.on_healthy()):
            _log(f"[{svc.name}] {message}")
        _log(f"[{svc.name}] healthy in {st.seconds_to_healthy:.1f}s: {st.detail}")
    _log(f"stack healthy in {time.monotonic() - t_all:.1f}s")
    return statuses


def status(config: Config) -> list[ServiceStatus]:
    paths = run_paths(config)
    return [_status_of(svc, paths) for svc in services(config)]


def down(config: Config) -> list[str]:
    """Stop every managed service (reverse start order); return the ones that were running."""
    paths = run_paths(config)
    stopped = []
    for svc in reversed(services(config)):
        if svc.start is None:
            continue
        if process.stop(paths, svc.name, first_signal=svc.stop_signal):
            stopped.append(svc.name)
            _log(f"[{svc.name}] stopped")
    still = {svc.name: [p for p in svc.ports if process.port_listening(p)]
             for svc in services(config) if svc.start is not None}
    busy = {k: v for k, v in still.items() if v}
    if busy:
        _log(f"warning: ports still listening after down: {busy}")
    return stopped
