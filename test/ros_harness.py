"""Integration-test helpers: real node processes and an in-test rclpy participant, all on a private DDS domain.

Every process (the nodes under test and this test process) runs with :func:`lnn_control.ros.env.local_env`: the
loopback-only Fast DDS profile, localhost discovery and a ``ROS_DOMAIN_ID`` chosen by :func:`free_domain_id`, so
concurrent test runs on one machine do not see each other and nothing goes to the network.

Typical module::

    DOMAIN = free_domain_id()

    @pytest.fixture(scope="module")
    def ros():
        with RosSession(DOMAIN) as session:
            yield session

    @pytest.fixture(scope="module")
    def mux(tmp_path_factory):
        with NodeProcess("lnn_control.nodes.mux", domain_id=DOMAIN, log_dir=tmp_path_factory.mktemp("mux"),
                         params={"rate": 20.0}) as proc:
            yield proc

    def test_x(ros, mux):
        pub = ros.publisher("lnn/cmd_vel", Twist)
        out = ros.collect("cmd_vel", Twist)
        ros.wait_for_subscribers(pub)
        ...

Nothing here is imported by the package; only tests use it.
"""

from __future__ import annotations

import contextlib
import os
import random
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from lnn_control.ros import env as ros_env

#: Fast DDS port of participant 0's metatraffic unicast locator in a domain (RTPS: 7400 + 250 * domain + 10).
_PB, _DG, _D1 = 7400, 250, 10
_DOMAINS = range(120, 231)  # local_env() picks 1..100 by default; tests keep clear of those


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_domain_id(rng: random.Random | None = None) -> int:
    """A ROS_DOMAIN_ID in 120..230 whose first participant ports are free on this machine right now.

    Two test runs picking the same domain at the same moment is unlikely (random choice) and is checked against
    the UDP port the first participant of a busy domain would hold.
    """
    rng = rng or random.Random()
    candidates = list(_DOMAINS)
    rng.shuffle(candidates)
    for domain in candidates:
        base = _PB + _DG * domain + _D1
        if all(_port_free(base + offset) for offset in (0, 1, 2, 3)):
            return domain
    raise RuntimeError("no free ROS_DOMAIN_ID in 120..230 (are many DDS processes running?)")


