"""Private, throw-away RabbitMQ nodes for fault tests.

``PrivateRabbitNode`` starts a RabbitMQ node that belongs to one test: its own
node name (``fairq-test-<random>@localhost``), its own AMQP and Erlang
distribution ports on 127.0.0.1, and its own data, log and config files in a
temporary directory.  Tests can then stop, restart, SIGKILL it or drop all
its connections without affecting anything else on the machine -- in
particular the shared broker ``rabbit@localhost`` on 127.0.0.1:5672, which
this module never addresses (every ``rabbitmqctl`` call passes ``-n`` with
the private node's name, and the private node uses its own Erlang cookie, so
even a wrong ``-n`` could not authenticate against the shared node).

Usage::

    node = PrivateRabbitNode(config={"consumer_timeout": "2000"},
                             advanced_config="[{rabbit, [{channel_tick_interval, 500}]}].")
    node.start()
    try:
        conn = pika.BlockingConnection(pika.URLParameters(node.url))
        ...
        node.restart()          # durable queues and persistent messages survive
        node.kill()             # SIGKILL the beam process (crash test) ...
        node.start()            # ... and recover from the same data dir
        node.list_queues("name", "messages_unacknowledged")
    finally:
        node.cleanup()          # stop (kill if it hangs) and delete the dir

or use it as a context manager, or use the ``private_rabbit`` /
``make_private_rabbit`` fixtures from ``tests/faults/conftest.py``.

How the node is isolated (RabbitMQ 3.10.8, Debian package, running as root)
-------------------------------------------------------------------------
* ``/usr/sbin/rabbitmq-server`` and ``/usr/sbin/rabbitmqctl`` are Debian
  wrappers that ``cd /var/lib/rabbitmq`` and ``su rabbitmq`` when run as root;
  they would run our node as the ``rabbitmq`` user with its HOME and cookie.
  We bypass them and run ``/usr/lib/rabbitmq/bin/rabbitmq-server`` and
  ``.../rabbitmqctl`` directly as the current user (root here), with
  ``cwd`` = the node dir (so an ``erl_crash.dump`` lands there too).
* Every subprocess gets a *minimal* environment built from scratch (PATH,
  locale, plus the variables below); nothing is exported globally and no
  inherited ``RABBITMQ_*``/``ERL_*`` variable leaks in.
* ``RABBITMQ_CONF_ENV_FILE`` points at an (empty) file in the node dir, so
  ``/etc/rabbitmq/rabbitmq-env.conf`` (which sets ``NODENAME=rabbit@localhost``
  for the shared node) is never read.  ``RABBITMQ_CONFIG_FILE``,
  ``RABBITMQ_CONFIG_FILES`` (the ``conf.d`` glob, default
  ``/etc/rabbitmq/conf.d/*.conf``), ``RABBITMQ_ADVANCED_CONFIG_FILE``,
  ``RABBITMQ_ENABLED_PLUGINS_FILE`` (``[].``: no plugins),
  ``RABBITMQ_MNESIA_BASE``/``_DIR``, ``RABBITMQ_QUORUM_DIR``,
  ``RABBITMQ_STREAM_DIR``, ``RABBITMQ_FEATURE_FLAGS_FILE``,
  ``RABBITMQ_PLUGINS_EXPAND_DIR``, ``RABBITMQ_LOG_BASE``, ``RABBITMQ_LOGS``,
  ``RABBITMQ_PID_FILE`` and ``RABBITMQ_MOTD_FILE`` all point into the node
  dir.  (3.10 has no ``RABBITMQ_GENERATED_CONFIG_DIR`` any more: the config
  is translated in-process.)  ``RABBITMQ_NODE_IP_ADDRESS=127.0.0.1``,
  ``RABBITMQ_NODE_PORT`` and ``RABBITMQ_DIST_PORT`` are free ports picked at
  construction time and kept across restarts (``url`` stays valid); Erlang
  distribution is bound to 127.0.0.1 (``inet_dist_use_interface``).
* Erlang cookie: the brief asked for root's ``~/.erlang.cookie``, but on this
  machine root had none (``/usr/sbin/rabbitmqctl`` su's to ``rabbitmq`` and
  uses ``/var/lib/rabbitmq/.erlang.cookie``), and a root-run Erlang node would
  silently *create* ``/root/.erlang.cookie``.  So each node gets ``HOME`` =
  ``<dir>/home`` containing a random ``.erlang.cookie``, and ``rabbitmqctl()``
  runs with the same ``HOME``.  To poke a node by hand while a test is
  paused::

      HOME=<node.dir>/home /usr/lib/rabbitmq/bin/rabbitmqctl -n <node.nodename> status

  (``node.ctl_hint()`` prints exactly that line.)
* The node registers with the already-running system ``epmd`` on
  127.0.0.1:4369 (shared only as a name->port directory; a private epmd would
  outlive the test as a daemon).  ``ERL_EPMD_ADDRESS=127.0.0.1`` is set in
  case epmd has to be started.
* ``rabbitmq-server`` runs in its own session/process group
  (``start_new_session=True``), so Ctrl-C on pytest does not reach it and a
  hung node can be SIGKILLed as a group.  The spawned process is the
  ``/bin/sh`` wrapper, which runs beam.smp as a child and forwards TERM to
  it; ``os_pid``/``kill()`` target beam.smp itself (pid file, cross-checked
  against the group).  ``erl_child_setup`` setsid()s itself out of the group
  but exits on its own when beam dies.

Measured on this machine (2 vCPUs shared with other work, RabbitMQ 3.10.8 /
OTP 25.2, no plugins; 9 runs)
-------------------------------------------------------------------------
* ``start()`` of a fresh node (until the AMQP port accepts and
  ``rabbitmqctl await_startup`` succeeds): 3.4-7.2 s, typically ~4-5 s.
* ``restart()`` with a quorum queue holding 100 persistent messages:
  4.7-8.1 s, typically ~5.5 s (stop ~1.6 s + start 3.1-6.6 s).
* ``kill()``: ~0.02 s; the next ``start()`` (crash recovery) 3.3-6.2 s.
* each ``rabbitmqctl`` call costs ~0.4-0.9 s (it boots an Erlang VM and
  Elixir), so poll broker-side counters with intervals of >= 0.2 s.
* the four tests in tests/faults/test_private_node.py take ~45 s in total.

Surprise worth knowing for crash tests: see ``kill()`` -- SIGKILL within
~0.5 s of declaring a quorum queue leaves that queue permanently leaderless
after restart on 3.10.8 (``sync_quorum_metadata()`` avoids it when the test
is about something else).

Why not pytest-rabbitmq (PyPI, v5.0.0)?
--------------------------------------
Evaluated and rejected.  Its ``rabbitmq_proc`` factory builds a *session*-
scoped mirakuru ``TCPExecutor`` that sets only ``RABBITMQ_LOG_BASE``,
``RABBITMQ_MNESIA_BASE``, ``RABBITMQ_ENABLED_PLUGINS_FILE``,
``RABBITMQ_NODE_PORT`` and ``RABBITMQ_NODENAME``: no ``rabbitmq.conf`` /
``advanced.config`` (so no ``consumer_timeout``/``channel_tick_interval``/TLS),
no distribution port, no isolation from ``/etc/rabbitmq/rabbitmq-env.conf`` /
``conf.d`` / the cookie in ``$HOME``, and readiness is "TCP port open" rather
than ``await_startup``.  It has no restart-keeping-data or SIGKILL API (its
client fixture even purges queues/exchanges after each test), its mnesia dir
lives in ``$TMPDIR/rabbitmq.<port>/`` and the process fixture does not remove
it, and it would add mirakuru (+psutil) and port-for as dependencies.  Wrapping its executor would mean
re-doing all of the above anyway, so this module uses only the stdlib.
"""

