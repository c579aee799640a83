"""How every lnn_control process runs its nodes and stops them: our signal handlers, not rclpy's.

rclpy's default handlers shut the context down from inside the signal, so a node's clean-up then logs or takes
messages through a dead context (a SIGSEGV in ``rcutils_logger`` was seen) and messages DDS had delivered but no
callback had taken were lost. Here rclpy is initialised without signal handlers and the order is ours:

1. SIGINT, SIGTERM or SIGHUP asks the spin loop to stop (it checks between ``spin_once`` calls);
2. the executor ends; each node's ``close()`` runs with the context still valid (the recorder takes every message
   waiting in its readers, writes it and closes its bag; nodes log their summaries through rcl);
3. every ``destroy_node()``, then ``rclpy.shutdown()``: nothing logs through rcl after it; if these hang in DDS for
   more than :data:`TEARDOWN_TIMEOUT_S`, the process exits with status 1 and the tracebacks (:func:`teardown_deadline`);
4. a second signal during clean-up exits at once (status 130 for SIGINT, 128 + signal otherwise); the recorder's bag
   then reads up to its last flush, as after SIGKILL.

A stop by signal is a normal end: exit status 0.
"""

from __future__ import annotations

import contextlib
import faulthandler
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from types import FrameType
from typing import Any

#: The signals that stop a node process (SIGHUP: its terminal closed).
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
#: How long one ``spin_once`` may block, so a stop request is seen this fast (s).
POLL_S = 0.05
#: The most ``destroy_node()`` and ``rclpy.shutdown()`` may take after the nodes closed (s): :func:`teardown_deadline`.
TEARDOWN_TIMEOUT_S = 10.0


class StopRequest:
    """Our handlers for :data:`STOP_SIGNALS`: the first sets :attr:`event`, a second exits the process at once.

    Use as a context manager in the main thread; the previous handlers come back on exit.
    """

    def __init__(self, *, exit_now: Callable[[int], None] = os._exit) -> None:
        self.event = threading.Event()
        self.signum: int | None = None
        self._exit_now = exit_now
        self._previous: dict[int, Any] = {}

    @property
    def requested(self) -> bool:
        return self.event.is_set()

    def request(self) -> None:
        """Ask for a stop without a signal (a duration ran out, a node asked to end)."""
        self.event.set()

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        if self.event.is_set():
            print(f"[lnn_control] second {signal.Signals(signum).name} during clean-up: exiting now", file=sys.stderr,
                  flush=True)
            self._exit_now(130 if signum == signal.SIGINT else 128 + signum)
            return
        self.signum = signum
        self.event.set()

    def __enter__(self) -> StopRequest:
        for sig in STOP_SIGNALS:
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *_: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()


def spin_until_stopped(executor: Any, stop: StopRequest, deadline: float | None = None) -> None:
    """Spin ``executor`` until a stop is requested, the context ends, or ``time.monotonic()`` passes ``deadline``."""
    context = executor.context
    while not stop.requested and context.ok():
        if deadline is not None and time.monotonic() >= deadline:
            return
        executor.spin_once(timeout_sec=POLL_S)


def close_nodes(nodes: Sequence[Any], executor: Any | None) -> int:
    """The first half of the clean-up, context still valid: the executor, then every ``close()``. 1 if a
    ``close()`` failed (it is printed), else 0."""
    status = 0
    if executor is not None:
        for node in nodes:
            executor.remove_node(node)
        executor.shutdown(timeout_sec=5.0)
    for node in nodes:
        status = max(status, _close(node))
    return status


@contextlib.contextmanager
def teardown_deadline(seconds: float = TEARDOWN_TIMEOUT_S) -> Iterator[None]:
    """Exit the process (status 1, with every thread's traceback on stderr) if the body takes longer than
    ``seconds``. The DDS teardown can hang: Fast DDS 2.14 was seen busy-waiting in ``DomainParticipant::set_listener``
    inside ``rmw_destroy_node``, at 100% CPU and holding the GIL, after ``up --processes`` was killed and its nodes
    stopped together; no Python thread or signal handler can run then, so this uses faulthandler's watchdog, a C
    thread. What ``close()`` kept (a recorder's bag) is already closed when this runs."""
    faulthandler.dump_traceback_later(seconds, exit=True)
    try:
        yield
    finally:
        faulthandler.cancel_dump_traceback_later()


def destroy_nodes(nodes: Sequence[Any]) -> int:
    """The second half of the clean-up: every ``destroy_node()``. 1 if one failed (it is printed), else 0."""
    status = 0
    for node in nodes:
        try:
            node.destroy_node()
        except Exception as exc:  # noqa: BLE001 - report and still tear the others down
            print(f"[ERROR] {node.get_name()}: destroy_node failed: {exc}", file=sys.stderr, flush=True)
            status = 1
    return status


def _close(node: Any) -> int:
    """The node's ``close()``, if it has one: 1 if it failed (printed), else 0."""
    close = getattr(node, "close", None)
    if close is None:
        return 0
    try:
        close()
    except Exception as exc:  # noqa: BLE001 - report and still tear down
        print(f"[ERROR] {node.get_name()}: close failed: {exc}", file=sys.stderr, flush=True)
        return 1
    return 0


def make_executor(threads: int, context: Any = None) -> Any:
    """A SingleThreadedExecutor, or a MultiThreadedExecutor with ``threads`` threads."""
    from rclpy.executors import MultiThreadedExecutor, SingleThreadedExecutor

    if threads > 1:
        return MultiThreadedExecutor(num_threads=threads, context=context)
    return SingleThreadedExecutor(context=context)


def run_nodes(
    makers: Sequence[Callable[[], Any]],
    args: Sequence[str],
    *,
    threads: int = 1,
    duration: float | None = None,
    on_ready: Callable[[list[Any]], None] | None = None,
) -> int:
    """Init rclpy without its signal handlers, build the nodes, spin them on one executor until a stop signal (or
    ``duration`` seconds), clean up in our order, shut rclpy down; the exit status.

    A ``ValueError`` (or rclpy ``ParameterException``) while building a node is printed as one line: status 2.
    """
    import rclpy
    from rclpy.exceptions import ParameterException
    from rclpy.signals import SignalHandlerOptions

    with StopRequest() as stop:
        rclpy.init(args=list(args), signal_handler_options=SignalHandlerOptions.NO)
        nodes: list[Any] = []
        executor = None
        status = 0
        try:
            for make in makers:
                if stop.requested:
                    break
                try:
                    nodes.append(make())
                except (ValueError, ParameterException) as exc:
                    print(f"[ERROR] {exc}", file=sys.stderr, flush=True)
                    status = 2
                    break
            if status == 0 and not stop.requested:
                if on_ready is not None:
                    on_ready(nodes)
                executor = make_executor(threads)
                for node in nodes:
                    executor.add_node(node)
                deadline = None if duration is None else time.monotonic() + duration
                spin_until_stopped(executor, stop, deadline)
                if stop.signum is not None:
                    print(f"[lnn_control] {signal.Signals(stop.signum).name}: stopping (a second signal exits at once)",
                          file=sys.stderr, flush=True)
        finally:
            status = max(status, close_nodes(nodes, executor))
            with teardown_deadline():
                status = max(status, destroy_nodes(nodes))
                rclpy.try_shutdown()
    return status


def run_node(make_node: Callable[[], Any], args: Sequence[str] | None = None, *, threads: int = 1) -> int:
    """The body of every node's ``main``: :func:`run_nodes` with one node (see the module docstring)."""
    return run_nodes([make_node], list(sys.argv if args is None else args), threads=threads)
