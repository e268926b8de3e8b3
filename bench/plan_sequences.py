"""Planning a sequence: 100,000 recipients x 3 steps x 5 mailboxes (weekdays 9-17 in New
York, follow-ups 3 and 4 sending days apart), seconds and peak Python memory, against a
baseline measured in the same run: the one-step planner spreading the same 300,000 emails
over one mailbox with the five's daily limit (times only: no mailbox choice, no follow-up
booking).

    .venv/bin/python -m bench.plan_sequences [--recipients 100000]
"""

from __future__ import annotations

import argparse
import time
import tracemalloc
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from mailramp.campaigns.models import SendingWindow
from mailramp.campaigns.planner import PlanRequest, plan
from mailramp.campaigns.sequencing import (
    SenderCapacity,
    SequenceRequest,
    StepDelay,
    plan_sequences,
)

START = datetime(2027, 3, 1, 14, 0, tzinfo=UTC)
WINDOW = SendingWindow(days=(0, 1, 2, 3, 4), start_hour=9, end_hour=17, timezone="America/New_York")
MAILBOXES = 5
DAILY_LIMIT = 2_000
DAYS = 60


def measured(work: Callable[[], Any]) -> tuple[float, float, Any]:
    """Seconds (without tracing) and peak traced MiB (a second, traced run) of `work`."""
    started = time.perf_counter()
    result = work()
    seconds = time.perf_counter() - started
    tracemalloc.start()
    work()
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    return seconds, peak, result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--recipients", type=int, default=100_000)
    args = parser.parse_args()
    end = START + timedelta(days=DAYS)
    sequence = SequenceRequest(
        start=START,
        end=end,
        recipients=args.recipients,
        follow_ups=(StepDelay(days=3), StepDelay(days=4)),
        mailboxes=tuple(SenderCapacity(f"m{n}", DAILY_LIMIT) for n in range(MAILBOXES)),
        window=WINDOW,
        seed="bench",
    )
    emails = args.recipients * 3
    single = PlanRequest(
        start=START,
        end=end,
        count=emails,
        daily_limit=DAILY_LIMIT * MAILBOXES,
        window=WINDOW,
        seed="bench",
    )
    base_seconds, base_peak, _ = measured(lambda: plan(single))
    seconds, peak, result = measured(lambda: plan_sequences(sequence))
    assert len(result.recipients) == args.recipients
    print(f"baseline  one step, {emails:,} emails: {base_seconds:.2f} s, peak {base_peak:.0f} MiB")
    print(
        f"sequences {args.recipients:,} recipients × 3 steps × {MAILBOXES} mailboxes: "
        f"{seconds:.2f} s, peak {peak:.0f} MiB, {emails / seconds:,.0f} emails/s"
    )
    print(f"ratio: {seconds / base_seconds:.1f}× the baseline's time")


if __name__ == "__main__":
    main()