from __future__ import annotations

import atexit
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, TypeVar

__all__ = [
    "PrivateRabbitNode",
    "RabbitNodeError",
    "free_port",
    "rabbitmq_available",
    "wait_until",
]

T = TypeVar("T")

#: Directory holding the real (non-wrapper) RabbitMQ scripts.
RABBITMQ_SBIN = Path(os.environ.get("FAIRQ_RABBITMQ_SBIN", "/usr/lib/rabbitmq/bin"))

#: Ports we never hand out: epmd, the shared node's AMQP/dist/management
#: ports, and the range rabbitmqctl itself listens on (35672-35682).
_RESERVED_PORTS = frozenset({4369, 5671, 5672, 15672, 25672, *range(35672, 35683)})

_LIVE_NODES: set[PrivateRabbitNode] = set()


class RabbitNodeError(RuntimeError):
    """A private node failed to start/stop, or a rabbitmqctl call failed."""


def rabbitmq_available() -> bool:
    """True if the RabbitMQ server scripts this module needs are installed."""
    return (RABBITMQ_SBIN / "rabbitmq-server").exists() and (RABBITMQ_SBIN / "rabbitmqctl").exists()


def wait_until(
    predicate: Callable[[], T],
    timeout: float,
    interval: float = 0.05,
    message: str | None = None,
) -> T:
    """Poll ``predicate`` until it returns something truthy; return that value.

    Raises ``TimeoutError`` after ``timeout`` seconds.  The predicate is always
    evaluated at least once, and once more at/after the deadline.
    """
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() >= deadline:
            what = message or getattr(predicate, "__name__", "condition")
            raise TimeoutError(f"timed out after {timeout:.1f}s waiting for {what} (last value: {result!r})")
        time.sleep(interval)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is currently free on ``host`` (see ``_free_ports``)."""
    return _free_ports(1, host)[0]


def _free_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    """``count`` distinct currently-free ports (all held open simultaneously
    while picking, so they differ).  Inherently racy, like any free-port
    picker; a clash shows up as a clear start() failure (eaddrinuse)."""
    held: list[socket.socket] = []
    ports: list[int] = []
    try:
        while len(ports) < count:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((host, 0))
            held.append(s)
            port = s.getsockname()[1]
            if port not in _RESERVED_PORTS:
                ports.append(port)
    finally:
        for s in held:
            s.close()
    return ports


def _port_accepts(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes in process group ``pgid`` (Linux /proc)."""
    members = []
    try:
        entries = os.listdir("/proc")
    except OSError:  # pragma: no cover - not Linux
        try:
            os.killpg(pgid, 0)
            return [pgid]
        except ProcessLookupError:
            return []
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        # fields after "(comm)": state ppid pgrp ...
        fields = stat[stat.rfind(b")") + 2 :].split()
        if len(fields) >= 3 and int(fields[2]) == pgid and fields[0] not in (b"Z", b"X"):
            members.append(int(entry))
    return members


