"""The inbound classifier on the real corpus (`../shared/corpus/inbound`, read in place):
how many bounces, complaints and auto-replies it recognises, per expected kind, and how
fast it classifies, against parsing the same messages with the standard library alone.

    .venv/bin/python -m bench.inbound [--corpus DIR] [--messages 10000]
"""

from __future__ import annotations

import argparse
import csv
import time
from collections import Counter, defaultdict
from email import message_from_bytes, policy
from pathlib import Path

from mailramp.tracking.inbound import InboundKind, classify_inbound

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT.parent / "shared" / "corpus" / "inbound"

# What each expected kind should be classified as.
WANTED = {
    "hard": {InboundKind.HARD_BOUNCE, InboundKind.SOFT_BOUNCE},
    "soft": {InboundKind.HARD_BOUNCE, InboundKind.SOFT_BOUNCE},
    "auto-reply": {InboundKind.AUTO_REPLY},
    "feedback-report": set(),  # no complaint kind yet (issue 19)
    "delivered-dsn": {InboundKind.UNRELATED, InboundKind.DELAYED},
}


def expected(corpus: Path) -> dict[str, tuple[str, str]]:
    """file → (kind, status of its first failed recipient)."""
    rows: dict[str, tuple[str, str]] = {}
    with (corpus / "expected.tsv").open(newline="") as table:
        for row in csv.DictReader(table, delimiter="\t"):
            rows.setdefault(row["file"], (row["kind"], row["status"]))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--corpus", type=Path, default=CORPUS)
    parser.add_argument("--messages", type=int, default=10_000)
    arguments = parser.parse_args()
    verdicts = expected(arguments.corpus)
    raw = {name: (arguments.corpus / name).read_bytes() for name in verdicts}

    seen: Counter[str] = Counter()
    recognised: Counter[str] = Counter()
    status_class: Counter[str] = Counter()
    crashes = 0
    got: dict[str, Counter[str]] = defaultdict(Counter)
    for name, (kind, status) in verdicts.items():
        seen[kind] += 1
        try:
            inbound = classify_inbound(raw[name])
        except Exception:
            crashes += 1
            continue
        got[kind][inbound.kind.value] += 1
        if inbound.kind in WANTED[kind]:
            recognised[kind] += 1
        if inbound.status and status and inbound.status[:1] == status[:1]:
            status_class[kind] += 1

    print(f"corpus: {arguments.corpus} ({len(verdicts)} messages)")
    print(f"{'expected':<16}{'messages':>9}{'recognised':>12}{'status class':>14}  classified as")
    for kind in sorted(seen):
        share = 100 * recognised[kind] / seen[kind]
        spread = ", ".join(f"{name} {count}" for name, count in got[kind].most_common())
        print(
            f"{kind:<16}{seen[kind]:>9}{recognised[kind]:>7} {share:5.1f}%"
            f"{status_class[kind]:>14}  {spread}"
        )
    print(f"crashes: {crashes}")

    messages = [raw[name] for name in verdicts]
    batch = [messages[i % len(messages)] for i in range(arguments.messages)]
    started = time.perf_counter()
    for message in batch:
        message_from_bytes(message, policy=policy.default)
    baseline = len(batch) / (time.perf_counter() - started)
    started = time.perf_counter()
    for message in batch:
        try:
            classify_inbound(message)
        except Exception:
            continue
    rate = len(batch) / (time.perf_counter() - started)
    print(f"parse only (stdlib email, baseline): {baseline:,.0f} messages/s")
    print(f"classify_inbound: {rate:,.0f} messages/s ({rate / baseline:.2f} x the baseline)")


if __name__ == "__main__":
    main()
