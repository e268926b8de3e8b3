"""Tracking tokens: compact, purpose-bound, tamper-evident, rotatable."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailramp.kit.ids import new_object_id
from mailramp.kit.secrets import generate_key
from mailramp.kit.signing import InvalidToken, Purpose, TokenSigner, derive_tracking_keys

OLD, NEW = generate_key(), generate_key()


def test_tokens_are_compact_and_round_trip() -> None:
    signer = TokenSigner(derive_tracking_keys([OLD]))
    record = new_object_id()
    token = signer.sign(Purpose.CLICK, record, 7)
    assert len(token) == 40 and token.isascii()
    data = signer.verify(token, Purpose.CLICK)
    assert (data.record_id, data.link_index, data.purpose) == (record, 7, Purpose.CLICK)


def test_purposes_are_separate() -> None:
    signer = TokenSigner(derive_tracking_keys([OLD]))
    token = signer.sign(Purpose.OPEN, new_object_id())
    for other in (Purpose.CLICK, Purpose.UNSUBSCRIBE):
        with pytest.raises(InvalidToken):
            signer.verify(token, other)


def test_rotation_keeps_old_links_working_while_the_old_key_is_kept() -> None:
    record = new_object_id()
    old_token = TokenSigner(derive_tracking_keys([OLD])).sign(Purpose.OPEN, record)
    rotated = TokenSigner(derive_tracking_keys([NEW, OLD]))
    assert rotated.verify(old_token, Purpose.OPEN).record_id == record
    new_token = rotated.sign(Purpose.OPEN, record)
    assert new_token != old_token
    with pytest.raises(InvalidToken):
        TokenSigner(derive_tracking_keys([NEW])).verify(old_token, Purpose.OPEN)
    with pytest.raises(InvalidToken):
        TokenSigner(derive_tracking_keys([generate_key()])).verify(new_token, Purpose.OPEN)


@given(garbage=st.text(max_size=80))
def test_garbage_is_never_accepted(garbage: str) -> None:
    signer = TokenSigner(derive_tracking_keys([OLD]))
    with pytest.raises(InvalidToken):
        signer.verify(garbage, Purpose.CLICK)


def test_ip_fingerprints_are_keyed_and_one_way() -> None:
    signer = TokenSigner(derive_tracking_keys([OLD]))
    fingerprint = signer.fingerprint("203.0.113.9")
    assert len(fingerprint) == 16 and set(fingerprint) <= set("0123456789abcdef")
    assert fingerprint == signer.fingerprint("203.0.113.9")
    assert fingerprint != TokenSigner(derive_tracking_keys([NEW])).fingerprint("203.0.113.9")