def _tail(path: Path, lines: int) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 64 * 1024))
            data = f.read().decode("utf-8", "replace")
    except OSError:
        return ""
    return "\n".join(data.splitlines()[-lines:])


def _base_env() -> dict[str, str]:
    """A minimal environment: no inherited RABBITMQ_*/ERL_*/NODENAME etc."""
    env = {"PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin")}
    # Elixir (rabbitmqctl) warns loudly without a UTF-8 locale.
    env["LANG"] = env["LC_ALL"] = "C.UTF-8"
    if "TZ" in os.environ:
        env["TZ"] = os.environ["TZ"]
    return env


class PrivateRabbitNode:
    """A private RabbitMQ node in its own temp dir (see module docstring).

    ``config`` and ``advanced_config`` are written to ``rabbitmq.conf`` /
    ``advanced.config`` on every ``start()``, so a test may change
    ``node.config`` (e.g. add TLS listener lines, with certificates put in
    ``node.dir``) and ``restart()`` to apply it.
    """

    CTL_TIMEOUT = 120.0

    def __init__(
        self,
        config: Mapping[str, str] | None = None,
        advanced_config: str | None = None,
        *,
        name: str | None = None,
        base_dir: str | os.PathLike[str] | None = None,
        start_timeout: float = 60.0,
        stop_timeout: float = 60.0,
        cookie: str | None = None,
    ) -> None:
        self.config: dict[str, str] = dict(config or {})
        self.advanced_config = advanced_config
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self.nodename = f"{name or 'fairq-test-' + secrets.token_hex(4)}@localhost"
        self.host = "127.0.0.1"
        self._port, self.dist_port = _free_ports(2, self.host)
        self.dir = Path(tempfile.mkdtemp(prefix="fairq-rabbit-", dir=base_dir))
        self.home_dir = self.dir / "home"
        self.mnesia_base = self.dir / "mnesia"
        self.mnesia_dir = self.mnesia_base / self.nodename
        self.log_dir = self.dir / "log"
        self.log_file = self.log_dir / "rabbit.log"
        self.config_file = self.dir / "rabbitmq.conf"
        self.advanced_config_file = self.dir / "advanced.config"
        self.conf_d = self.dir / "conf.d"
        self.enabled_plugins_file = self.dir / "enabled_plugins"
        self.conf_env_file = self.dir / "rabbitmq-env.conf"
        self.pid_file = self.dir / "rabbitmq.pid"
        # Nodes of one cluster share a cookie (tests/support/rabbit_cluster.py); else each its own.
        self._cookie = cookie or secrets.token_hex(20).upper()
        self._proc: subprocess.Popen[bytes] | None = None
        self._frozen: int | None = None  # beam's pid while SIGSTOPped (freeze)
        self._removed = False
        #: wall-clock seconds of the most recent start() / stop() / restart()
        self.last_start_seconds: float | None = None
        self.last_stop_seconds: float | None = None
        self.last_restart_seconds: float | None = None

        for d in (self.mnesia_base, self.log_dir, self.conf_d):
            d.mkdir(parents=True)
        self.home_dir.mkdir(mode=0o700)
        cookie = self.home_dir / ".erlang.cookie"
        cookie.write_text(self._cookie)
        cookie.chmod(0o400)
        self.conf_env_file.write_text("# intentionally empty: keeps /etc/rabbitmq/rabbitmq-env.conf out\n")
        self.enabled_plugins_file.write_text("[].\n")
        _LIVE_NODES.add(self)

    # ------------------------------------------------------------------ info
    @property
    def port(self) -> int:
        return self._port

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@{self.host}:{self._port}/"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def os_pid(self) -> int | None:
        """PID of the node's beam.smp process (None if not running).

        Not the pid of the ``rabbitmq-server`` process we spawn: that is a
        ``/bin/sh`` script which runs ``erl`` in the background and forwards
        TERM/INT to it.  Taken from ``RABBITMQ_PID_FILE`` (checked to be in
        our process group), falling back to a /proc scan of the group.
        """
        if not self.running:
            return None
        assert self._proc is not None
        pgid = self._proc.pid
        members = _group_members(pgid)
        try:
            pid = int(self.pid_file.read_text().strip())
            if pid in members:
                return pid
        except (OSError, ValueError):
            pass
        for pid in members:
            try:
                if Path(f"/proc/{pid}/comm").read_text().strip().startswith("beam"):
                    return pid
            except OSError:
                continue
        return None

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<PrivateRabbitNode {self.nodename} port={self._port} {state} dir={self.dir}>"

    def ctl_hint(self) -> str:
        """Shell line to run rabbitmqctl against this node by hand."""
        return f"HOME={self.home_dir} {RABBITMQ_SBIN / 'rabbitmqctl'} -n {self.nodename} status"

    def log_tail(self, lines: int = 60) -> str:
        parts = []
        for path in (self.log_file, self.log_dir / "startup_stdout.log", self.log_dir / "startup_stderr.log"):
            text = _tail(path, lines)
            if text.strip():
                parts.append(f"--- {path} (last {lines} lines) ---\n{text}")
        return "\n".join(parts) or f"(no log output in {self.log_dir})"

    # ------------------------------------------------------------------- env
    def _ctl_env(self) -> dict[str, str]:
        env = _base_env()
        env.update(
            HOME=str(self.home_dir),
            RABBITMQ_CONF_ENV_FILE=str(self.conf_env_file),
            ERL_EPMD_ADDRESS="127.0.0.1",
        )
        return env

    def _server_env(self) -> dict[str, str]:
        env = self._ctl_env()
        env.update(
            RABBITMQ_NODENAME=self.nodename,
            RABBITMQ_NODE_IP_ADDRESS=self.host,
            RABBITMQ_NODE_PORT=str(self._port),
            RABBITMQ_DIST_PORT=str(self.dist_port),
            RABBITMQ_MNESIA_BASE=str(self.mnesia_base),
            RABBITMQ_MNESIA_DIR=str(self.mnesia_dir),
            RABBITMQ_QUORUM_DIR=str(self.mnesia_dir / "quorum"),
            RABBITMQ_STREAM_DIR=str(self.mnesia_dir / "stream"),
            RABBITMQ_FEATURE_FLAGS_FILE=str(self.mnesia_base / "feature_flags"),
            RABBITMQ_PLUGINS_EXPAND_DIR=str(self.mnesia_base / "plugins-expand"),
            RABBITMQ_LOG_BASE=str(self.log_dir),
            RABBITMQ_LOGS=str(self.log_file),
            RABBITMQ_CONFIG_FILE=str(self.config_file),
            RABBITMQ_CONFIG_FILES=str(self.conf_d / "*.conf"),
            RABBITMQ_ADVANCED_CONFIG_FILE=str(self.advanced_config_file),
            RABBITMQ_ENABLED_PLUGINS_FILE=str(self.enabled_plugins_file),
            RABBITMQ_PID_FILE=str(self.pid_file),
            RABBITMQ_MOTD_FILE=str(self.dir / "motd"),
            RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}",
            ERL_CRASH_DUMP=str(self.dir / "erl_crash.dump"),
        )
        return env

    def _write_config(self) -> None:
        lines = [
            "# generated by tests/support/rabbit_node.py",
            "loopback_users.guest = true",
            "log.console = false",
            "log.file.level = info",
        ]
        lines += [f"{key} = {value}" for key, value in self.config.items()]
        self.config_file.write_text("\n".join(lines) + "\n")
        self.advanced_config_file.write_text((self.advanced_config or "[].").rstrip() + "\n")

    # ------------------------------------------------------------- lifecycle
    def start(self, timeout: float | None = None) -> None:
        """Start the node and wait until it is fully booted.

        Ready means: ``rabbitmqctl -n NODE await_startup`` succeeded and the
        AMQP port accepts TCP connections.  On failure the node is killed and
        ``RabbitNodeError`` carries the tail of its logs.
        """
        if self._removed:
            raise RabbitNodeError(f"{self.nodename}: node directory already removed")
        if self.running:
            raise RabbitNodeError(f"{self.nodename} is already running")
        timeout = self.start_timeout if timeout is None else timeout
        self._write_config()
        self.pid_file.unlink(missing_ok=True)
        t0 = time.monotonic()
        deadline = t0 + timeout
        with open(self.log_dir / "startup_stdout.log", "ab") as out, open(
            self.log_dir / "startup_stderr.log", "ab"
        ) as err:
            self._proc = subprocess.Popen(
                [str(RABBITMQ_SBIN / "rabbitmq-server")],
                env=self._server_env(),
                cwd=self.dir,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                start_new_session=True,
            )
        try:
            # Phase 1: cheap polling until the AMQP listener is up (it is
            # started late in boot) -- or the process dies.
            while not _port_accepts(self.host, self._port):
                rc = self._proc.poll()
                if rc is not None:
                    raise RabbitNodeError(f"rabbitmq-server exited during startup (wrapper status {rc})")
                if time.monotonic() >= deadline:
                    raise RabbitNodeError(f"AMQP port {self._port} not accepting after {timeout:.0f}s")
                time.sleep(0.1)
            # Phase 2: the authoritative readiness check.
            while True:
                remaining = max(1, int(deadline - time.monotonic()))
                try:
                    self.rabbitmqctl("await_startup", "--timeout", str(remaining), timeout=remaining + 30)
                    break
                except RabbitNodeError:
                    if self._proc.poll() is not None or time.monotonic() >= deadline:
                        raise
                    time.sleep(0.2)
            if self._proc.poll() is not None:
                raise RabbitNodeError(f"rabbitmq-server exited with status {self._proc.returncode}")
        except BaseException as exc:
            self._hard_kill()
            if isinstance(exc, RabbitNodeError):
                raise RabbitNodeError(
                    f"{self.nodename} failed to start: {exc}\n{self.log_tail()}"
                ) from exc
            raise
        self.last_start_seconds = time.monotonic() - t0

    def stop(self, timeout: float | None = None) -> None:
        """Gracefully stop the node (``rabbitmqctl stop``) and wait for the OS
        process to exit; SIGTERM, then SIGKILL, if it does not.  Idempotent."""
        proc = self._proc
        if proc is None:
            return
        self.thaw()  # a frozen node would never answer rabbitmqctl stop
        timeout = self.stop_timeout if timeout is None else timeout
        t0 = time.monotonic()
        if proc.poll() is None:
            try:
                self.rabbitmqctl("stop", timeout=timeout)
            except RabbitNodeError:
                if proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)  # rabbit shuts down gracefully on TERM
            try:
                proc.wait(timeout=max(1.0, timeout - (time.monotonic() - t0)))
            except subprocess.TimeoutExpired:
                self._hard_kill()
        self._reap_group(proc.pid)
        self._proc = None
        self.last_stop_seconds = time.monotonic() - t0

    def restart(self, timeout: float | None = None) -> None:
        """``stop()`` + ``start()`` on the same data dir, name and ports."""
        t0 = time.monotonic()
        self.stop()
        self.start(timeout)
        self.last_restart_seconds = time.monotonic() - t0

    def kill(self) -> None:
        """SIGKILL the beam.smp process (simulated crash); data dir is kept,
        so ``start()`` afterwards exercises crash recovery.

        Caveat (RabbitMQ 3.10.8 / Ra 2.2.0): a quorum queue's name -> Ra UID
        registration lives in a dets table that is auto-saved only after
        500 ms without access.  A SIGKILL within that window after declaring
        a quorum queue loses the registration: on restart the queue gets a
        fresh, empty Ra server that never elects a leader (clients get 541
        INTERNAL_ERROR "leader not known" timeouts; the old log is orphaned).
        That is real broker behaviour, not a harness bug -- call
        ``sync_quorum_metadata()`` before ``kill()`` when the test is about
        something else.
        """
        proc = self._proc
        beam = self.os_pid
        if proc is None or beam is None:
            raise RabbitNodeError(f"{self.nodename} is not running")
        os.kill(beam, signal.SIGKILL)
        try:
            # the wrapper script's `wait` returns once beam is gone
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:  # pragma: no cover
            self._hard_kill()
            raise RabbitNodeError(f"{self.nodename}: wrapper did not exit after beam {beam} was killed") from None
        self._reap_group(proc.pid)
        self._proc = None

    def freeze(self) -> None:
        """SIGSTOP the beam.smp process: the node stops answering but closes no socket, as a host that
        hangs or is cut off does; its clients notice only through heartbeats. :meth:`thaw` resumes it."""
        beam = self.os_pid
        if beam is None:
            raise RabbitNodeError(f"{self.nodename} is not running")
        os.kill(beam, signal.SIGSTOP)
        self._frozen = beam

    def thaw(self) -> None:
        """SIGCONT what :meth:`freeze` stopped (nothing if it is not frozen)."""
        beam, self._frozen = self._frozen, None
        if beam is not None:
            try:
                os.kill(beam, signal.SIGCONT)
            except ProcessLookupError:
                pass

    def _hard_kill(self) -> None:
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            self._killpg(proc.pid)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:  # pragma: no cover
                pass
        self._reap_group(proc.pid)
        self._proc = None

    @staticmethod
    def _killpg(pgid: int) -> None:
        if pgid == os.getpgrp():  # paranoia: never signal our own group
            raise RabbitNodeError("refusing to kill our own process group")
        try:
            os.killpg(pgid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def _reap_group(self, pgid: int, timeout: float = 10.0) -> None:
        """Wait for helper processes (erl_child_setup, inet_gethost) left in
        the node's process group to exit on their own; SIGKILL if they don't."""
        try:
            wait_until(lambda: not _group_members(pgid), timeout, interval=0.05)
        except TimeoutError:
            self._killpg(pgid)

    def cleanup(self) -> None:
        """Stop the node (kill it if a graceful stop fails) and delete its dir."""
        try:
            try:
                self.stop()
            except Exception:
                self._hard_kill()
                raise
        finally:
            _LIVE_NODES.discard(self)
            if not self._removed:
                self._removed = True
                shutil.rmtree(self.dir)

    close = cleanup

    def __enter__(self) -> PrivateRabbitNode:
        self.start()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.cleanup()

    # -------------------------------------------------------------- control
    def rabbitmqctl(self, *args: str, timeout: float | None = None, check: bool = True) -> str:
        """Run ``rabbitmqctl -n NODE *args`` against this node; return stdout.

        Raises ``RabbitNodeError`` on a non-zero exit (if ``check``) or timeout.
        """
        timeout = self.CTL_TIMEOUT if timeout is None else timeout
        cmd = [str(RABBITMQ_SBIN / "rabbitmqctl"), "-n", self.nodename, *args]
        try:
            cp = subprocess.run(
                cmd,
                env=self._ctl_env(),
                cwd=self.dir,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=timeout,
            )
        except subprocess.TimeoutExpired as exc:
            raise RabbitNodeError(f"rabbitmqctl {' '.join(args)} timed out after {timeout:.0f}s") from exc
        if check and cp.returncode != 0:
            raise RabbitNodeError(
                f"rabbitmqctl -n {self.nodename} {' '.join(args)} exited {cp.returncode}:\n"
                f"{cp.stdout.strip()}\n{cp.stderr.strip()}".rstrip()
            )
        return cp.stdout

    def close_all_connections(self, reason: str = "fairq fault test") -> None:
        """Close every client connection on the node (clients see 320
        CONNECTION_FORCED).  The broker closes them asynchronously: poll the
        client side for the effect."""
        self.rabbitmqctl("close_all_connections", "--global", reason)

    def _list(self, what: str, columns: Iterable[str], extra: Iterable[str] = ()) -> list[dict[str, Any]]:
        out = self.rabbitmqctl("-q", f"list_{what}", *extra, "--formatter", "json", *columns)
        out = out.strip()
        return json.loads(out) if out else []

    def list_queues(self, *columns: str, vhost: str = "/") -> list[dict[str, Any]]:
        """``rabbitmqctl list_queues`` as a list of dicts (column -> value).

        Default columns: name, type, messages, messages_ready,
        messages_unacknowledged, consumers.  Note quorum-queue counters are
        metrics that may lag a moment behind reality: poll with wait_until.
        """
        cols = columns or ("name", "type", "messages", "messages_ready", "messages_unacknowledged", "consumers")
        return self._list("queues", cols, ("-p", vhost))

    def queue_info(self, name: str, *columns: str, vhost: str = "/") -> dict[str, Any] | None:
        """The ``list_queues`` row for queue ``name`` (None if absent)."""
        cols = columns if not columns or "name" in columns else ("name", *columns)
        for row in self.list_queues(*cols, vhost=vhost):
            if row.get("name") == name:
                return row
        return None

    def list_channels(self, *columns: str) -> list[dict[str, Any]]:
        """``rabbitmqctl list_channels`` as a list of dicts.

        Default columns: name, number, user, consumer_count,
        messages_unacknowledged, prefetch_count.
        """
        cols = columns or (
            "name",
            "number",
            "user",
            "consumer_count",
            "messages_unacknowledged",
            "prefetch_count",
        )
        return self._list("channels", cols)

    def list_connections(self, *columns: str) -> list[dict[str, Any]]:
        """``rabbitmqctl list_connections`` as a list of dicts."""
        return self._list("connections", columns or ("name", "user", "state", "channels"))

    def sync_quorum_metadata(self) -> None:
        """Flush Ra's dets tables (queue name -> Ra UID directory, Raft
        term/vote metadata) to disk, as an idle broker would within ~0.5-5 s.
        See ``kill()`` for why crash tests want this."""
        out = self.rabbitmqctl("eval", "{dets:sync(ra_directory_reverse), dets:sync(ra_log_meta)}.").strip()
        if out != "{ok,ok}":
            raise RabbitNodeError(f"{self.nodename}: syncing Ra metadata returned {out}")

    def app_env(self, key: str, app: str = "rabbit") -> str:
        """Raw ``application:get_env(App, Key)`` result, e.g. ``{ok,1000}``."""
        return self.rabbitmqctl("eval", f"application:get_env({app}, {key}).").strip()


@atexit.register
def _kill_leftover_nodes() -> None:
    """Last resort if a test process exits without cleanup()."""
    for node in list(_LIVE_NODES):
        try:
            node._hard_kill()
            if not node._removed:
                node._removed = True
                shutil.rmtree(node.dir, ignore_errors=True)
        except Exception:  # pragma: no cover
            pass
