"""`mailramp networks list`: the known networks of mail proxies and security gateways as an
operator checks them — the shipped list, their own copy, and a copy with a mistake, which
is refused (exit 5, the entry named) here and at start-up alike."""

from __future__ import annotations

import json
from pathlib import Path

from mailramp.tracking.networks import SHIPPED
from tests.support.processes import clean_environment, run_mailramp

OWN = """
version = 2026-12-05

[[network]]
name = "Our mail gateway"
operator = "our_gateway"
kind = "link_scanner"
source = "https://intranet.example/gateway-ranges"
as_of = 2026-12-01
ranges = ["198.51.100.0/24", "2001:db8:77::/48"]
"""


def test_the_shipped_list_with_each_source_and_date(tmp_path: Path) -> None:
    listed = run_mailramp("networks", "list", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    first, *rows = listed.stdout.splitlines()
    assert first.startswith(f"{SHIPPED}: reviewed 20") and "networks" in first
    operators = {row.split()[0] for row in rows}
    assert {"apple", "microsoft", "mimecast", "proofpoint"} <= operators
    assert all(" as of 20" in row and "https://" in row for row in rows)
    data = json.loads(run_mailramp("networks", "list", "--json", cwd=tmp_path).stdout)
    assert data["ranges"] == sum(network["ranges"] for network in data["networks"]) >= 20
    apple = next(n for n in data["networks"] if n["operator"] == "apple")
    assert (apple["kind"], apple["ranges"]) == ("image_proxy", 1)


def test_an_operators_own_copy_is_checked_and_used(tmp_path: Path) -> None:
    own = tmp_path / "networks.toml"
    own.write_text(OWN)
    environment = clean_environment(MAILRAMP_KNOWN_NETWORKS_FILE=str(own))
    listed = run_mailramp("networks", "list", "--json", cwd=tmp_path, env=environment)
    assert listed.returncode == 0, listed.stderr
    data = json.loads(listed.stdout)
    assert (data["file"], data["version"], data["ranges"]) == (str(own), "2026-12-05", 2)
    assert [n["operator"] for n in data["networks"]] == ["our_gateway"]


def test_a_copy_with_a_mistake_is_refused_naming_the_entry(tmp_path: Path) -> None:
    broken = tmp_path / "networks.toml"
    broken.write_text(OWN.replace("198.51.100.0/24", "198.51.100.7/24"))
    checked = run_mailramp("networks", "list", "--file", str(broken), cwd=tmp_path)
    assert checked.returncode == 5 and checked.stdout == ""
    expected = f"error: {broken}: network 1: range '198.51.100.7/24' is not a network"
    assert checked.stderr.startswith(expected), checked.stderr
    # Start-up refuses it the same way: nothing runs on a half-read list.
    environment = clean_environment(MAILRAMP_KNOWN_NETWORKS_FILE=str(broken))
    started = run_mailramp("db", "upgrade", cwd=tmp_path, env=environment)
    refused = run_mailramp("campaign", "list", "--user", "a", cwd=tmp_path, env=environment)
    assert started.returncode == 0, started.stderr  # the schema needs no tracking rules
    assert refused.returncode == 5 and expected in refused.stderr, refused.stderr
