"""Worker deployments on a development broker, for the integration tests and the worker benchmark.

A :class:`DevDeployment` is one isolated deployment: its own app id and topic names (a prefix and a random
tag), the configuration file ``secstream worker --config`` reads, and the worker subprocesses it started.
Several deployments share one broker without seeing each other's records.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import orjson
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from streams.config import load_config
from streams.worker.processes import process_count

__all__ = ["ConfigValue", "DevDeployment", "create_topics", "free_port", "to_toml", "wait_healthy"]

ConfigValue = str | int | float | bool | list[str]


def free_port(span: int = 1) -> int:
    """Return a TCP port ``p`` such that ``p`` .. ``p + span - 1`` are free on the loopback interface now.

    A worker with ``processes = n`` serves process ``i`` on ``web_port + i``, so it needs ``n`` ports
    in a row.
    """
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            first = int(sock.getsockname()[1])
        if first + span - 1 <= 65535 and all(_bindable(first + i) for i in range(1, span)):
            return first


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


async def create_topics(bootstrap: str, names: list[str], partitions: int) -> None:
    """Create topics with ``partitions`` partitions and one replica each."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(n, num_partitions=partitions, replication_factor=1) for n in names])
    finally:
        await admin.close()


def _toml_string(text: str) -> str:
    # TOML basic strings must escape quotes, backslashes and every control character, DEL included.
    escaped = "".join(
        "\\" + char if char in '"\\' else f"\\u{ord(char):04x}" if char < " " or char == "\x7f" else char
        for char in text
    )
    return f'"{escaped}"'


def _toml_value(value: ConfigValue) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return _toml_string(value)
    return "[" + ", ".join(_toml_string(item) for item in value) + "]"


def to_toml(tables: dict[str, dict[str, ConfigValue]]) -> str:
    """Render ``{section: {key: value}}`` as TOML tables (bare section and key names)."""
    out: list[str] = []
    for section, values in tables.items():
        out.append(f"[{section}]")
        out.extend(f"{key} = {_toml_value(value)}" for key, value in values.items())
    return "\n".join(out) + "\n"


def wait_healthy(port: int, proc: subprocess.Popen[bytes], limit_s: float = 60.0) -> None:
    """Wait until the worker's health endpoint answers 200 with partitions assigned.

    Raises:
        RuntimeError: the worker exited.
        TimeoutError: it was not healthy within ``limit_s``.
    """
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"worker exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as resp:
                if resp.status == 200 and orjson.loads(resp.read()).get("partitions"):
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise TimeoutError("worker not healthy")


@dataclass
class DevDeployment:
    """One isolated deployment: its own app id, topics and configuration file, and its workers.

    Attributes:
        bootstrap: the broker's ``host:port``.
        workdir: where configuration files, Faust data and worker logs go.
        prefix: the start of every topic name and of the app id.
        partitions: partitions of the raw topics (and so of the internal ones).
        settings: configuration tables merged over the deployment's own (``{"coalescer":
            {"idle_flush_s": 2.0}}``); a worker started later reads the settings of that moment.
        log_level: the workers' ``--log-level``.
        tag: what makes the names unique.
        procs: the running workers (killed or terminated ones are removed).
    """

    bootstrap: str
    workdir: Path
    prefix: str = "dev"
    partitions: int = 2
    settings: dict[str, dict[str, ConfigValue]] = field(default_factory=dict)
    log_level: str = "INFO"
    tag: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    _started: int = 0

    def _topic(self, name: str) -> str:
        return f"{self.prefix}.{name}.{self.tag}"

    @property
    def raw_auditd(self) -> str:
        """The raw auditd input topic."""
        return self._topic("raw.auditd")

    @property
    def raw_syslog(self) -> str:
        """The raw syslog input topic."""
        return self._topic("raw.syslog")

    @property
    def events(self) -> str:
        """The events output topic."""
        return self._topic("events")

    @property
    def detections(self) -> str:
        """The detections output topic."""
        return self._topic("detections")

    @property
    def deadletter(self) -> str:
        """The dead-letter topic."""
        return self._topic("deadletter")

    @property
    def app_id(self) -> str:
        """The Faust app id (the consumer group)."""
        return f"{self.prefix}-{self.tag}"

    @property
    def topics(self) -> list[str]:
        """The topics to create up front (Faust does not create the raw topics it reads)."""
        return [self.raw_auditd, self.raw_syslog, self.events, self.detections, self.deadletter]

    def config(self, web_port: int = 0) -> dict[str, dict[str, ConfigValue]]:
        """The configuration tables of a worker whose health endpoint listens on ``web_port``."""
        tables: dict[str, dict[str, ConfigValue]] = {
            "kafka": {"broker": f"kafka://{self.bootstrap}"},
            "topics": {
                "raw_auditd": self.raw_auditd,
                "raw_syslog": self.raw_syslog,
                "events": self.events,
                "detections": self.detections,
                "deadletter": self.deadletter,
                "partitions": self.partitions,
            },
            "worker": {
                "app_id": self.app_id,
                "web_port": web_port,
                # short session and heartbeat so that a killed worker's partitions move on quickly
                "session_timeout_s": 6.0,
                "heartbeat_interval_s": 0.5,
                "data_dir": str(self.workdir / f"faust-{self.tag}"),
            },
        }
        for section, values in self.settings.items():
            tables.setdefault(section, {}).update(values)
        return tables

    def config_path(self, web_port: int = 0) -> Path:
        """Write :meth:`config` to a file in ``workdir`` and return its path."""
        path = self.workdir / f"worker-{self.tag}-{web_port}.toml"
        path.write_text(to_toml(self.config(web_port)))
        return path

    def start_worker(self) -> tuple[subprocess.Popen[bytes], int]:
        """Start ``secstream worker`` in a new process group; return it and its health port."""
        # as many ports in a row as the worker will start members (read as the worker reads its file)
        port = free_port(span=process_count(load_config(self.config_path())))
        config = self.config_path(port)
        cmd = [sys.executable, "-m", "streams.cli", "--log-level", self.log_level, "worker", "--config", str(config)]
        self._started += 1
        with self.worker_log(self._started).open("wb") as log:
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=self.workdir, start_new_session=True)
        self.procs.append(proc)
        return proc, port

    def kill(self, proc: subprocess.Popen[bytes]) -> None:
        """``kill -9`` a worker."""
        self.procs.remove(proc)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)

    def terminate(self, proc: subprocess.Popen[bytes], timeout: float = 30.0) -> int:
        """SIGTERM a worker (it flushes and commits) and return its exit status."""
        self.procs.remove(proc)
        proc.send_signal(signal.SIGTERM)
        return proc.wait(timeout=timeout)

    def stop_all(self, *, graceful: bool = True, timeout: float = 30.0) -> None:
        """Stop every running worker: SIGTERM, then SIGKILL after ``timeout`` (``graceful=False``: at once)."""
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM if graceful else signal.SIGKILL)
        for proc in self.procs:
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        self.procs.clear()

    def worker_log(self, number: int) -> Path:
        """The log file of the ``number``-th worker this deployment started (from 1)."""
        return self.workdir / f"worker-{self.tag}-{number}.log"

    def logs(self, tail: int = 4000) -> str:
        """The last ``tail`` characters of every worker log of this deployment."""
        paths = sorted(self.workdir.glob(f"worker-{self.tag}-*.log"))
        return "\n".join(p.read_text(errors="replace")[-tail:] for p in paths)