def node_env(domain_id: int, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of a node process under test: local DDS, unbuffered output, no colours, and Python's fault
    handler (a crash in native code prints the Python stacks into the output the test shows)."""
    env = ros_env.local_env(domain_id)
    env.update(
        {
            "PYTHONUNBUFFERED": "1",
            "PYTHONFAULTHANDLER": "1",
            "RCUTILS_COLORIZED_OUTPUT": "0",
            "RCUTILS_LOGGING_BUFFERED_STREAM": "0",
            "RCUTILS_CONSOLE_OUTPUT_FORMAT": "[{severity}] [{name}]: {message}",
        }
    )
    env.update(extra or {})
    return env


def write_params(path: Path, params: Mapping[str, Any], node: str = "/**") -> Path:
    """A ROS parameter file ``{node: {ros__parameters: params}}`` (default: every node)."""
    path.write_text(yaml.safe_dump({node: {"ros__parameters": dict(params)}}, sort_keys=False))
    return path


class NodeProcess:
    """One node module run as ``python -m <module> --ros-args ...`` in a process of its own.

    ``params`` go through a parameter file, ``remaps`` are ``{from: to}``, ``name`` renames the node, ``cwd`` is the
    working directory (default: this process's). Output
    (stdout and stderr) goes to ``<log_dir>/<name>.log``; :meth:`wait_for_output` polls it. Use as a context
    manager: leaving it stops the process (SIGINT, then SIGKILL after ``stop_timeout``).
    """

    def __init__(
        self,
        module: str,
        *,
        domain_id: int,
        log_dir: Path,
        name: str | None = None,
        params: Mapping[str, Any] | None = None,
        remaps: Mapping[str, str] | None = None,
        args: Iterable[str] = (),
        env: Mapping[str, str] | None = None,
        stdin: Any = subprocess.DEVNULL,
        preexec_fn: Callable[[], None] | None = None,
        stop_timeout: float = 15.0,
        cwd: Path | None = None,
    ) -> None:
        self.module = module
        self.domain_id = domain_id
        self.log_dir = Path(log_dir)
        self.name = name or module.rsplit(".", 1)[-1]
        self.params = dict(params or {})
        self.remaps = dict(remaps or {})
        self.args = list(args)
        self.extra_env = dict(env or {})
        self.stdin = stdin
        self.preexec_fn = preexec_fn
        self.stop_timeout = stop_timeout
        self.cwd = cwd
        self.log_path = self.log_dir / f"{self.name}.log"
        self.proc: subprocess.Popen | None = None
        self._log_file = None

    def command(self) -> list[str]:
        """The command line the process runs."""
        ros_args: list[str] = []
        if self.params:
            ros_args += ["--params-file", str(write_params(self.log_dir / f"{self.name}.params.yaml", self.params))]
        if self.name != self.module.rsplit(".", 1)[-1]:
            ros_args += ["-r", f"__node:={self.name}"]
        for src, dst in self.remaps.items():
            ros_args += ["-r", f"{src}:={dst}"]
        tail = ["--ros-args", *ros_args] if ros_args else []
        return [sys.executable, "-m", self.module, *self.args, *tail]

    def start(self) -> NodeProcess:
        """Start the process (returns at once; wait for its output or for DDS matching)."""
        from lnn_control.processes import die_with_parent

        self._die_with_parent = die_with_parent()
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self._log_file = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            self.command(),
            stdin=self.stdin,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            env=node_env(self.domain_id, self.extra_env),
            preexec_fn=self._preexec,  # noqa: PLW1509 - tests only
            cwd=self.cwd,
        )
        return self

    def _preexec(self) -> None:
        """In the child: die with the test process (a killed pytest leaves no node running), then the caller's."""
        self._die_with_parent()
        if self.preexec_fn is not None:
            self.preexec_fn()

    @property
    def pid(self) -> int:
        assert self.proc is not None, "not started"
        return self.proc.pid

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def returncode(self) -> int | None:
        return None if self.proc is None else self.proc.poll()

    def output(self) -> str:
        """Everything the process printed so far."""
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def tail(self, lines: int = 40) -> str:
        """The last lines of the output, for assertion messages."""
        return "\n".join(self.output().splitlines()[-lines:])

    def wait_for_output(self, pattern: str, timeout: float = 20.0, *, start: int = 0) -> re.Match:
        """Wait until the output (from character ``start``) matches the regex ``pattern``; AssertionError on timeout
        or if the process exits first (with the output's tail)."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            match = regex.search(self.output(), start)
            if match:
                return match
            if not self.alive:
                raise AssertionError(
                    f"{self.name} exited ({self.returncode}) before printing /{pattern}/:\n{self.tail()}"
                )
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.name} did not print /{pattern}/ within {timeout} s:\n{self.tail()}")
            time.sleep(0.02)

    def wait_until(self, predicate: Callable[[], bool], timeout: float = 20.0, what: str = "condition") -> None:
        """Poll ``predicate`` every 20 ms while the process runs; AssertionError (with the output's tail) naming
        ``what`` if the process exits first or on timeout."""
        deadline = time.monotonic() + timeout
        while not predicate():
            if not self.alive:
                raise AssertionError(f"{self.name} exited ({self.returncode}) before {what}:\n{self.tail()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"{what} not reached within {timeout} s:\n{self.tail()}")
            time.sleep(0.02)

    def wait(self, timeout: float) -> int:
        """Wait for the process to exit by itself; its exit code (AssertionError on timeout)."""
        assert self.proc is not None
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"{self.name} still running after {timeout} s:\n{self.tail()}") from None

    def send_signal(self, sig: int) -> None:
        """Send ``sig`` to the process."""
        if self.alive:
            os.kill(self.pid, sig)

    def stop(self, sig: int = signal.SIGINT, timeout: float | None = None) -> int | None:
        """Send ``sig``, wait up to ``timeout`` (default ``stop_timeout``), SIGKILL if needed; the exit code."""
        if self.proc is None:
            return None
        if self.alive:
            self.send_signal(sig)
            try:
                self.proc.wait(self.stop_timeout if timeout is None else timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
        return self.proc.returncode

    def kill(self) -> int | None:
        """SIGKILL, no grace."""
        return self.stop(signal.SIGKILL, timeout=10)

    def __enter__(self) -> NodeProcess:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()


class Collector:
    """Messages received on one topic, with their arrival time (``time.monotonic()``) and, where the middleware gives
    it, their publication sequence number; thread-safe."""

    def __init__(self, topic: str, health: Callable[[], str] = lambda: "") -> None:
        self.topic = topic
        self.health = health  # what the session says is wrong with its spinning (for timeout messages)
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self.items: list[tuple[float, Any]] = []
        self.sequences: list[int | None] = []  # publication sequence number of each item, None if not given

    def _add(self, msg: Any, info: Mapping[str, Any] | None = None) -> None:
        with self._cond:
            self.items.append((time.monotonic(), msg))
            self.sequences.append(None if info is None else info.get("publication_sequence_number"))
            self._cond.notify_all()

    def _add_with_info(self, msg: Any, info: Mapping[str, Any]) -> None:
        """The subscription callback (two parameters: rclpy then passes the message info)."""
        self._add(msg, info)

    def with_sequences(self) -> list[tuple[int | None, Any]]:
        """(publication sequence number, message) of everything received, in order of arrival."""
        with self._lock:
            return [(seq, msg) for seq, (_, msg) in zip(self.sequences, self.items)]

    def missed(self) -> int:
        """For a topic with one publisher: how many of its messages between the first and the last received here
        never arrived (the gaps in their sequence numbers). 0 where the middleware gives no sequence numbers."""
        with self._lock:
            numbers = [seq for seq in self.sequences if seq is not None]
        return sum(max(0, b - a - 1) for a, b in zip(numbers, numbers[1:]))

    @property
    def messages(self) -> list[Any]:
        with self._lock:
            return [m for _, m in self.items]

    def __len__(self) -> int:
        with self._lock:
            return len(self.items)

    def last(self) -> Any:
        """The latest message, or None."""
        with self._lock:
            return self.items[-1][1] if self.items else None

    def since(self, t: float) -> list[Any]:
        """Messages that arrived at or after monotonic time ``t``."""
        with self._lock:
            return [m for ts, m in self.items if ts >= t]

    def clear(self) -> None:
        with self._lock:
            self.items.clear()
            self.sequences.clear()

    def wait_for_count(self, count: int, timeout: float = 10.0) -> list[Any]:
        """Wait until at least ``count`` messages arrived; all messages (AssertionError on timeout)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self.items) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        f"{self.topic}: {len(self.items)} of {count} messages within {timeout} s{self.health()}"
                    )
                self._cond.wait(left)
            return [m for _, m in self.items]

    def find(self, predicate: Callable[[Any], bool], start: int = 0) -> Any:
        """The first message from index ``start`` on for which ``predicate`` is true, or None; does not wait."""
        with self._lock:
            return next((msg for _, msg in self.items[start:] if predicate(msg)), None)

    def index(self, predicate: Callable[[Any], bool], start: int = 0) -> int | None:
        """The index of the first message from ``start`` on for which ``predicate`` is true, or None."""
        with self._lock:
            return next((i for i, (_, msg) in enumerate(self.items) if i >= start and predicate(msg)), None)

    def wait_for(
        self,
        predicate: Callable[[Any], bool],
        timeout: float = 10.0,
        *,
        after: float | None = None,
        start: int = 0,
    ) -> Any:
        """The first message (arriving at or after monotonic ``after``, if given; from index ``start`` on) for which
        ``predicate`` is true."""
        deadline = time.monotonic() + timeout
        seen = start
        with self._cond:
            while True:
                for ts, msg in self.items[seen:]:
                    if (after is None or ts >= after) and predicate(msg):
                        return msg
                seen = max(seen, len(self.items))
                left = deadline - time.monotonic()
                if left <= 0:
                    last = self.items[-1][1] if self.items else None
                    raise AssertionError(
                        f"{self.topic}: no matching message within {timeout} s (last: {last!r}){self.health()}"
                    )
                self._cond.wait(left)


def publish_until(
    publisher: Any,
    make: Callable[[], Any],
    collector: Collector,
    predicate: Callable[[Any], bool],
    timeout: float = 15.0,
    period: float = 0.1,
) -> Any:
    """Publish ``make()`` every ``period`` seconds until ``collector`` received a message, from the first publication
    on, for which ``predicate`` is true; that message (AssertionError on timeout).

    Publishing once and hoping races with matching and with the node's own timers; publishing until the expected
    answer is there does not.
    """
    start = len(collector)
    deadline = time.monotonic() + timeout
    while True:
        publisher.publish(make())
        left = deadline - time.monotonic()
        try:
            return collector.wait_for(predicate, timeout=max(0.0, min(period, left)), start=start)
        except AssertionError:
            if time.monotonic() >= deadline:
                last = collector.last()
                raise AssertionError(
                    f"{collector.topic}: no matching message within {timeout} s of publishing on "
                    f"{publisher.topic} (last: {last!r})"
                ) from None


class Repeater:
    """Publishes ``make()`` on ``publisher`` at ``rate_hz`` from a thread until :meth:`stop`."""

    def __init__(self, publisher: Any, make: Callable[[], Any], rate_hz: float) -> None:
        self.publisher = publisher
        self.make = make
        self.period = 1.0 / rate_hz
        self.count = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        next_t = time.monotonic()
        while not self._stop.is_set():
            with contextlib.suppress(Exception):  # the context may shut down under us at the end of a test
                self.publisher.publish(self.make())
                self.count += 1
            next_t += self.period
            self._stop.wait(max(0.0, next_t - time.monotonic()))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)


