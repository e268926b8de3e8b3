"""The only module that imports PyMongo's client: opening a database from a mongodb:// or
mongodb+srv:// URL with the settings every mailramp connection uses."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from mailramp.errors import ConfigurationError

DEFAULT_DATABASE = "mailramp"

# Set on every client unless the URL names the option itself (the operator's choice wins):
# an election or a lost node costs a bounded wait, then DatabaseUnavailableError
# (storage/mongo/guard.py), instead of PyMongo's 30 s server selection per call.
TIMEOUTS_MS = {
    "serverSelectionTimeoutMS": 10_000,  # no primary (an election takes ~10 s)
    "connectTimeoutMS": 5_000,  # a new connection
    "socketTimeoutMS": 60_000,  # one operation's answer on an open connection
    "waitQueueTimeoutMS": 10_000,  # a connection from a pool that is all in use
}
LONG_OPERATION_SECONDS = 3600
"""The budget (`pymongo.timeout`) of what may rightly take long: a migration building
indexes over existing data, a recount of a large campaign's event log."""

WTIMEOUT_MS = 10_000
"""How long a write waits for its majority before it is an outage."""

DEFAULT_WRITE_CONCERN = "majority"
"""Every write of the adapter, whatever the URL's `w=`: a write acknowledged by the primary
alone can be rolled back by a failover — a lease or a `sending` mark lost lets a second
worker send the email again; an outcome, a suppression or an event lost is lost for good.
MongoDB 5.0+ defaults to majority itself on a replica set without arbiters (MAILRAMP_
MONGODB_WRITE_CONCERN chooses otherwise, knowingly; docs/deployment.md)."""


def database_name(url: str) -> str:
    """The database the URL's path names (`mongodb://host/NAME`), else `mailramp`."""
    path = urlsplit(url).path.lstrip("/")
    return path.split("/", 1)[0] or DEFAULT_DATABASE


def open_database(url: str, *, max_pool_size: int = 100) -> tuple[Any, Any]:
    """(client, database) for `url`. Dates come back timezone-aware (UTC); UUIDs are not
    stored as BSON binary (campaign_id is a string, as the schema says). A maxPoolSize in
    the URL wins over `max_pool_size`, and any of TIMEOUTS_MS the URL sets wins too.
    Opening connects nothing: the first operation does."""
    try:
        from pymongo import AsyncMongoClient
    except ImportError as missing:  # pragma: no cover - pymongo is a dependency
        raise ConfigurationError("MongoDB support needs pymongo>=4.13") from missing
    options: dict[str, Any] = {"tz_aware": True, "uuidRepresentation": "standard"}
    given = _option_names(url)
    if "maxpoolsize" not in given:
        options["maxPoolSize"] = max_pool_size
    options.update({name: ms for name, ms in TIMEOUTS_MS.items() if name.lower() not in given})
    client: Any = AsyncMongoClient(url, **options)
    return client, client[database_name(url)]


def _option_names(url: str) -> set[str]:
    """The (lower-cased) names of the options in the URL's query string."""
    query = urlsplit(url).query
    return {part.split("=", 1)[0].strip().lower() for part in query.split("&") if part}
