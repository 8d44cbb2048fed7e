"""A real single-node Apache Kafka (KRaft) on 127.0.0.1, for development, tests and the quickstart.

The broker jars come from Maven Central through the small Maven project in ``docker/kafka`` (resolved
once into ``docker/kafka/lib``, which git ignores). The broker runs as a plain ``java`` process with a
small heap; its PID is recorded in the state directory so that ``stop`` ends exactly that process.

Readiness is a real metadata request through aiokafka, never a sleep.
"""

from __future__ import annotations

import asyncio
import base64
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from streams.logging import get_logger

__all__ = [
    "KafkaLauncherError",
    "LocalKafka",
    "default_kafka_home",
]

log = get_logger(__name__)

_LOG4J2 = """\
status = warn
appender.file.type = File
appender.file.name = FILE
appender.file.fileName = {log_file}
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = WARN
rootLogger.appenderRef.file.ref = FILE
logger.kafka.name = kafka.server.KafkaRaftServer
logger.kafka.level = INFO
"""


class KafkaLauncherError(RuntimeError):
    """The local broker could not be resolved, formatted, started or stopped."""


def default_kafka_home() -> Path:
    """Return ``docker/kafka`` of this checkout (where the Maven project lives)."""
    override = os.environ.get("SECSTREAM_KAFKA_HOME")
    if override:
        return Path(override)
    return Path(__file__).resolve().parents[2] / "docker" / "kafka"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass
