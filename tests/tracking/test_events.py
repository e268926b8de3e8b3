"""The event-kind registry is the one place event kinds are described: what it says holds
together, and the parts of mailramp that count events read it."""

from __future__ import annotations

from mailramp.metrics.models import COUNTERS
from mailramp.observability import Telemetry
from mailramp.suppression.models import SuppressionReason
from mailramp.tracking.events import (
    COUNTED_BY,
    EVENT_KINDS,
    EVENT_SOURCES,
    FIRST_FIELDS,
    HARD_BOUNCE,
    SOFT_BOUNCE,
)
from mailramp.tracking.inbound import InboundKind
from mailramp.tracking.models import EVENT_TIMESTAMPS, EmailTracking


def test_every_timestamp_and_counter_the_registry_names_exists() -> None:
    assert set(FIRST_FIELDS) == set(EVENT_TIMESTAMPS)
    assert set(EVENT_TIMESTAMPS) <= set(EmailTracking.model_fields)
    assert set(COUNTED_BY) <= set(COUNTERS)
    for kind in EVENT_KINDS.values():
        for field, counter in {**kind.firsts, **kind.human_firsts}.items():
            assert COUNTED_BY[counter] == field, kind.name


def test_what_suppresses_and_what_stops_a_sequence() -> None:
    suppressing = {name: kind.suppresses for name, kind in EVENT_KINDS.items() if kind.suppresses}
    assert suppressing == {
        "unsubscribe": SuppressionReason.UNSUBSCRIBED,
        "hard_bounce": SuppressionReason.BOUNCED,
        "complaint": SuppressionReason.COMPLAINED,
    }
    stopping = {name for name, kind in EVENT_KINDS.items() if kind.stops_sequence}
    assert stopping == {"reply", "unsubscribe", "hard_bounce", "complaint", "stopped"}
    # A soft bounce is a bounce in the counters, but the address stays sendable.
    assert SOFT_BOUNCE.type is HARD_BOUNCE.type and SOFT_BOUNCE.suppresses is None


def test_every_kind_the_inbox_recognises_is_registered() -> None:
    # Unrelated mail and the warm-up pool's emails record nothing.
    recognised = {kind.value for kind in InboundKind} - {
        InboundKind.UNRELATED.value,
        InboundKind.WARMUP.value,
    }
    assert recognised <= set(EVENT_KINDS)
    for name in recognised:
        assert "inbox" in EVENT_KINDS[name].sources
        assert "sent_at" in EVENT_KINDS[name].firsts  # proves an uncertain email left


def test_telemetry_shows_every_registered_event_and_source_from_the_start() -> None:
    exposition = Telemetry().registry
    samples = {
        (sample.labels["event"], sample.labels["source"])
        for metric in exposition.collect()
        if metric.name == "mailramp_tracking_events"
        for sample in metric.samples
        if sample.name.endswith("_total")
    }
    expected = {
        (event.value, source) for event, sources in EVENT_SOURCES.items() for source in sources
    }
    assert samples == expected
    assert ("bounce", "inbox") in samples and ("open", "machine") in samples
    assert ("reply", "manual") in samples and ("stopped", "manual") in samples
