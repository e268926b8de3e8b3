"""Importing 100,000 recipients from CSV: rows per second and peak Python memory, on SQLite
and PostgreSQL, against a baseline measured in the same run: the stdlib csv module merely
reading the same file (no validation, no database).

    .venv/bin/python -m bench.import_recipients [--rows 100000] [--backends sqlite,postgresql]
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import tempfile
import time
import tracemalloc
from pathlib import Path

from tests.support.postgres import PostgresServer
from tests.support.scenario import bench_campaign

from mailramp.config import Settings
from mailramp.kit.secrets import generate_key
from mailramp.runtime import open_runtime


def write_csv(path: Path, rows: int) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["email", "first_name", "company", "city"])
        for n in range(rows):
            writer.writerow(
                [f"person{n}@example{n % 97}.com", f"Name{n}", f"Company {n % 500}", "Lisbon"]
            )


def baseline(path: Path) -> float:
    started = time.perf_counter()
    with path.open(newline="") as handle:
        count = sum(1 for _ in csv.reader(handle)) - 1
    return count / (time.perf_counter() - started)


async def mailramp_import(database_url: str, path: Path, rows: int) -> tuple[float, float]:
    runtime = await open_runtime(
        Settings(database_url=database_url, encryption_keys=generate_key())
    )
    try:
        user, _, campaign = await bench_campaign(
            runtime,
            campaign_name="Import bench",
            subject="Hi {{first_name}}",
            message="Hello from {{company|us}}",
            duration=24 * 14,
        )
        tracemalloc.start()
        started = time.perf_counter()
        with path.open("rb") as stream:
            report = await runtime.sending.import_recipients(
                user.user_id, campaign.campaign_id, stream
            )
        elapsed = time.perf_counter() - started
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        assert report.accepted == rows and report.total_recipients == rows, report.summary()
        return rows / elapsed, peak / 2**20
    finally:
        await runtime.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--backends", default="sqlite,postgresql")
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "recipients.csv"
        write_csv(path, arguments.rows)
        size = path.stat().st_size / 2**20
        reading = baseline(path)
        print(f"{arguments.rows} rows, {size:.1f} MiB file")
        print(f"baseline: csv.reader only            {reading:10.0f} rows/s")
        postgres = None
        try:
            for backend in arguments.backends.split(","):
                if backend == "sqlite":
                    url = f"sqlite:///{directory}/bench.db"
                else:
                    postgres = PostgresServer.start()
                    url = postgres.admin_url
                rate, peak = asyncio.run(mailramp_import(url, path, arguments.rows))
                print(
                    f"mailramp import on {backend:10s}        {rate:10.0f} rows/s "
                    f"= {rate / reading:.3f} x baseline; peak Python memory {peak:.1f} MiB "
                    f"({peak / size:.2f} x the file)"
                )
        finally:
            if postgres is not None:
                postgres.stop()


if __name__ == "__main__":
    main()
