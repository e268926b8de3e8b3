"""A real DNS server (dnsmasq, from Debian's dnsmasq-base) on loopback, answering for the
test zones under `.example` (and any other zone a test names) and nothing else: an unknown
name is NXDOMAIN, a name with other records but not the one asked answers NoAnswer, as an
authoritative server does."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import dns.message
import dns.query
import dns.rcode

from tests.support.clock import real_time_environment
from tests.support.postgres import free_port
from tests.support.processes import stop_process

ZONE = "example"


class DnsUnavailable(RuntimeError):
    """dnsmasq is not installed."""


@dataclass
class DnsServer:
    port: int
    process: subprocess.Popen[bytes]

    @property
    def servers(self) -> str:
        """This server as MAILRAMP_DNS_SERVERS names it."""
        return f"127.0.0.1:{self.port}"

    @classmethod
    def start(
        cls,
        *,
        addresses: Mapping[str, str],
        aliases: Mapping[str, str] | None = None,
        txt: Mapping[str, Sequence[str]] | None = None,
        mx: Mapping[str, Sequence[tuple[int, str]]] | None = None,
        zones: Sequence[str] = (),
    ) -> DnsServer:
        """Serve `addresses` (name → IPv4 address), `aliases` (name → CNAME target; the
        target must be one of `addresses`, dnsmasq serves no other), `txt` (name → its TXT
        records, one each; a value longer than 255 characters is split into strings) and
        `mx` (name → (preference, host)), for `.example` and the other `zones`."""
        binary = shutil.which("dnsmasq") or "/usr/sbin/dnsmasq"
        if not shutil.which(binary):
            raise DnsUnavailable(
                "dnsmasq not found; run scripts/install-services (apt-get install dnsmasq-base)"
            )
        port = free_port()
        records = [f"--host-record={name},{address}" for name, address in addresses.items()]
        records += [f"--cname={name},{target}" for name, target in (aliases or {}).items()]
        for name, values in (txt or {}).items():
            for value in values:
                if "," in value or '"' in value:
                    raise ValueError(f"dnsmasq would split {value!r} at its commas")
                strings = [value[i : i + 255] for i in range(0, len(value), 255)]
                records.append(f"--txt-record={name},{','.join(strings)}")
        for name, hosts in (mx or {}).items():
            records += [f"--mx-host={name},{host},{preference}" for preference, host in hosts]
        records += [f"--local=/{zone}/" for zone in zones]
        process = subprocess.Popen(
            [
                binary,
                "--keep-in-foreground",
                f"--port={port}",
                "--listen-address=127.0.0.1",
                "--bind-interfaces",
                "--no-resolv",
                "--no-hosts",
                "--user=root",
                "--pid-file=",
                f"--local=/{ZONE}/",
                *records,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=real_time_environment(),
        )
        server = cls(port, process)
        deadline = time.monotonic() + 10
        probe = dns.message.make_query(f"nothing.{ZONE}", "A")
        while time.monotonic() < deadline:
            if process.poll() is not None:
                output = process.stdout.read().decode() if process.stdout else ""
                raise RuntimeError(f"dnsmasq exited: {output}")
            try:
                answer = dns.query.udp(probe, "127.0.0.1", port=port, timeout=0.5)
            except (OSError, dns.exception.Timeout):
                time.sleep(0.05)
                continue
            if answer.rcode() == dns.rcode.NXDOMAIN:
                return server
        server.stop()
        raise RuntimeError("dnsmasq did not start answering")

    def stop(self) -> None:
        stop_process(self.process)
