"""destination-python-jsonl: a tiny Airbyte destination in Python, built into a
WASI Preview 2 component with componentize-py, for airlock.

It implements the world `destination-plugin` of `airlock:destination@0.1.0`
(wit/destination-0.1.0/destination.wit) with the same behaviour as the Rust
`destination-local-json`:

- each stream goes to `<destination_path>/[<namespace>/]_airbyte_raw_<stream>.jsonl`
  (names through Airbyte's name transformer), one line per record:
  `{"_airbyte_ab_id": <uuid4>, "_airbyte_emitted_at": <ms>, "_airbyte_data": <data>}`;
- records are staged in a temp file beside the final file; the temp file is
  flushed before each STATE is echoed (with `destinationStats.recordCount`);
  at a clean close an overwrite stream that received STREAM_STATUS COMPLETE
  replaces the final file, everything else is appended to it; temp files left
  by a killed run are appended on the next open;
- lines that are not Airbyte messages are skipped with a LOG WARN;
- a failure in the middle of a batch returns the states echoed before it,
  then a TRACE ERROR (what the Rust SDK does), and ends the write.

componentize-py looks up the exported interface `destination` as the class
`Destination` of this module, and its resource `writer` as the class `Writer`
of a module named `destination` (see destination.py, which re-exports it).
"""

import json
import os
import secrets
import time
import unicodedata
import uuid

import wit_world
from wit_world.exports import destination as wit_destination
from wit_world.imports import host
from wit_world.imports.types import (
    ConnectionStatus,
    DestinationError,
    FailureType,
    LogLevel,
)
from componentize_py_types import Err

# The host preopens the local root as this directory.
LOCAL_ROOT = "/local"
DESTINATION_PATH = "destination_path"
RAW_PREFIX = "_airbyte_raw_"
TEMP_PREFIX = "_airbyte_tmp_"
BUFFER_BYTES = 256 * 1024

SPEC = {
    "documentationUrl": "https://docs.airbyte.com/integrations/destinations/local-json",
    "supportsIncremental": True,
    "supportsNormalization": False,
    "supportsDBT": False,
    "supported_destination_sync_modes": ["overwrite", "append"],
    "connectionSpecification": {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "title": "Python JSONL Destination Spec",
        "type": "object",
        "required": [DESTINATION_PATH],
        "additionalProperties": False,
        "properties": {
            DESTINATION_PATH: {
                "title": "Destination Path",
                "description": "Folder where the JSON Lines files are written, inside the "
                "sandbox's /local mount (\"/out\" becomes \"/local/out\"; a path that "
                "climbs out of /local is refused).",
                "type": "string",
                "examples": ["/local/out"],
            }
        },
    },
    "x-airlock-conformance": {
        "config": {DESTINATION_PATH: "/local/conformance"},
        "reader": {"format": "airbyte-raw-jsonl", "path_field": DESTINATION_PATH},
    },
}

# Compact JSON, non-ASCII kept as UTF-8 (U+2028/U+2029 are escaped by neither
# Python nor serde_json, and both are valid inside a JSON string).
_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode

# Unicode White_Space (what Rust's char::is_whitespace tests).
_WHITESPACE = set("\t\n\x0b\x0c\r \x85\xa0\u1680\u2028\u2029\u202f\u205f\u3000") | {
    chr(c) for c in range(0x2000, 0x200B)
}


class Failure(Exception):
    """A destination error: a message and an Airbyte failure_type."""

    def __init__(self, message, failure_type=FailureType.SYSTEM_ERROR):
        super().__init__(message)
        self.message = message
        self.failure_type = failure_type

    def to_wit(self):
        return DestinationError(self.message, self.failure_type)


def log(level, message):
    host.log(level, message)


# ---------------------------------------------------------------- naming

def convert_name(name):
    """Airbyte's StandardNameTransformer, as airlock's SDK does it: NFKD, combining
    marks dropped, runs of whitespace to one `_`, anything but [A-Za-z0-9_] to `_`."""
    out = []
    in_whitespace = False
    for c in unicodedata.normalize("NFKD", name):
        if unicodedata.category(c).startswith("M"):
            continue
        if c in _WHITESPACE:
            if not in_whitespace:
                out.append("_")
            in_whitespace = True
            continue
        in_whitespace = False
        out.append(c if (c.isascii() and (c.isalnum() or c == "_")) else "_")
    return "".join(out)


