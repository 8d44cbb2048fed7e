# ruff: noqa: E501
"""Benchmark: syslog parsing + rules (secstream) and risky_cmd_line/cmd_speed vs msticpy on the same frame."""

from __future__ import annotations

import argparse
import random
import time

import pandas as pd

from processors.cmd_line import cmd_speed, risky_cmd_line
from processors.rules import RuleEngine, default_rules_path, load_rules
from processors.syslog import parse_syslog_line

LINES = [
    "<38>Jul 10 15:13:25 web{n} sshd[{n}]: Accepted publickey for u{n} from 10.0.{m}.{n} port 50022 ssh2",
    "Jul 10 15:13:26 web{n} sudo:    u{n} : TTY=pts/0 ; PWD=/home/u ; USER=root ; COMMAND=/usr/bin/apt-get install x{n}",
    "Jul 10 15:13:27 web{n} sudo: pam_unix(sudo:session): session opened for user root by u{n}(uid=0)",
    "Jul 10 15:13:28 web{n} kernel: [{n}.{m}] eth0: link up",
    "Jul 10 15:13:29 web{n} CRON[{n}]: (root) CMD (cd / && run-parts --report /etc/cron.hourly)",
]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lines", type=int, default=100_000)
    args = parser.parse_args()
    rng = random.Random(1)
    lines = [rng.choice(LINES).format(n=rng.randint(1, 250), m=rng.randint(0, 9)) for _ in range(args.lines)]
    engine = RuleEngine(load_rules(default_rules_path()))
    start = time.perf_counter()
    docs = [parse_syslog_line(line, year=2019) for line in lines]
    parsed = time.perf_counter() - start
    hits = sum(len(engine.match(doc)) for doc in docs)
    total = time.perf_counter() - start
    print(f"parse: {args.lines / parsed:,.0f} lines/s; parse+rules: {args.lines / total:,.0f} lines/s ({hits} hits)")

    times = pd.date_range("2019-07-10", periods=args.lines // 5, freq="250ms")
    frame = pd.DataFrame(
        {
            "TimeGenerated": times,
            "Command": [d.get("syslog", {}).get("command", d["message"]) for d in docs[: len(times)]],
        }
    )
    strs = frame.assign(TimeGenerated=frame["TimeGenerated"].astype(str))
    start = time.perf_counter()
    ours = risky_cmd_line(strs, log_type="Syslog")
    t_ours = time.perf_counter() - start
    start = time.perf_counter()
    speed = cmd_speed(frame, cmd_field="Command")
    s_ours = time.perf_counter() - start
    try:
        from msticpy.transform import cmd_line as cl
    except ImportError:
        print(f"risky_cmd_line {t_ours:.3f}s, cmd_speed {s_ours:.3f}s (msticpy not installed)")
        return
    start = time.perf_counter()
    ref = cl.risky_cmd_line(strs.copy(), log_type="Syslog")
    t_ref = time.perf_counter() - start
    start = time.perf_counter()
    ref_speed = cl.cmd_speed(frame.copy(), cmd_field="Command")
    s_ref = time.perf_counter() - start
    print(
        f"risky_cmd_line {len(frame)} rows: secstream {t_ours:.3f}s ({len(ours)}), msticpy {t_ref:.3f}s ({len(ref)}), ratio {t_ref / t_ours:.2f}x"
    )
    print(
        f"cmd_speed: secstream {s_ours:.3f}s ({len(speed)}), msticpy {s_ref:.3f}s ({len(ref_speed)}), ratio {s_ref / s_ours:.2f}x"
    )


if __name__ == "__main__":
    main()