class LocalKafka:
    """One local broker: its jars, its state directory and its ports.

    Args:
        home: the ``docker/kafka`` directory holding ``pom.xml`` and (after resolving) ``lib/``.
        state_dir: where the KRaft log, the config, the broker log and the PID file live.
        port: the client listener port on 127.0.0.1 (0 picks a free one at start).
        heap: the JVM heap size.
    """

    home: Path
    state_dir: Path
    port: int = 9092
    heap: str = "512m"
    _proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def lib_dir(self) -> Path:
        return self.home / "lib"

    @property
    def pid_file(self) -> Path:
        return self.state_dir / "kafka.pid"

    @property
    def port_file(self) -> Path:
        return self.state_dir / "kafka.port"

    @property
    def log_file(self) -> Path:
        return self.state_dir / "broker.log"

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def resolve(self) -> None:
        """Resolve the Kafka jars with Maven, unless they are already there."""
        if self.lib_dir.is_dir() and any(self.lib_dir.glob("kafka_2.13-*.jar")):
            return
        mvn = shutil.which("mvn")
        if mvn is None:
            raise KafkaLauncherError("Maven (mvn) is not installed: it resolves the Kafka jars")
        log.info("kafka.resolve", home=str(self.home))
        result = subprocess.run(
            [mvn, "-q", "-B", "dependency:copy-dependencies"],
            cwd=self.home,
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise KafkaLauncherError(f"mvn dependency:copy-dependencies failed:\n{result.stdout}{result.stderr}")

    def running_pid(self) -> int | None:
        """Return the PID of this state directory's broker if it is alive."""
        try:
            pid = int(self.pid_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        return pid if _pid_alive(pid) else None

    def _java(self, *args: str) -> list[str]:
        java = shutil.which("java")
        if java is None:
            raise KafkaLauncherError("java is not installed: Kafka 4 needs Java 17 or later")
        return [java, "-cp", f"{self.lib_dir}/*", *args]

    def _write_config(self, controller_port: int) -> Path:
        data_dir = self.state_dir / "data"
        props = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@127.0.0.1:{controller_port}",
            "listeners": f"PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{controller_port}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{self.port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "log.dirs": str(data_dir),
            "num.partitions": "1",
            "auto.create.topics.enable": "true",
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "4",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "transaction.state.log.num.partitions": "4",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
            "log.segment.bytes": str(64 * 1024 * 1024),
        }
        config = self.state_dir / "server.properties"
        config.write_text("".join(f"{k}={v}\n" for k, v in props.items()))
        (self.state_dir / "log4j2.properties").write_text(_LOG4J2.format(log_file=self.log_file))
        return config

    def start(self, timeout: float = 90.0) -> str:
        """Format a fresh KRaft directory, start the broker and wait until it answers metadata requests.

        Returns:
            The bootstrap address (``127.0.0.1:PORT``).
        """
        pid = self.running_pid()
        if pid is not None:
            self.port = int(self.port_file.read_text())
            log.info("kafka.already_running", pid=pid, bootstrap=self.bootstrap)
            return self.bootstrap
        self.resolve()
        if self.state_dir.exists():
            shutil.rmtree(self.state_dir)
        self.state_dir.mkdir(parents=True)
        if self.port == 0:
            self.port = _free_port()
        config = self._write_config(controller_port=_free_port())
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        fmt = subprocess.run(
            self._java("kafka.tools.StorageTool", "format", "-t", cluster_id, "-c", str(config)),
            capture_output=True,
            text=True,
            check=False,
            env=self._env(),
        )
        if fmt.returncode != 0:
            raise KafkaLauncherError(f"formatting the KRaft storage failed:\n{fmt.stdout}{fmt.stderr}")
        with (self.state_dir / "broker.out").open("wb") as stdout:
            proc = subprocess.Popen(
                self._java("kafka.Kafka", str(config)),
                stdout=stdout,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=self._env(),
                start_new_session=True,  # a Ctrl-C in the caller's terminal must not kill the broker half-way
            )
        self._proc = proc
        self.pid_file.write_text(str(proc.pid))
        self.port_file.write_text(str(self.port))
        started = time.monotonic()
        try:
            asyncio.run(_wait_ready(self.bootstrap, proc, timeout))
        except BaseException:
            self.stop()
            raise
        log.info("kafka.started", pid=proc.pid, bootstrap=self.bootstrap, seconds=round(time.monotonic() - started, 1))
        return self.bootstrap

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["KAFKA_HEAP_OPTS"] = f"-Xmx{self.heap} -Xms{self.heap}"
        # The broker main class is started directly (not through kafka-server-start.sh), so JVM
        # options go in JAVA_TOOL_OPTIONS.
        env["JAVA_TOOL_OPTIONS"] = (
            f"-Xmx{self.heap} -Xms128m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 "
            f"-Dlog4j2.configurationFile={self.state_dir / 'log4j2.properties'}"
        )
        return env

    def stop(self, timeout: float = 30.0) -> bool:
        """Stop the broker recorded in the PID file: SIGTERM, then SIGKILL after ``timeout``.

        Returns:
            True if a broker was running.
        """
        pid = self.running_pid()
        if pid is None:
            self.pid_file.unlink(missing_ok=True)
            return False
        os.kill(pid, signal.SIGTERM)
        if self._proc is not None and self._proc.pid == pid:
            try:
                self._proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
            self._proc = None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not _reap(pid):
                break
            time.sleep(0.2)
        else:
            os.kill(pid, signal.SIGKILL)
            while _reap(pid):
                time.sleep(0.1)
        self.pid_file.unlink(missing_ok=True)
        log.info("kafka.stopped", pid=pid)
        return True

    def status(self) -> str:
        pid = self.running_pid()
        if pid is None:
            return "stopped"
        return f"running pid={pid} bootstrap=127.0.0.1:{self.port_file.read_text().strip()}"


def _reap(pid: int) -> bool:
    """Return True while ``pid`` is alive (reaping it if it is our exited child)."""
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    except ChildProcessError:
        pass
    return _pid_alive(pid)


async def _wait_ready(bootstrap: str, proc: subprocess.Popen[bytes], within_s: float) -> None:
    from aiokafka.admin import AIOKafkaAdminClient
    from aiokafka.errors import KafkaError

    deadline = time.monotonic() + within_s
    last_error = "no answer"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise KafkaLauncherError(f"the broker exited with code {proc.returncode}; see its log")
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=3000)
        try:
            await admin.start()
            metadata = await admin.describe_cluster()
            if metadata.get("brokers"):
                return
        except (KafkaError, OSError) as exc:
            last_error = repr(exc)
        finally:
            await admin.close()
        await asyncio.sleep(0.5)
    raise KafkaLauncherError(f"the broker did not answer metadata requests within {within_s}s: {last_error}")
