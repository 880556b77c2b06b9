#!/usr/bin/env python3
"""Cost of address rules: N blocking TCP connects, and N UDP sends, to loopback, natively and
under the supervisor (kernel-decided, allowed by address = performed by the supervisor, denied by
address). The target times its own loop (tests/targets/netops.c: bench_connect4, bench_sendto4);
the figure is the best of --repeat runs, in µs per call.

    .venv/bin/python bench/net.py [-n 2000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SUPERVISOR = Path(sys.prefix) / "bin" / "seccomp-supervisor"
NETOPS = ROOT / "bench" / "bin" / "netops"


def build() -> None:
    src = ROOT / "tests" / "targets" / "netops.c"
    if not NETOPS.exists() or NETOPS.stat().st_mtime < src.stat().st_mtime:
        NETOPS.parent.mkdir(exist_ok=True)
        subprocess.run(["cc", "-O2", "-pthread", "-o", str(NETOPS), str(src)], check=True)


def run(cmd: list[str], policy: Path | None) -> float | None:
    if policy is not None:
        cmd = [str(SUPERVISOR), "--log-file", "/dev/null", "run", "-p", str(policy), "--", *cmd]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600).stdout.strip()
    if not out.startswith("OK:"):
        return None
    return float(out[3:].split(",")[0]) / 1000


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=2000)
    ap.add_argument("--repeat", type=int, default=3)
    opts = ap.parse_args()
    build()
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4096)
    tcp = str(listener.getsockname()[1])

    def accept() -> None:
        while True:
            conn, _ = listener.accept()
            conn.close()

    threading.Thread(target=accept, daemon=True).start()
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink.bind(("127.0.0.1", 0))
    udp = str(sink.getsockname()[1])

    def drain() -> None:
        while True:
            sink.recv(65536)

    threading.Thread(target=drain, daemon=True).start()
    tmp = Path(tempfile.mkdtemp(prefix="sv-bench-net-"))
    policies: dict[str, Path | None] = {"native": None}
    for key, body in {
        "kernel-decided": '[[rule]]\nsyscalls = ["mkdir"]\naction = "deny"\n',
        "allowed by address (performed)": '[[rule]]\naddress = ["127.0.0.1"]\naction = "allow"\n',
        "denied by address": '[[rule]]\naddress = ["127.0.0.1"]\naction = "deny"\n',
    }.items():
        path = tmp / f"{len(policies)}.toml"
        path.write_text('default = "allow"\n' + body)
        policies[key] = path
    n = str(opts.n)
    for what, op, port in (
        ("TCP connect", "bench_connect4", tcp),
        ("UDP sendto", "bench_sendto4", udp),
    ):
        for key, policy in policies.items():
            figures = [
                run([str(NETOPS), op, "127.0.0.1", port, n], policy) for _ in range(opts.repeat)
            ]
            good = [f for f in figures if f is not None]
            shown = f"{min(good):8.1f} µs" if good else "  failed"
            print(f"{what:12s} {key:32s} {shown}  (best of {opts.repeat}, N={n})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