def stream_file(folder, name, namespace):
    if namespace:
        folder = os.path.join(folder, convert_name(namespace))
    return os.path.join(folder, RAW_PREFIX + convert_name(name) + ".jsonl")


def resolve_local_path(configured):
    """A configured path as a path inside the sandbox: under /local, never out of it."""
    if not configured.strip():
        raise Failure("the configured path is empty", FailureType.CONFIG_ERROR)
    segments = [s for s in configured.split("/") if s and s != "."]
    parts = [] if configured.startswith("/") and segments[:1] == ["local"] else ["local"]
    for segment in segments:
        if segment == "..":
            if parts:
                parts.pop()
        else:
            parts.append(segment)
    if parts[:1] != ["local"]:
        raise Failure(
            f"the path {configured!r} resolves to \"/{'/'.join(parts)}\", outside /local; "
            "it must stay inside /local",
            FailureType.CONFIG_ERROR,
        )
    return os.path.join(LOCAL_ROOT, *parts[1:])


def destination_folder(config_text):
    try:
        config = json.loads(config_text)
    except ValueError as e:
        raise Failure(f"the config is not JSON: {e}", FailureType.CONFIG_ERROR)
    if not isinstance(config, dict):
        raise Failure("the config must be a JSON object", FailureType.CONFIG_ERROR)
    path = config.get(DESTINATION_PATH)
    if path is None:
        raise Failure(f"{DESTINATION_PATH} is required", FailureType.CONFIG_ERROR)
    if not isinstance(path, str):
        raise Failure(
            f"{DESTINATION_PATH} must be a string, got {json.dumps(path)}",
            FailureType.CONFIG_ERROR,
        )
    return resolve_local_path(path)


# ---------------------------------------------------------------- output lines

def log_line(level, message):
    return _dumps({"type": "LOG", "log": {"level": level, "message": message}}) + "\n"


def trace_error_line(failure):
    return _dumps({
        "type": "TRACE",
        "trace": {
            "type": "ERROR",
            "emitted_at": time.time() * 1000.0,
            "error": {
                "message": failure.message,
                "internal_message": failure.message,
                "failure_type": failure.failure_type.name.lower(),
            },
        },
    }) + "\n"


# ---------------------------------------------------------------- staged files

def _append_file(source, target, out):
    """Appends `source` to `target` (whole lines only) and removes `source`."""
    with open(source, "rb") as f:
        data = f.read()
    cut = data.rfind(b"\n") + 1
    if cut < len(data):
        out.append(log_line("WARN", f"dropped a half-written last line of {source}"))
    with open(target, "ab") as f:
        f.write(data[:cut])
    os.remove(source)


class StagedFile:
    """One output file written through `_airbyte_tmp_<token>_<name>` beside it."""

    def __init__(self, final_path, overwrite, out):
        self.final_path = final_path
        self.overwrite = overwrite
        self.complete = False
        folder, name = os.path.split(final_path)
        try:
            os.makedirs(folder, exist_ok=True)
            self._recover_orphans(folder, name, out)
            self.temp_path = os.path.join(folder, f"{TEMP_PREFIX}{secrets.token_hex(6)}_{name}")
            self.file = open(self.temp_path, "xb", buffering=BUFFER_BYTES)
        except OSError as e:
            raise Failure(f"could not stage {final_path}: {e}")

    def _recover_orphans(self, folder, name, out):
        orphans = []
        for entry in os.listdir(folder):
            if not entry.startswith(TEMP_PREFIX) or not entry.endswith("_" + name):
                continue
            token = entry[len(TEMP_PREFIX):-len(name) - 1]
            if token and token.isascii() and token.isalnum():
                path = os.path.join(folder, entry)
                orphans.append((os.stat(path).st_mtime, path))
        for _, path in sorted(orphans):
            _append_file(path, self.final_path, out)
            out.append(log_line("INFO", f"recovered {path}, left by an earlier run"))

    def write(self, data):
        self.file.write(data)

    def flush(self):
        try:
            self.file.flush()
        except OSError as e:
            raise Failure(f"could not write {self.temp_path}: {e}")

    def close(self, clean, out):
        try:
            self.file.close()
            if self.overwrite and self.complete and clean:
                os.replace(self.temp_path, self.final_path)
            elif not os.path.exists(self.final_path):
                os.replace(self.temp_path, self.final_path)
            else:
                _append_file(self.temp_path, self.final_path, out)
        except OSError as e:
            raise Failure(f"could not move {self.temp_path} into {self.final_path}: {e}")


