"""The fast path of normalize_email agrees with email-validator on every input."""

from __future__ import annotations

import pytest
from email_validator import EmailNotValidError, validate_email
from hypothesis import example, given, settings
from hypothesis import strategies as st

from mailramp.kit.types import normalize_email

LOCAL = st.text(alphabet="abcXYZ019._%+-'\"!", min_size=0, max_size=70)
TLDS = st.sampled_from([".com", ".org", ".test", ".local", "", ".c", ".co.uk", ".invalid", ".io"])


def reference(address: str) -> str | None:
    try:
        return validate_email(address.strip(), check_deliverability=False).normalized.lower()
    except EmailNotValidError:
        return None


def ours(address: str) -> str | None:
    try:
        return normalize_email(address)
    except ValueError:
        return None


@settings(max_examples=600, deadline=None)
@given(local=LOCAL, domain=st.text(alphabet="abcXYZ019.-_", max_size=30), tld=TLDS)
@example(local="a..b", domain="example", tld=".com")
@example(local=".a", domain="example", tld=".com")
@example(local="a" * 65, domain="example", tld=".com")
@example(local="Ann", domain="Example", tld=".COM")
@example(local="bob", domain="-bad", tld=".com")
@example(local="bob", domain="localhost", tld="")
def test_fast_path_agrees_with_email_validator(local: str, domain: str, tld: str) -> None:
    address = f"{local}@{domain}{tld}"
    assert ours(address) == reference(address)


@pytest.mark.parametrize(
    "address", ["Zoë@Example.com", '"quoted"@example.com', "用户@例子.广告", " padded@example.com "]
)
def test_unusual_addresses_take_the_full_path(address: str) -> None:
    assert ours(address) == reference(address)
