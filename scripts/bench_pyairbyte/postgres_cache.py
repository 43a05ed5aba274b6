#!/usr/bin/env python3
"""PyAirbyte's PostgresCache reading replayed faker records into a PostgreSQL server.

Used by scripts/bench-postgres.sh (run with the .venv-pyairbyte interpreter). Times
`source.read(cache=PostgresCache(...))` only; interpreter start, imports and discovery
are outside it. Prints one JSON object: {"tool", "version", "records", "seconds"}.

Usage: postgres_cache.py --records-file F --discover-file D --source-exe S --stream users
                         --host H --port P --user U --password W --database DB --schema S --expect N
"""

from __future__ import annotations

import argparse
import json
import sys
import time


def main() -> int:
    p = argparse.ArgumentParser()
    for name in ("records-file", "discover-file", "source-exe", "stream", "host", "user",
                 "password", "database", "schema"):
        p.add_argument(f"--{name}", required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--expect", type=int, required=True)
    args = p.parse_args()

    import airbyte as ab  # noqa: PLC0415 - only the PyAirbyte venv has it
    from airbyte.caches import PostgresCache  # noqa: PLC0415
    from importlib.metadata import version  # noqa: PLC0415

    source = ab.get_source(
        "source-replay",
        local_executable=args.source_exe,
        config={"records_file": args.records_file, "catalog_file": args.discover_file},
    )
    source.select_streams([args.stream])
    source.get_configured_catalog()
    cache = PostgresCache(host=args.host, port=args.port, username=args.user,
                          password=args.password, database=args.database,
                          schema_name=args.schema)
    start = time.perf_counter()
    result = source.read(cache=cache, force_full_refresh=True)
    seconds = time.perf_counter() - start
    records = result.processed_records
    if records != args.expect:
        print(f"bench: PyAirbyte read {records} records, expected {args.expect}", file=sys.stderr)
        return 1
    print(json.dumps({"tool": "PyAirbyte PostgresCache", "version": version("airbyte"),
                      "records": records, "seconds": seconds}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
