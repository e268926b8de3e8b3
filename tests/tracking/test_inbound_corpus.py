"""The classifier on real mail: 301 bounces, complaints, auto-replies and delivery reports
that mail servers sent (`../shared/corpus/inbound`, read in place). The scorecard is
printed (`pytest -s` shows it; docs/tracking.md records it) and must stay above the bar a
sender's reputation needs."""

from __future__ import annotations

import pytest

from tests.support.inbound_corpus import CORPUS, Scorecard, score, table


@pytest.fixture(scope="module")
def card() -> Scorecard:
    if not (CORPUS / "expected.tsv").exists():
        pytest.fail(f"the inbound corpus is missing: {CORPUS} (set MAILRAMP_INBOUND_CORPUS)")
    scorecard = score()
    print("\n" + table(scorecard))
    return scorecard


def test_no_message_crashes_the_classifier(card: Scorecard) -> None:
    assert card.crashes == 0, card.misses


def test_bounces_are_recognised_with_their_recipient_and_class(card: Scorecard) -> None:
    assert card.bounces == 290
    assert card.bounces_recognised / card.bounces >= 0.97, card.misses
    assert card.recipient_right / card.recipients >= 0.95, card.misses
    # Permanent or transient: what decides whether the address is suppressed.
    assert card.status_class_right / card.recipients >= 0.93, card.misses


def test_every_complaint_and_auto_reply_is_recognised(card: Scorecard) -> None:
    assert card.messages["feedback-report"] == 5
    assert card.recognised["feedback-report"] == 5, card.misses
    assert card.messages["auto-reply"] == 3
    assert card.recognised["auto-reply"] == 3, card.misses


def test_no_delivery_report_counts_as_a_bounce(card: Scorecard) -> None:
    assert card.messages["delivered-dsn"] == 3
    assert card.recognised["delivered-dsn"] == 3, card.misses
