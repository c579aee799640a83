"""Child processes that never outlive their parent, and a group of them started and stopped together.

No rclpy here: ``lnn-control up --processes`` uses it for its node processes, and anything else that starts node
processes (demos, benchmarks, tests) can too.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

#: prctl(2) option: the signal a child gets when the thread that started it ends.
PR_SET_PDEATHSIG = 1


def die_with_parent(sig: int = signal.SIGTERM) -> Callable[[], None]:
    """A ``preexec_fn`` that makes the child receive ``sig`` when this process dies, however it dies (SIGKILL
    included; Linux only, elsewhere nothing). Start children from the main thread: the kernel ties the signal to
    the thread that forked."""
    parent = os.getpid()

    def preexec() -> None:
        if not sys.platform.startswith("linux"):
            return
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(1)

    return preexec


def start(command: Sequence[str], **popen: Any) -> subprocess.Popen:
    """Start ``command`` in a session of its own (a terminal's Ctrl-C reaches only this process, which stops it in
    order), dying with this process; extra arguments go to ``subprocess.Popen``."""
    return subprocess.Popen(list(command), start_new_session=True, preexec_fn=die_with_parent(), **popen)


#: How :func:`stop` asks a process to end: each signal, then how long to wait for it.
STOP_STEPS = ((signal.SIGINT, 20.0), (signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0))


def stop(proc: subprocess.Popen, steps: Sequence[tuple[int, float]] = STOP_STEPS) -> int | None:
    """Send each signal of ``steps`` in turn until ``proc`` ends (waiting as long as each says); its exit status."""
    for sig, wait_s in steps:
        if proc.poll() is not None:
            break
        proc.send_signal(sig)
        try:
            proc.wait(timeout=wait_s)
        except subprocess.TimeoutExpired:
            continue
    return proc.poll()


class ProcessGroup:
    """Named child processes in sessions of their own (a terminal's Ctrl-C reaches only the parent, which stops
    them in order), each dying with the parent. Use as a context manager: leaving it stops them all."""

    def __init__(self, env: Mapping[str, str] | None = None, grace_s: float = 10.0) -> None:
        self.env = dict(os.environ if env is None else env)
        self.grace_s = grace_s
        self.procs: dict[str, subprocess.Popen] = {}

    def start(self, name: str, command: Sequence[str], **popen: Any) -> subprocess.Popen:
        """Start ``command`` as ``name``; extra arguments go to ``subprocess.Popen``."""
        proc = start(command, env=self.env, **popen)
        self.procs[name] = proc
        return proc

    def exited(self) -> dict[str, int]:
        """Name -> exit status of every child that has ended."""
        return {name: p.returncode for name, p in self.procs.items() if p.poll() is not None}

    def stop_all(self, sig: int = signal.SIGTERM) -> dict[str, int]:
        """Send ``sig`` to every running child, SIGKILL those still running after ``grace_s``; name -> status."""
        for p in self.procs.values():
            if p.poll() is None:
                p.send_signal(sig)
        deadline = time.monotonic() + self.grace_s
        for p in self.procs.values():
            try:
                p.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        return {name: p.returncode for name, p in self.procs.items()}

    def __enter__(self) -> ProcessGroup:
        return self

    def __exit__(self, *_: object) -> None:
        self.stop_all()
