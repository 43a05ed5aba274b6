#!/usr/bin/env python3
"""source-replay: a minimal Airbyte source that replays a saved message stream.

Used by scripts/bench-pyairbyte.sh so that PyAirbyte and airlock feed the very same
bytes into the destination. Stdlib only; it implements the Airbyte source CLI:

  spec                                   a trivial SPEC
  check    --config C                    CONNECTION_STATUS SUCCEEDED
  discover --config C                    the CATALOG saved in config["catalog_file"]
  read     --config C --catalog K [--state S]
                                         the lines of config["records_file"], verbatim

Config: {"records_file": "<jsonl of Airbyte messages>",
         "catalog_file": "<a saved `discover` output, or a bare AirbyteCatalog JSON>"}

`read` execs `cat`, so replaying costs the benchmark next to nothing: what is measured
is the host (PyAirbyte or airlock) moving the messages into the destination.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

SPEC = {
    "type": "SPEC",
    "spec": {
        "documentationUrl": "https://example.invalid/source-replay",
        "connectionSpecification": {
            "$schema": "http://json-schema.org/draft-07/schema#",
            "title": "Replay Source Spec",
            "type": "object",
            "required": ["records_file", "catalog_file"],
            "additionalProperties": True,
            "properties": {
                "records_file": {"type": "string", "description": "Saved Airbyte messages (JSONL)."},
                "catalog_file": {"type": "string", "description": "Saved discover output."},
            },
        },
    },
}


def emit(message: dict) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def load_config(path: str) -> dict:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def load_catalog(path: str) -> dict:
    """Accept either a raw `discover` output (JSONL with a CATALOG message) or a catalog object."""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        try:
            msg = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(msg, dict) and msg.get("type") == "CATALOG":
            return msg["catalog"]
    catalog = json.loads(text)
    if "streams" not in catalog:
        raise ValueError(f"{path}: no CATALOG message and no 'streams' key")
    return catalog


def main() -> int:
    parser = argparse.ArgumentParser(prog="source-replay")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("spec")
    for name in ("check", "discover"):
        sub.add_parser(name).add_argument("--config", required=True)
    read = sub.add_parser("read")
    read.add_argument("--config", required=True)
    read.add_argument("--catalog", required=True)
    read.add_argument("--state")
    args = parser.parse_args()

    if args.command == "spec":
        emit(SPEC)
        return 0

    config = load_config(args.config)
    if args.command == "check":
        missing = [p for p in (config.get("records_file"), config.get("catalog_file"))
                   if not p or not os.path.isfile(p)]
        if missing:
            emit({"type": "CONNECTION_STATUS",
                  "connectionStatus": {"status": "FAILED", "message": f"missing files: {missing}"}})
        else:
            emit({"type": "CONNECTION_STATUS", "connectionStatus": {"status": "SUCCEEDED"}})
        return 0

    if args.command == "discover":
        emit({"type": "CATALOG", "catalog": load_catalog(config["catalog_file"])})
        return 0

    # read: hand the saved bytes over untouched. The catalog and state are ignored: the file
    # already holds exactly the selected stream.
    records_file = config["records_file"]
    if not os.path.isfile(records_file):
        print(f"source-replay: no such file: {records_file}", file=sys.stderr)
        return 1
    sys.stdout.flush()
    os.execvp("cat", ["cat", records_file])
    return 1  # not reached


if __name__ == "__main__":
    sys.exit(main())
