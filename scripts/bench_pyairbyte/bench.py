#!/usr/bin/env python3
"""Helpers for scripts/bench-pyairbyte.sh (see the header there).

Subcommands (each writes exactly one JSON object to stdout, or to `--out FILE` given before
the subcommand; a failure exits non-zero with a one-line `bench: ...` reason on stderr):

  catalog   DISCOVER_JSONL STREAM OUT_CATALOG
            Turn `source-faker discover` output into a configured catalog holding only
            STREAM (full_refresh / append).
  pyairbyte --records-file F --discover-file D --source-exe S --dest-exe E --dest-config J --expect N
            Time PyAirbyte's `destination.write(source, cache=False, state_cache=False)`
            (run it with the .venv-pyairbyte interpreter).
  airlock   --airlock A --dest-exe E --dest-config J --catalog K --records-file F --expect N
            Time the whole `airlock write ... --no-state --json` process.
  dest-alone --dest-exe E --dest-config J --catalog K --records-file F
            Reference only: time the destination by itself (`write` with the file as stdin).
            No host can beat it, so it bounds the reachable ratio.
  report    PYAIRBYTE_JSON AIRLOCK_JSON [DEST_ALONE_JSON]
            Print the comparison table and, last, one JSON line.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path


class BenchError(Exception):
    """A step failed; the message is the one-line reason."""


def cmd_catalog(args: argparse.Namespace) -> dict:
    catalog = None
    for line in Path(args.discover).read_text(encoding="utf-8").splitlines():
        try:
            msg = json.loads(line)
        except json.JSONDecodeError:
            continue
        if msg.get("type") == "CATALOG":
            catalog = msg["catalog"]
    if catalog is None:
        raise BenchError(f"no CATALOG message in {args.discover}")
    streams = [s for s in catalog["streams"] if s["name"] == args.stream]
    if not streams:
        raise BenchError(f"stream {args.stream!r} not in the discovered catalog")
    configured = {
        "streams": [
            {"stream": streams[0], "sync_mode": "full_refresh", "destination_sync_mode": "append"}
        ]
    }
    Path(args.out_catalog).write_text(json.dumps(configured), encoding="utf-8")
    return {"catalog": args.out_catalog, "stream": args.stream}


def cmd_pyairbyte(args: argparse.Namespace) -> dict:
    import airbyte as ab  # noqa: PLC0415 - only the PyAirbyte venv has it
    from airbyte.strategies import WriteStrategy  # noqa: PLC0415

    source = ab.get_source(
        "source-replay",
        local_executable=args.source_exe,
        config={"records_file": args.records_file, "catalog_file": args.discover_file},
    )
    source.select_streams([args.stream])
    # Discover once up front (PyAirbyte caches it), so the timed call is the write itself.
    source.get_configured_catalog()

    destination = ab.get_destination(
        "destination-dev-null",
        local_executable=args.dest_exe,
        config=json.loads(args.dest_config),
    )

    start = time.perf_counter()
    result = destination.write(
        source,
        cache=False,  # stream source -> destination directly, no DuckDB cache in between
        state_cache=False,  # no state backend (airlock runs with --no-state too)
        write_strategy=WriteStrategy.APPEND,  # same destination_sync_mode as airlock's catalog
    )
    seconds = time.perf_counter() - start

    tracker = getattr(result, "_progress_tracker", None)  # private, but it holds the tallies
    delivered = result.processed_records
    confirmed = getattr(tracker, "total_destination_records_confirmed", None)
    read = getattr(tracker, "total_records_read", None)
    for what, value in (("delivered to the destination", delivered),
                        ("read from the source", read),
                        ("confirmed by the destination (destinationStats)", confirmed)):
        # A destination that echoes states without destinationStats confirms none
        # by that count (the state-echo destination): not a failure.
        if what.startswith("confirmed") and not value:
            continue
        if value is not None and value != args.expect:
            raise BenchError(f"PyAirbyte: {value} records {what}, expected {args.expect}")
    return {
        "tool": "PyAirbyte",
        "version": ab.__version__ if hasattr(ab, "__version__") else _dist_version("airbyte"),
        "records": delivered,
        "records_read": read,
        "records_confirmed": confirmed,
        "seconds": seconds,
    }


def _dist_version(name: str) -> str:
    from importlib.metadata import version  # noqa: PLC0415

    return version(name)


def cmd_airlock(args: argparse.Namespace) -> dict:
    cmd = [
        args.airlock, "write", "destination-dev-null",
        "--local-executable", args.dest_exe,
        "--config", args.dest_config,
        "--catalog", args.catalog,
        "--input", args.records_file,
        "--no-state", "--json",
    ]
    start = time.perf_counter()
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, check=False)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        tail = proc.stderr.strip().splitlines()[-1:] or ["(no stderr)"]
        raise BenchError(f"airlock write exited {proc.returncode}: {tail[0]}")
    try:
        out = json.loads(proc.stdout.strip().splitlines()[-1])
    except (json.JSONDecodeError, IndexError) as ex:
        raise BenchError(f"airlock write --json printed no JSON result: {ex}") from None
    if not out.get("completed", False):
        raise BenchError("airlock write reported completed=false")
    for key in ("records_sent", "records_confirmed"):
        if out.get(key) != args.expect:
            raise BenchError(f"airlock: {key}={out.get(key)}, expected {args.expect}")
    version = subprocess.run([args.airlock, "--version"], capture_output=True, text=True,
                             check=False).stdout.strip()
    return {
        "tool": "airlock",
        "version": version or "unknown",
        "records": out["records_confirmed"],
        "records_sent": out["records_sent"],
        "records_confirmed": out["records_confirmed"],
        "seconds": seconds,  # the whole process, startup included
        "airlock_internal_seconds": out.get("duration_secs"),
    }


def cmd_dest_alone(args: argparse.Namespace) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "config.json"
        config.write_text(args.dest_config, encoding="utf-8")
        with open(args.records_file, "rb") as stdin:
            start = time.perf_counter()
            proc = subprocess.run(
                [args.dest_exe, "write", "--config", str(config), "--catalog", args.catalog],
                # A pipe, not /dev/null: grep (the state-echo destination) stops at
                # its first match when its output is /dev/null.
                stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=False,
            )
            seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise BenchError(f"destination alone exited {proc.returncode}")
    return {"tool": "dest-alone", "seconds": seconds}


def cmd_report(args: argparse.Namespace) -> dict:
    py = json.loads(Path(args.pyairbyte).read_text(encoding="utf-8"))
    al = json.loads(Path(args.airlock).read_text(encoding="utf-8"))
    floor = json.loads(Path(args.dest_alone).read_text(encoding="utf-8")) if args.dest_alone else None
    if py["records"] != al["records"]:
        raise BenchError(f"record counts differ: PyAirbyte {py['records']}, airlock {al['records']}")
    rows = []
    for r in (py, al):
        rate = r["records"] / r["seconds"] if r["seconds"] > 0 else float("inf")
        rows.append((r["tool"], r["version"], r["records"], r["seconds"], rate))
    ratio = rows[1][4] / rows[0][4]  # airlock records/s over PyAirbyte records/s
    table = [f"destination: {args.label}"] if args.label else []
    table.append(f"{'tool':<10} {'version':<14} {'records':>10} {'seconds':>9} {'records/s':>12}")
    for tool, version, records, seconds, rate in rows:
        table.append(f"{tool:<10} {version[:14]:<14} {records:>10,} {seconds:>9.3f} {rate:>12,.0f}")
    goal = 20.0
    table.append(f"ratio airlock/PyAirbyte (records/s): {ratio:.1f}x  "
                 f"(goal >= {goal:.0f}x: {'met' if ratio >= goal else 'NOT met'})")
    ceiling = None
    if floor is not None:
        ceiling = py["seconds"] / floor["seconds"]
        table.append(f"(reference: the destination alone, fed the file directly, takes "
                     f"{floor['seconds']:.3f}s, so no host can exceed ~{ceiling:.1f}x here)")
    if al.get("airlock_internal_seconds") is not None:
        table.append(f"(airlock seconds = whole process incl. startup; its own write loop reported "
                     f"{al['airlock_internal_seconds']:.3f}s)")
    print("\n".join(table), flush=True)
    return {
        "bench": "pyairbyte-vs-airlock",
        "destination": args.label,
        "records": al["records"],
        "pyairbyte_version": py["version"],
        "pyairbyte_seconds": round(py["seconds"], 4),
        "pyairbyte_records_per_s": round(rows[0][4], 1),
        "airlock_version": al["version"],
        "airlock_seconds": round(al["seconds"], 4),
        "airlock_internal_seconds": al.get("airlock_internal_seconds"),
        "airlock_records_per_s": round(rows[1][4], 1),
        "ratio": round(ratio, 2),
        "goal_met": ratio >= goal,
        "dest_alone_seconds": round(floor["seconds"], 4) if floor else None,
        "ratio_ceiling": round(ceiling, 2) if ceiling else None,
    }


def main() -> int:
    parser = argparse.ArgumentParser(prog="bench.py")
    parser.add_argument("--out", help="write the result JSON here instead of stdout")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("catalog")
    p.add_argument("discover")
    p.add_argument("stream")
    p.add_argument("out_catalog")
    p.set_defaults(func=cmd_catalog)

    p = sub.add_parser("pyairbyte")
    p.add_argument("--records-file", required=True)
    p.add_argument("--discover-file", required=True)
    p.add_argument("--source-exe", required=True)
    p.add_argument("--dest-exe", required=True)
    p.add_argument("--dest-config", required=True)
    p.add_argument("--stream", default="users")
    p.add_argument("--expect", type=int, required=True)
    p.set_defaults(func=cmd_pyairbyte)

    p = sub.add_parser("airlock")
    p.add_argument("--airlock", required=True)
    p.add_argument("--dest-exe", required=True)
    p.add_argument("--dest-config", required=True)
    p.add_argument("--catalog", required=True)
    p.add_argument("--records-file", required=True)
    p.add_argument("--expect", type=int, required=True)
    p.set_defaults(func=cmd_airlock)

    p = sub.add_parser("dest-alone")
    p.add_argument("--dest-exe", required=True)
    p.add_argument("--dest-config", required=True)
    p.add_argument("--catalog", required=True)
    p.add_argument("--records-file", required=True)
    p.set_defaults(func=cmd_dest_alone)

    p = sub.add_parser("report")
    p.add_argument("pyairbyte")
    p.add_argument("airlock")
    p.add_argument("dest_alone", nargs="?")
    p.add_argument("--label", help="the destination's name, for the table")
    p.set_defaults(func=cmd_report)

    args = parser.parse_args()
    try:
        result = args.func(args)
    except BenchError as ex:
        print(f"bench: {ex}", file=sys.stderr)
        return 1
    except Exception as ex:  # noqa: BLE001 - one line, whatever broke (PyAirbyte errors are long)
        first = str(ex).strip().splitlines()[0] if str(ex).strip() else ""
        print(f"bench: {args.command} failed: {type(ex).__name__}: {first}", file=sys.stderr)
        return 1
    if args.out:
        Path(args.out).write_text(json.dumps(result) + "\n", encoding="utf-8")
    else:
        print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
