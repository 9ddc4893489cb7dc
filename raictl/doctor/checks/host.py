"""Host checks: the IPv6 loopback, what `localhost` means here, and net.ipv6.bindv6only (log steps 0, 4, 26)."""

from __future__ import annotations

import errno
import ipaddress
import socket
from pathlib import Path

from raictl.doctor.registry import check

HOSTS_FILE = Path("/etc/hosts")
BINDV6ONLY = Path("/proc/sys/net/ipv6/bindv6only")


def localhost_addresses(port: int = 0) -> list[str]:
    """The addresses `localhost` resolves to, in the order a client tries them (getaddrinfo)."""
    try:
        infos = socket.getaddrinfo("localhost", port, type=socket.SOCK_STREAM)
    except socket.gaierror:
        return []
    seen: list[str] = []
    for *_, sockaddr in infos:
        if sockaddr[0] not in seen:
            seen.append(sockaddr[0])
    return seen


def hosts_file_entries(path: Path = HOSTS_FILE, name: str = "localhost") -> list[tuple[int, str]]:
    """(line number, address) of every line of /etc/hosts that maps `name`."""
    entries = []
    for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
        fields = line.split("#", 1)[0].split()
        if len(fields) >= 2 and name in fields[1:]:
            entries.append((number, fields[0]))
    return entries


@check("host.ipv6_loopback", "IPv6 loopback available", needs_settings=False)
def ipv6_loopback(ctx):
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as sock:
            sock.bind(("::1", 0))
    except OSError as exc:
        if exc.errno in (errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT):
            return ctx.fail(f"::1 cannot be bound here ({exc.strerror}): IPv6 is off on the loopback",
                            hint="enable it (sysctl net.ipv6.conf.lo.disable_ipv6=0), or set "
                                 "RAI_API_HOSTS=127.0.0.1 and LLM_API_HOSTS=127.0.0.1 and use 127.0.0.1 in clients")
        raise
    return ctx.ok("::1 can be bound")


@check("host.localhost", "/etc/hosts maps localhost", needs_settings=False)
def localhost_mapping(ctx):
    order = localhost_addresses()
    try:
        entries = hosts_file_entries()
    except OSError as exc:
        return ctx.warn(f"{HOSTS_FILE} cannot be read ({exc.strerror}); localhost -> {', '.join(order) or 'nothing'}")
    details = [f"{HOSTS_FILE}:{n}: {addr} localhost" for n, addr in entries]
    if not order:
        return ctx.fail("localhost does not resolve", hint=f"add `127.0.0.1 localhost` and `::1 localhost` to {HOSTS_FILE}")
    foreign = [a for a in order if not ipaddress.ip_address(a.split("%")[0]).is_loopback]
    if foreign:
        return ctx.fail(f"localhost resolves to {', '.join(foreign)}, which is not a loopback address",
                        hint=f"map localhost to 127.0.0.1 and ::1 in {HOSTS_FILE}", details=details)
    if not entries:
        return ctx.warn(f"{HOSTS_FILE} does not map localhost (the resolver answers {', '.join(order)})",
                        hint=f"add `127.0.0.1 localhost` and `::1 localhost` to {HOSTS_FILE}", details=details)
    return ctx.ok(f"localhost -> {', '.join(order)} (a client tries them in this order)", details=details)


@check("host.bindv6only", "net.ipv6.bindv6only", needs_settings=False)
def bindv6only(ctx):
    try:
        value = BINDV6ONLY.read_text().strip()
    except OSError:
        return ctx.skip("net.ipv6.bindv6only is not available on this system")
    if value == "1":
        return ctx.ok("1: a listener on `::` takes IPv6 only; raictl binds 127.0.0.1 and ::1 explicitly, so "
                      "this does not matter to it")
    return ctx.ok(f"{value}: a listener on `::` also takes IPv4 unless it sets IPV6_V6ONLY (waitress does); "
                  "raictl binds 127.0.0.1 and ::1 explicitly")