def deep_qos() -> Any:
    """Reliable, keep last 1000: the default of the test process's own publishers and collectors."""
    from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy

    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1000, reliability=ReliabilityPolicy.RELIABLE)


class RosSession:
    """An rclpy context, node and executor thread inside the test process, on ``domain_id``.

    Creating it puts the local DDS variables into this process's environment (they must be set before the first
    participant of the process is created). Use as a context manager.
    """

    def __init__(self, domain_id: int, name: str = "test_harness") -> None:
        self.domain_id = domain_id
        self.name = name
        self.context = None
        self.node = None
        self.executor = None
        self._thread: threading.Thread | None = None
        self._repeaters: list[Repeater] = []
        self._clients: list[Any] = []
        self.errors: list[str] = []

    def start(self) -> RosSession:
        ros_env.apply(ros_env.local_env(self.domain_id))
        import rclpy
        from rclpy.context import Context
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.signals import SignalHandlerOptions

        self.context = Context()
        rclpy.init(context=self.context, domain_id=self.domain_id, signal_handler_options=SignalHandlerOptions.NO)
        self.node = rclpy.create_node(self.name, context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._thread.start()
        return self

    def _spin(self) -> None:
        """Spin until the session closes. An exception in a callback is kept (``errors``) and printed, and the
        spinning goes on: one bad callback must not silence every collector of the module."""
        import traceback

        from rclpy.executors import ExternalShutdownException

        while self.context.ok():
            try:
                self.executor.spin_once(timeout_sec=0.05)
            except ExternalShutdownException:
                return
            except Exception as exc:  # noqa: BLE001 - reported in every collector's timeout message
                if not self.context.ok():
                    return
                self.errors.append(f"{type(exc).__name__}: {exc}")
                traceback.print_exc()

    def health(self) -> str:
        """What went wrong with the spinning so far, for assertion messages ("" when nothing did)."""
        problems = []
        if self._thread is not None and not self._thread.is_alive():
            problems.append("the session's spin thread has ended")
        if self.errors:
            problems.append(f"{len(self.errors)} callback error(s), the last: {self.errors[-1]}")
        return f" [{'; '.join(problems)}]" if problems else ""

    def close(self) -> None:
        for repeater in self._repeaters:
            repeater.stop()
        if self.context is not None and self.context.ok():
            self.context.try_shutdown()
        if self._thread is not None:
            self._thread.join(5)
        if self.executor is not None:
            self.executor.shutdown(timeout_sec=1.0)
        if self.node is not None:
            with contextlib.suppress(Exception):
                self.node.destroy_node()

    def __enter__(self) -> RosSession:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.close()

    # -- entities -----------------------------------------------------------------------------------------------------

    def publisher(self, topic: str, msg_type: type, qos: Any = None) -> Any:
        """A publisher (default QoS: :func:`deep_qos`, so a slow test process loses nothing)."""
        return self.node.create_publisher(msg_type, topic, deep_qos() if qos is None else qos)

    def collect(self, topic: str, msg_type: type, qos: Any = None, *, raw: bool = False) -> Collector:
        """Subscribe and keep everything that arrives (``raw``: the serialized bytes). Default QoS :func:`deep_qos`:
        with the nodes' depth of 10, a test process that falls behind (a loaded machine) would see its own reader
        history overwritten, and a test would blame the node for what it dropped."""
        collector = Collector(topic, self.health)
        qos = deep_qos() if qos is None else qos
        self.node.create_subscription(msg_type, topic, collector._add_with_info, qos, raw=raw)
        return collector

    def call(self, service: str, srv_type: type, request: Any = None, timeout: float = 15.0, *,
             idempotent: bool = False) -> Any:
        """Call a service and return its response (AssertionError if it is not there or does not answer).

        A new client's request reader and response reader are discovered independently: ``wait_for_service`` says
        the server can hear us, not that it can answer (the server gives up on a response its client's reader is
        not matched for within 100 ms, "client will not receive response": seen here on a loaded machine). So
        before the request, :meth:`_discovery_barrier` gets an answer from the same node's ``get_parameters``
        (idempotent, so retried) through a client made after this one, so most of the discovery is done. It is
        not a proof: the recorder's ``~/start`` lost its answer once more in a full run after the barrier, so a
        test that can wait on a node's own acknowledgement uses :meth:`send` instead. An ``idempotent`` request (a
        read: ``get_parameters``) is sent again every 2 s until answered, which no lost response survives."""
        client = self._ready_client(service, srv_type, timeout)
        try:
            end = time.monotonic() + timeout
            while True:
                done = threading.Event()
                future = client.call_async(srv_type.Request() if request is None else request)
                future.add_done_callback(lambda _f, done=done: done.set())
                wait = end - time.monotonic()
                if done.wait(min(2.0, wait) if idempotent else wait):
                    return future.result()
                if not idempotent or time.monotonic() >= end:
                    raise AssertionError(f"service {service} did not answer within {timeout} s")
        finally:
            self.node.destroy_client(client)

    def send(self, service: str, srv_type: type, request: Any = None, timeout: float = 15.0) -> Any:
        """Send a request and return its future without waiting for the answer, for a test that waits on the node's
        own acknowledgement instead (its status topic): under load rmw_fastrtps can drop a response ("client will
        not receive response") even after :meth:`_discovery_barrier`."""
        client = self._ready_client(service, srv_type, timeout)
        self._clients.append(client)  # alive until the session closes, so a late answer still lands
        return client.call_async(srv_type.Request() if request is None else request)

    def _ready_client(self, service: str, srv_type: type, timeout: float) -> Any:
        """A new client of ``service``, its server available and past :meth:`_discovery_barrier`."""
        client = self.node.create_client(srv_type, service)
        if not client.wait_for_service(timeout_sec=timeout):
            self.node.destroy_client(client)
            raise AssertionError(f"service {service} not available within {timeout} s")
        self._discovery_barrier(service, timeout)
        return client

    def _discovery_barrier(self, service: str, timeout: float) -> None:
        """Wait until the node serving ``service`` answers its ``get_parameters`` (skipped when the service's
        parent is not a node, or is that very service)."""
        from rcl_interfaces.srv import GetParameters

        resolved = self.node.resolve_service_name(service)
        node, _, leaf = resolved.rpartition("/")
        namespace, _, name = node.rpartition("/")
        nodes = {(n, ns) for n, ns in self.node.get_node_names_and_namespaces()}
        if leaf == "get_parameters" or (name, namespace or "/") not in nodes:
            return
        barrier = self.node.create_client(GetParameters, f"{node}/get_parameters")
        try:
            end = time.monotonic() + timeout
            if not barrier.wait_for_service(timeout_sec=timeout):
                return  # the call itself will say what is wrong
            while time.monotonic() < end:
                done = threading.Event()
                future = barrier.call_async(GetParameters.Request(names=["use_sim_time"]))
                future.add_done_callback(lambda _f, done=done: done.set())
                if done.wait(min(2.0, max(0.1, end - time.monotonic()))):
                    return
        finally:
            self.node.destroy_client(barrier)

    def repeat(self, publisher: Any, make: Callable[[], Any], rate_hz: float) -> Repeater:
        """Publish ``make()`` at ``rate_hz`` until the returned repeater is stopped (or the session closes)."""
        repeater = Repeater(publisher, make, rate_hz)
        self._repeaters.append(repeater)
        return repeater

    # -- waiting ------------------------------------------------------------------------------------------------------

    @staticmethod
    def wait_for(predicate: Callable[[], bool], timeout: float = 10.0, what: str = "condition") -> None:
        """Poll ``predicate`` every 10 ms; AssertionError naming ``what`` on timeout."""
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError(f"{what} not reached within {timeout} s")
            time.sleep(0.01)

    def wait_for_subscribers(self, publisher: Any, count: int = 1, timeout: float = 15.0) -> None:
        """Wait until ``publisher`` is matched with at least ``count`` subscriptions."""
        self.wait_for(
            lambda: publisher.get_subscription_count() >= count, timeout, f"{count} subscriber(s) on {publisher.topic}"
        )

    def wait_for_publishers(self, topic: str, count: int = 1, timeout: float = 15.0) -> None:
        """Wait until ``topic`` has at least ``count`` publishers (as this node sees the graph)."""
        name = self.node.resolve_topic_name(topic)
        self.wait_for(lambda: self.node.count_publishers(name) >= count, timeout, f"{count} publisher(s) on {name}")


def publish_until_condition(
    publisher: Any,
    make: Callable[[], Any],
    predicate: Callable[[], bool],
    timeout: float = 15.0,
    period: float = 0.1,
    *,
    max_period: float | None = None,
    what: str = "the expected reaction",
) -> int:
    """Publish ``make()`` every ``period`` seconds until ``predicate()`` is true; how many were published
    (AssertionError naming ``what`` on timeout).

    For reactions no single collector shows (a log line, several topics at once). ``make`` is called for every
    publication, so it can give each one a new stamp and the predicate can ask for the answer to the latest one;
    ``max_period``: the period doubles after each publication up to this, so a slow receiver gets the time to
    answer the latest. The predicate is polled every 10 ms and may raise to give up early (a process that died).
    """
    deadline = time.monotonic() + timeout
    count = 0
    while True:
        publisher.publish(make())
        count += 1
        next_at = min(deadline, time.monotonic() + period)
        while True:
            if predicate():
                return count
            if time.monotonic() >= next_at:
                break
            time.sleep(0.01)
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what} not reached within {timeout} s of publishing {count} on {publisher.topic}")
        if max_period is not None:
            period = min(max_period, 2 * period)
