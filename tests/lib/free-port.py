#!/usr/bin/env python3
"""Prints a TCP port that is free on this machine, for test and benchmark servers.

Usage: free-port.py [LEDGER]

The port is picked below the kernel's ephemeral range (net.ipv4.ip_local_port_range), so no
outgoing connection can take it as its source port in the moment between this check and the
server's own bind; asking the kernel for port 0 instead hands out exactly such ports. With a
LEDGER file, ports it lists are skipped and the one printed is appended, so the servers of one
run never get the same port.
"""

import random
import socket
import sys


def ephemeral_low():
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def bindable(port):
    for host in ("127.0.0.1", "0.0.0.0"):
        with socket.socket() as s:
            try:
                s.bind((host, port))
            except OSError:
                return False
    return True


def main():
    ledger = sys.argv[1] if len(sys.argv) > 1 else None
    used = set()
    if ledger:
        try:
            with open(ledger) as f:
                used = {int(line) for line in f if line.strip().isdigit()}
        except FileNotFoundError:
            pass
    high = ephemeral_low() - 1
    low = max(1024, min(10000, high - 2000))
    port = None
    for _ in range(500 if low <= high else 0):
        candidate = random.randint(low, high)
        if candidate not in used and bindable(candidate):
            port = candidate
            break
    if port is None:
        with socket.socket() as s:  # a crowded machine: fall back to the kernel's choice
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
    if ledger:
        with open(ledger, "a") as f:
            f.write(f"{port}\n")
    print(port)


if __name__ == "__main__":
    main()
