"""The inbound classifier on the real corpus (`../shared/corpus/inbound`, read in place):
what it recognises, per expected kind (the scorecard of tests/tracking/
test_inbound_corpus.py), and how fast it classifies, against parsing the same messages
with the standard library alone (the floor any classifier pays).

    .venv/bin/python -m bench.inbound [--corpus DIR] [--messages 10000]
"""

from __future__ import annotations

import argparse
import time
from email import message_from_bytes, policy
from pathlib import Path

from tests.support.inbound_corpus import CORPUS, expected, score, table

from mailramp.tracking.inbound import classify_inbound


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--corpus", type=Path, default=CORPUS)
    parser.add_argument("--messages", type=int, default=10_000)
    arguments = parser.parse_args()
    print(f"corpus: {arguments.corpus}")
    print(table(score(arguments.corpus)))

    messages = [(arguments.corpus / name).read_bytes() for name in expected(arguments.corpus)]
    batch = [messages[i % len(messages)] for i in range(arguments.messages)]
    megabytes = sum(len(message) for message in batch) / 1e6
    started = time.perf_counter()
    for message in batch:
        message_from_bytes(message, policy=policy.compat32)
    baseline = len(batch) / (time.perf_counter() - started)
    started = time.perf_counter()
    for message in batch:
        classify_inbound(message)
    rate = len(batch) / (time.perf_counter() - started)
    print(f"messages: {len(batch):,} ({megabytes:.1f} MB)")
    print(f"parse only (stdlib email, compat32; baseline): {baseline:,.0f} messages/s")
    print(f"classify_inbound: {rate:,.0f} messages/s ({rate / baseline:.2f} x the baseline)")


if __name__ == "__main__":
    main()
