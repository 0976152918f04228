"""Whether the process that holds the sync lock still runs, when that can be told from here.

A CLI holder records `host:pid` and its process's start (boot id and start tick, from /proc):
a pid alone can belong to another process by now, e.g. after a container restart.
"""

from __future__ import annotations

import os
import socket
from enum import Enum
from pathlib import Path


class ProcessState(str, Enum):
    ALIVE = "alive"
    GONE = "gone"  # no such pid on this host
    REUSED = "reused"  # the pid now runs another process (it started after the holder did)
    ELSEWHERE = "elsewhere"  # another host, or no single process (an Airflow run): cannot tell

    @property
    def dead(self) -> bool:
        return self in (ProcessState.GONE, ProcessState.REUSED)


def this_process() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def split(process: str) -> tuple[str, int | None]:
    host, _, pid = process.rpartition(":")
    return host, int(pid) if pid.isdigit() and int(pid) > 0 else None


def on_this_host(process: str) -> bool:
    host, pid = split(process)
    return pid is not None and host == socket.gethostname()


def process_start(process: str) -> str:
    """The start marker of `process` if it runs on this host now; '' when it cannot be read."""
    if not on_this_host(process):
        return ""
    _, pid = split(process)
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""
    # Field 22 (starttime) counts from after the command name, which may hold spaces and parentheses.
    return f"{boot}:{stat.rpartition(')')[2].split()[19]}"


def process_state(process: str, recorded_start: str | None) -> ProcessState:
    if not on_this_host(process):
        return ProcessState.ELSEWHERE
    _, pid = split(process)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return ProcessState.GONE
    except PermissionError:
        pass  # it exists, run by another user
    if recorded_start and process_start(process) not in ("", recorded_start):
        return ProcessState.REUSED
    return ProcessState.ALIVE