# ---------------------------------------------------------------- the exports

class Destination(wit_world.exports.Destination):
    def spec(self):
        return _dumps(SPEC)

    def check(self, config):
        try:
            folder = destination_folder(config)
            os.makedirs(folder, exist_ok=True)
            probe = os.path.join(folder, f"_airbyte_connection_check_{secrets.token_hex(6)}")
            with open(probe, "wb") as f:
                f.write(b"{}\n")
            os.remove(probe)
        except Failure as e:
            return ConnectionStatus(False, e.message)
        except OSError as e:
            return ConnectionStatus(False, f"the destination folder is not writable: {e}")
        return ConnectionStatus(True, None)


def _key(name, namespace):
    return (name, namespace or None)


class Writer(wit_destination.Writer):
    """The `writer` resource: one write run."""

    @classmethod
    def open(cls, config, catalog):
        try:
            folder = destination_folder(config)
            writer = cls(folder, catalog)
        except Failure as e:
            raise Err(e.to_wit())
        log(LogLevel.INFO, f"writing {len(writer.file_of)} streams into {folder}")
        return writer

    def __init__(self, folder, catalog_text):
        try:
            catalog = json.loads(catalog_text)
            configured = catalog["streams"]
        except (ValueError, KeyError, TypeError) as e:
            raise Failure(f"the configured catalog does not parse: {e!r}")
        self.pending = []  # output produced outside write_batch (recovery logs)
        self.files = []  # StagedFile per distinct output file
        self.file_of = {}  # (name, namespace) -> index into files
        self.streams_of_file = []  # per file: the stream keys not yet complete
        self.since_stream_state = {}  # (name, namespace) -> records since its state
        self.since_any_state = 0
        self.completed = set()
        self.unknown = set()
        self.ended = False
        by_path = {}
        modes = []
        for entry in configured:
            stream = entry["stream"]
            key = _key(stream["name"], stream.get("namespace"))
            if key in self.file_of:
                continue  # a stream listed twice keeps its first entry
            path = stream_file(folder, key[0], key[1])
            index = by_path.setdefault(path, len(by_path))
            if index == len(modes):
                modes.append((path, True))
                self.streams_of_file.append(set())
            # A shared file is only overwritten if every one of its streams is.
            if entry.get("destination_sync_mode") != "overwrite":
                modes[index] = (path, False)
            self.file_of[key] = index
            self.streams_of_file[index].add(key)
            self.since_stream_state[key] = 0
        try:
            for path, overwrite in modes:
                self.files.append(StagedFile(path, overwrite, self.pending))
        except Failure:
            self.ended = True
            for f in self.files:
                f.close(False, [])
            raise

    # -- the WIT methods

    def write_batch(self, messages):
        if self.ended:
            raise Err(DestinationError(
                "write-batch was called on a writer that has already ended",
                FailureType.SYSTEM_ERROR))
        out, self.pending = self.pending, []
        try:
            for line in messages.split(b"\n"):
                self._push_line(line, out)
        except Failure as e:
            # States echoed before the failure stay valid: return them, then the error.
            self._end(False, out)
            out.append(trace_error_line(e))
        except Exception as e:  # a bug: report it the same way, not as a trap
            self._end(False, out)
            out.append(trace_error_line(Failure(f"{type(e).__name__}: {e}")))
        return "".join(out).encode()

    def close(self):
        if self.ended:
            raise Err(DestinationError(
                "close was called on a writer that has already ended",
                FailureType.SYSTEM_ERROR))
        out, self.pending = self.pending, []
        try:
            self._end(True, out)
        except Failure as e:
            raise Err(e.to_wit())
        return "".join(out).encode()

    def __del__(self):
        # Dropped without close (the host cancelled): keep prior data.
        if not getattr(self, "ended", True):
            try:
                self._end(False, [])
            except Exception:
                pass

    # -- the protocol

    def _end(self, clean, out):
        self.ended = True
        first = None
        for f in self.files:
            try:
                f.close(clean, out)
            except Failure as e:
                first = first or e
        if first is not None:
            raise first

    def _push_line(self, line, out):
        line = line.strip()
        if not line:
            return
        try:
            message = json.loads(line)
        except ValueError as e:
            return self._skip(line, f"it is not JSON ({e})", out)
        if not isinstance(message, dict):
            return self._skip(line, "it is not an Airbyte message", out)
        kind = message.get("type")
        if kind == "RECORD":
            record = message.get("record")
            if not isinstance(record, dict):
                return self._skip(line, "a RECORD message needs a `record` object", out)
            self._on_record(record, out)
        elif kind == "STATE":
            if not isinstance(message.get("state"), dict):
                return self._skip(line, "a STATE message needs a `state` object", out)
            self._on_state(message, out)
        elif kind == "TRACE":
            self._on_trace(message.get("trace"))
        elif kind in ("LOG", "SPEC", "CONNECTION_STATUS", "CATALOG", "CONTROL",
                      "DESTINATION_CATALOG"):
            pass
        elif kind is None:
            self._skip(line, "it has no `type`, so it is not an Airbyte message", out)
        else:
            self._skip(line, f"{json.dumps(kind)} is not an Airbyte message type", out)

    def _skip(self, line, why, out):
        quoted = line[:120].decode("utf-8", "replace")
        out.append(log_line("WARN", f"skipping an input line: {why}: {quoted}"))

    def _on_record(self, record, out):
        key = _key(record.get("stream"), record.get("namespace"))
        index = self.file_of.get(key)
        if index is None:
            if key not in self.unknown:
                self.unknown.add(key)
                out.append(log_line(
                    "WARN",
                    f"skipping the records of stream {key}: it is not in the configured catalog"))
            return
        row = _dumps({
            "_airbyte_ab_id": str(uuid.uuid4()),
            "_airbyte_emitted_at": record.get("emitted_at"),
            "_airbyte_data": record.get("data"),
        })
        try:
            self.files[index].write((row + "\n").encode())
        except OSError as e:
            raise Failure(f"could not write {self.files[index].temp_path}: {e}")
        self.since_stream_state[key] += 1
        self.since_any_state += 1

    def _on_state(self, message, out):
        for f in self.files:  # every record before this state becomes durable
            f.flush()
        state = message["state"]
        if state.get("type") == "STREAM":
            descriptor = (state.get("stream") or {}).get("stream_descriptor") or {}
            key = _key(descriptor.get("name"), descriptor.get("namespace"))
            count = self.since_stream_state.get(key, 0)
            if key in self.since_stream_state:
                self.since_stream_state[key] = 0
        else:  # GLOBAL, LEGACY, or no type (LEGACY)
            count = self.since_any_state
            for key in self.since_stream_state:
                self.since_stream_state[key] = 0
        self.since_any_state = 0
        state["destinationStats"] = {"recordCount": float(count)}
        out.append(_dumps(message) + "\n")

    def _on_trace(self, trace):
        if not isinstance(trace, dict) or trace.get("type") != "STREAM_STATUS":
            return
        status = trace.get("stream_status") or {}
        if status.get("status") != "COMPLETE":
            return
        descriptor = status.get("stream_descriptor") or {}
        key = _key(descriptor.get("name"), descriptor.get("namespace"))
        index = self.file_of.get(key)
        if index is None or key in self.completed:
            return
        self.completed.add(key)
        self.streams_of_file[index].discard(key)
        if not self.streams_of_file[index]:
            self.files[index].complete = True
