"""`mailramp networks`: the networks of mail proxies and security gateways that tracking
counts as machines (tracking/networks.py), as this installation reads them."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from mailramp.cli.common import JsonOption, command_group, emit, fail, load_settings
from mailramp.errors import ConfigurationError
from mailramp.tracking.networks import SHIPPED, KnownNetworks

networks_app = command_group(
    "The networks of mail proxies and security gateways that tracking counts as machines."
)


@networks_app.command("list")
def networks_list(
    file: Annotated[
        Path | None,
        typer.Option(
            "--file",
            help="Check and list this file instead of the one in use "
            "(MAILRAMP_KNOWN_NETWORKS_FILE, or the shipped list).",
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Each network: who runs it, what its machines do, how many ranges, the date of its
    list and where it was published. Checks the file as start-up does (exit 5, the entry
    named, when it cannot be used) — run it on an edited copy before pointing
    MAILRAMP_KNOWN_NETWORKS_FILE at it.

    Example:

        mailramp networks list --file /etc/mailramp/networks.toml
    """
    path = file or load_settings().known_networks_file or SHIPPED
    try:
        networks = KnownNetworks.load(path)
    except ConfigurationError as error:
        raise fail(error, as_json=as_json) from None
    data: dict[str, Any] = {
        "file": str(path),
        "version": networks.version.isoformat(),
        "ranges": networks.ranges,
        "networks": [
            {
                "operator": network.operator,
                "name": network.name,
                "kind": network.kind.value,
                "ranges": networks.count(network),
                "as_of": network.as_of.isoformat(),
                "source": network.source,
            }
            for network in networks.networks
        ],
    }
    lines = [
        f"{path}: reviewed {data['version']}, {len(networks.networks)} networks, "
        f"{networks.ranges} ranges"
    ] + [
        f"{item['operator']:<28} {item['kind']:<13} {item['ranges']:>4} ranges  "
        f"as of {item['as_of']}  {item['source']}"
        for item in data["networks"]
    ]
    emit(as_json, data, lines)
