"""MAILRAMP_DNS_SERVERS: what it accepts, and a wrong entry named at start-up."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from mailramp.config import Settings
from mailramp.kit.dns import parse_servers


def test_servers_are_addresses_with_optional_ports() -> None:
    assert parse_servers(None) == []
    assert parse_servers(" 127.0.0.1:5353, 192.0.2.53 ,[::1]:53,[2001:db8::1],") == [
        ("127.0.0.1", 5353),
        ("192.0.2.53", 53),
        ("::1", 53),
        ("2001:db8::1", 53),
    ]


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("dns.example.com", "'dns.example.com' is not an IP address with an optional :port"),
        ("127.0.0.1:domain", "'127.0.0.1:domain' is not an IP address"),
        ("127.0.0.1:70000", "'127.0.0.1:70000': the port must be 1-65535"),
    ],
)
def test_a_wrong_server_is_refused_naming_it(value: str, says: str) -> None:
    with pytest.raises(ValidationError) as caught:
        Settings(dns_servers=value)
    (error,) = caught.value.errors()
    assert error["loc"] == ("dns_servers",)
    assert says in error["msg"]
