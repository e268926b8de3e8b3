"""The only module that imports PyMongo's client: opening a database from a mongodb:// or
mongodb+srv:// URL with the settings every mailramp connection uses."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from mailramp.errors import ConfigurationError

DEFAULT_DATABASE = "mailramp"


def database_name(url: str) -> str:
    """The database the URL's path names (`mongodb://host/NAME`), else `mailramp`."""
    path = urlsplit(url).path.lstrip("/")
    return path.split("/", 1)[0] or DEFAULT_DATABASE


def open_database(url: str, *, max_pool_size: int = 100) -> tuple[Any, Any]:
    """(client, database) for `url`. Dates come back timezone-aware (UTC); UUIDs are not
    stored as BSON binary (campaign_id is a string, as the schema says). A maxPoolSize in
    the URL wins over `max_pool_size`."""
    try:
        from pymongo import AsyncMongoClient
    except ImportError as missing:  # pragma: no cover - pymongo is a dependency
        raise ConfigurationError("MongoDB support needs pymongo>=4.13") from missing
    options: dict[str, Any] = {"tz_aware": True, "uuidRepresentation": "standard"}
    if "maxpoolsize=" not in urlsplit(url).query.lower():
        options["maxPoolSize"] = max_pool_size
    client: Any = AsyncMongoClient(url, **options)
    return client, client[database_name(url)]
