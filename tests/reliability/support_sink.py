"""A recording SMTP sink in a process of its own, for the reliability tests.

It is tests/scale/sink.py's recorder (envelope recipients, Message-ID and tracking URLs of
every message) with three differences the fault tests need:

- each delivery is appended to the output file, with the time, as it is accepted, so the
  test can count deliveries while the run goes on, and whatever crashes around it, the file
  holds what arrived;
- `--delay SECONDS` before answering DATA, so a run lasts long enough for faults to land
  mid-send;
- `--refuse FILE` names addresses (one a line) refused at RCPT with 550, i.e. bounces.

    python -m tests.reliability.support_sink PORT OUTPUT.jsonl [--delay S] [--refuse FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult

from tests.scale import sink as scale_sink
from tests.support.postgres import free_port

REPOSITORY = Path(__file__).resolve().parents[2]


class LiveRecordingSink(scale_sink.RecordingSink):
    """Records like the scale sink, writing each delivery at once."""

    def __init__(self, output: TextIO, *, delay: float, refused: set[str]) -> None:
        super().__init__()
        self.output = output
        self.delay = delay
        self.refused = refused

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: Any
    ) -> str:
        if address in self.refused:
            return "550 5.1.1 No such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.delay:
            await asyncio.sleep(self.delay)
        reply = await super().handle_DATA(server, session, envelope)
        with self.lock:
            entry = self.received[-1]
            entry["at"] = time.time()
            self.output.write(json.dumps(entry) + "\n")
            self.output.flush()
        return reply


def _accept(*_: Any) -> AuthResult:
    return AuthResult(success=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("port", type=int)
    parser.add_argument("output")
    parser.add_argument("--delay", type=float, default=0.0)
    parser.add_argument("--refuse")
    arguments = parser.parse_args()
    # aiosmtpd logs a warning about its own use of a deprecated attribute on every login.
    logging.getLogger("mail.log").setLevel(logging.ERROR)
    refused = set()
    if arguments.refuse:
        refused = set(Path(arguments.refuse).read_text().split())
    with open(arguments.output, "w", encoding="utf-8") as output:
        handler = LiveRecordingSink(output, delay=arguments.delay, refused=refused)
        controller = Controller(
            handler,
            hostname="127.0.0.1",
            port=arguments.port,
            auth_require_tls=False,
            authenticator=_accept,
        )
        controller.start()
        print("ready", flush=True)
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        stop.wait()
        controller.stop()
        with handler.lock:
            count = len(handler.received)
    print(count, flush=True)


# -- the test's side -----------------------------------------------------------------------


@dataclass(frozen=True)
class Delivery:
    """One message as the sink received it."""

    recipients: list[str]
    message_id: str | None
    urls: list[str]
    at: float
    """When it was accepted (seconds since the epoch)."""


class Sink:
    """The sink as a process; `deliveries()` reads what arrived so far."""

    def __init__(
        self,
        directory: Path,
        *,
        delay: float = 0.0,
        refuse: set[str] | frozenset[str] = frozenset(),
    ) -> None:
        self.port = free_port()
        self.output = directory / "sink.jsonl"
        command = [sys.executable, "-m", "tests.reliability.support_sink"]
        command += [str(self.port), str(self.output), "--delay", str(delay)]
        if refuse:
            refused = directory / "refused.txt"
            refused.write_text("\n".join(sorted(refuse)) + "\n")
            command += ["--refuse", str(refused)]
        self.process = subprocess.Popen(command, cwd=REPOSITORY, stdout=subprocess.PIPE, text=True)
        assert self.process.stdout is not None
        line = self.process.stdout.readline().strip()
        assert line == "ready", f"the SMTP sink did not start: {line!r}"

    def count(self) -> int:
        """Deliveries so far."""
        with self.output.open("rb") as handle:
            return sum(1 for _ in handle)

    def deliveries(self) -> list[Delivery]:
        """Every complete delivery so far."""
        text = self.output.read_text(encoding="utf-8")
        return [Delivery(**json.loads(line)) for line in text.splitlines() if line.endswith("}")]

    def stop(self) -> list[Delivery]:
        """Stop it (checking it did not die on the way); everything it received."""
        if self.process.poll() is not None:
            raise AssertionError(f"the SMTP sink died with code {self.process.returncode}")
        self.process.send_signal(signal.SIGTERM)
        out, _ = self.process.communicate(timeout=60)
        deliveries = self.deliveries()
        assert int(out.strip().splitlines()[-1]) == len(deliveries)
        return deliveries

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()


def duplicates(deliveries: list[Delivery]) -> tuple[dict[str, int], dict[str, int]]:
    """Recipients, and Message-IDs, that arrived more than once (with their counts)."""
    per_recipient = Counter(address for d in deliveries for address in d.recipients)
    per_message_id = Counter(d.message_id or "(none)" for d in deliveries)
    return (
        {address: n for address, n in per_recipient.items() if n > 1},
        {message_id: n for message_id, n in per_message_id.items() if n > 1},
    )


def wait_for(condition: Any, *, within: float, interval: float = 0.1) -> float:
    """Poll `condition()` until true; the seconds it took (AssertionError after `within`)."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > within:
            raise AssertionError(f"not true within {within:.0f} s: {condition}")
        time.sleep(interval)
    return time.monotonic() - started


if __name__ == "__main__":
    main()
