#!/usr/bin/env python3
"""The crash campaign behind scripts/crash-campaign.sh (read its header first).

Drives `airlock sync` of the built-in faker into the native local-json destination,
kills something at a random point, and checks what was left:

  dest  the destination process is SIGKILLed once its files hold a random number of
        records in [1, total);
  host  the airlock process is SIGKILLed after a random delay within the run's
        expected duration (the wall time of a clean run of the same config).

After the kill: `PRAGMA integrity_check` of the state database (and of the cache);
no stored state ahead of the destination (every record the faker emitted up to a
stored state's `loop_offset` is in the destination's files); then the same sync
again, which must exit 0, after which every record id of a clean reference run must
be in the destination (duplicates allowed and counted).

Standard library only. Prints the figures at the end (and with --out, writes them to
a file); the per-run results go to runs.jsonl in the work folder.
"""

import argparse
import json
import os
import random
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import defaultdict

STREAMS = ("products", "users", "purchases")
# `_airbyte_raw_<stream>.jsonl`, or its staged copy `_airbyte_tmp_<token>__airbyte_raw_<stream>.jsonl`.
FILE_RE = re.compile(r"(?:^|_)_airbyte_raw_(\w+)\.jsonl$")
ID_RE = re.compile(rb'"_airbyte_data":\{"id":(\d+)[,}]')

# A step that takes longer than this is reported as a hang.
HANG_SECS = 120
# How long a destination may outlive a killed host before it counts as a hang.
ORPHAN_SECS = 30


def log(msg):
    print(f"crash-campaign: {msg}", file=sys.stderr, flush=True)


# --- processes -------------------------------------------------------------------


def children(pid):
    """The pids of `pid`'s child processes (all of its threads' children)."""
    out = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                out.extend(int(p) for p in f.read().split())
        except OSError:
            pass
    return out


def cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
    except OSError:
        return []


def alive(pid):
    """Whether `pid` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def run_processes(run_dir):
    """The processes of one run: those whose environment names its local root."""
    marker = f"AIRLOCK_LOCAL_ROOT={os.path.join(run_dir, 'root')}".encode()
    out = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == os.getpid():
            continue
        try:
            with open(f"/proc/{name}/environ", "rb") as f:
                if marker in f.read().split(b"\0"):
                    out.append(int(name))
        except OSError:
            pass
    return [p for p in out if alive(p)]


def find_writer(host_pid, dest_bin):
    """The destination process that `write`s for this host, or None."""
    for pid in children(host_pid):
        args = cmdline(pid)
        if args and os.path.basename(args[0]) == os.path.basename(dest_bin) and "write" in args:
            return pid
    return None


def wait_gone(pids, secs):
    """Waits until none of `pids` is alive; returns the ones still alive after `secs`."""
    deadline = time.monotonic() + secs
    while time.monotonic() < deadline:
        left = [p for p in pids if alive(p)]
        if not left:
            return []
        time.sleep(0.01)
    return [p for p in pids if alive(p)]


# --- files -----------------------------------------------------------------------


class FileCounter:
    """Counts the complete lines in a folder's JSONL files, incrementally (by inode,
    so a staged file renamed into place is not counted twice)."""

    def __init__(self, folder):
        self.folder = folder
        self.seen = {}  # inode -> (offset, lines)

    def count(self):
        try:
            names = os.listdir(self.folder)
        except OSError:
            return 0
        for name in names:
            if not name.endswith(".jsonl"):
                continue
            path = os.path.join(self.folder, name)
            try:
                st = os.stat(path)
            except OSError:
                continue
            offset, lines = self.seen.get(st.st_ino, (0, 0))
            if st.st_size > offset:
                try:
                    with open(path, "rb") as f:
                        f.seek(offset)
                        chunk = f.read(st.st_size - offset)
                except OSError:
                    continue
                # Count complete lines only; a partial tail is read again next time.
                end = chunk.rfind(b"\n") + 1
                lines += chunk.count(b"\n", 0, end)
                offset += end
                self.seen[st.st_ino] = (offset, lines)
        return sum(lines for _, lines in self.seen.values())


def held_records(folder):
    """What the destination holds: per stream, the list of record ids in its final and
    staged files (complete lines only), plus counts of partial and unreadable lines
    and of staged files."""
    ids = defaultdict(list)
    partial = bad = staged = 0
    try:
        names = sorted(os.listdir(folder))
    except OSError:
        names = []
    for name in names:
        m = FILE_RE.search(name)
        if not m:
            continue
        if name.startswith("_airbyte_tmp_"):
            staged += 1
        stream = m.group(1)
        with open(os.path.join(folder, name), "rb") as f:
            data = f.read()
        lines = data.split(b"\n")
        if lines and lines[-1] != b"":
            partial += 1
        for line in lines[:-1]:
            mm = ID_RE.search(line)
            if mm:
                ids[stream].append(int(mm.group(1)))
                continue
            try:
                ids[stream].append(int(json.loads(line)["_airbyte_data"]["id"]))
            except (ValueError, KeyError, TypeError):
                bad += 1
    return ids, partial, bad, staged


def integrity(path):
    """`PRAGMA integrity_check` of a SQLite file: "ok", the error, or None if absent."""
    if not os.path.exists(path):
        return None
    try:
        conn = sqlite3.connect(f"file:{path}?mode=rw", uri=True, timeout=10)
        try:
            rows = conn.execute("PRAGMA integrity_check").fetchall()
        finally:
            conn.close()
        return "; ".join(str(r[0]) for r in rows)
    except sqlite3.Error as e:
        return f"error: {e}"


def stored_states(path):
    """All stored STREAM states (any source/destination key: its text is the store's
    business), as (stream, state message) pairs, plus the number of GLOBAL/LEGACY rows."""
    if not os.path.exists(path):
        return [], 0
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    try:
        try:
            rows = conn.execute("SELECT stream, state_json FROM stream_state").fetchall()
            pairs = conn.execute("SELECT COUNT(*) FROM pair_state").fetchone()[0]
        except sqlite3.OperationalError:  # killed before the schema was created
            return [], 0
    finally:
        conn.close()
    return [(s, json.loads(j)) for s, j in rows], pairs


# --- the campaign ----------------------------------------------------------------


class Campaign:
    def __init__(self, args):
        self.args = args
        self.airlock = os.path.abspath(args.airlock)
        self.dest_bin = os.path.abspath(args.destination)
        self.rng = random.Random(args.seed)
        self.work = tempfile.mkdtemp(prefix="crash-campaign-", dir=args.tmpdir)
        self.warm = os.path.join(self.work, "warm-home")
        self.references = {}
        self.results = []

    # One sync ---------------------------------------------------------------------

    def command(self, run_dir, config, cache):
        cmd = [
            self.airlock, "sync",
            "--source", "source-faker",
            "--source-config", json.dumps(config),
            "--destination", "destination-local-json",
            "--destination-config", '{"destination_path": "/local/out"}',
            "--local-root", os.path.join(run_dir, "root"),
            "--local-executable", self.dest_bin,
            "--state-db", os.path.join(run_dir, "state.db"),
            "--json",
        ]
        cmd += ["--cache-path", os.path.join(run_dir, "cache.sqlite")] if cache else ["--no-cache"]
        return cmd

    def env(self, run_dir):
        env = dict(os.environ)
        env["AIRLOCK_HOME"] = os.path.join(run_dir, "home")
        env.pop("AIRLOCK_LOG", None)
        return env

    def fresh_dir(self, name):
        """A fresh run folder; its airlock home starts with the warm compile cache only
        (compiling the faker component is not what is being tested)."""
        run_dir = os.path.join(self.work, name)
        os.makedirs(os.path.join(run_dir, "root"))
        home = os.path.join(run_dir, "home")
        wasm = os.path.join(self.warm, "cache", "wasm")
        if os.path.isdir(wasm):
            shutil.copytree(wasm, os.path.join(home, "cache", "wasm"))
        else:
            os.makedirs(home)
        return run_dir

    def spawn(self, run_dir, config, cache, tag):
        out = open(os.path.join(run_dir, f"{tag}.stdout"), "wb")
        err = open(os.path.join(run_dir, f"{tag}.stderr"), "wb")
        proc = subprocess.Popen(
            self.command(run_dir, config, cache), env=self.env(run_dir),
            stdin=subprocess.DEVNULL, stdout=out, stderr=err,
        )
        out.close()
        err.close()
        return proc

    def run_clean(self, run_dir, config, cache, tag):
        """Runs a sync to the end; returns (exit code or "hang", seconds)."""
        started = time.monotonic()
        proc = self.spawn(run_dir, config, cache, tag)
        try:
            code = proc.wait(timeout=HANG_SECS)
        except subprocess.TimeoutExpired:
            left = children(proc.pid)
            proc.kill()
            proc.wait()
            for p in wait_gone(left, 1):
                os.kill(p, signal.SIGKILL)
            code = "hang"
        return code, time.monotonic() - started

    def tail(self, run_dir, tag, n=5):
        try:
            with open(os.path.join(run_dir, f"{tag}.stderr"), errors="replace") as f:
                return f.read().strip().splitlines()[-n:]
        except OSError:
            return []

    # References -----------------------------------------------------------------

    def reference(self, key):
        """A clean run of config `key`, without and with the cache: the ids per stream,
        the purchases' user ids, and each mode's wall time."""
        if key in self.references:
            return self.references[key]
        config = self.configs[key]
        ref = {"seconds": {}}
        for cache in (False, True):
            run_dir = self.fresh_dir(f"ref-{key}-{'cache' if cache else 'nocache'}")
            code, secs = self.run_clean(run_dir, config, cache, "run")
            if code != 0:
                sys.exit(f"crash-campaign: the clean reference run failed ({code}) in {run_dir}: "
                         + " | ".join(self.tail(run_dir, "run")))
            ref["seconds"][cache] = secs
            ids = defaultdict(list)
            users_of = {}
            out = os.path.join(run_dir, "root", "out")
            for name in os.listdir(out):
                m = FILE_RE.search(name)
                if not m:
                    continue
                with open(os.path.join(out, name)) as f:
                    for line in f:
                        data = json.loads(line)["_airbyte_data"]
                        ids[m.group(1)].append(data["id"])
                        if m.group(1) == "purchases":
                            users_of[data["id"]] = data["user_id"]
            for stream in STREAMS:
                if len(set(ids[stream])) != len(ids[stream]):
                    sys.exit(f"crash-campaign: the reference run {run_dir} has duplicate {stream} ids")
            sets = {s: set(ids[s]) for s in STREAMS}
            if "ids" in ref and ref["ids"] != sets:
                sys.exit(f"crash-campaign: the cached and uncached reference runs of {key} differ")
            ref["ids"], ref["users_of"] = sets, users_of
            if not self.args.keep:
                shutil.rmtree(run_dir)
        ref["total"] = sum(len(v) for v in ref["ids"].values())
        self.references[key] = ref
        log(f"reference {key} {json.dumps(config)}: {ref['total']} records, "
            f"{ref['seconds'][False]:.2f} s without the cache, {ref['seconds'][True]:.2f} s with it")
        return ref

    def required_by_states(self, states, ref):
        """Per stream, the ids the faker had emitted up to the stored state."""
        need = {}
        for stream, state in states:
            cursor = (state.get("stream") or {}).get("stream_state") or {}
            offset = cursor.get("loop_offset")
            if stream == "users":
                ids = {i for i in ref["ids"]["users"] if offset is not None and i <= offset}
            elif stream == "purchases":
                ids = {i for i, u in ref["users_of"].items() if offset is not None and u <= offset}
            elif stream == "products":
                # One state, after the last product.
                ids = set(ref["ids"]["products"])
            else:
                ids = set()
            need[stream] = need.get(stream, set()) | ids
        return need

    # One crash run --------------------------------------------------------------

    def crash_run(self, index, mode, cache):
        key = self.rng.randrange(len(self.configs))
        config = self.configs[key]
        ref = self.reference(key)
        run_dir = self.fresh_dir(f"run-{index:03d}-{mode}-{'cache' if cache else 'nocache'}")
        out = os.path.join(run_dir, "root", "out")
        r = {"run": index, "mode": mode, "cache": cache, "config": config, "dir": run_dir,
             "violations": []}
        started = time.monotonic()
        proc = self.spawn(run_dir, config, cache, "killed")
        landed = False
        if mode == "dest":
            target = self.rng.randint(1, ref["total"] - 1)
            r["kill_target_records"] = target
            counter = FileCounter(out)
            writer = None
            deadline = time.monotonic() + HANG_SECS
            while proc.poll() is None and time.monotonic() < deadline:
                if writer is None:
                    writer = find_writer(proc.pid, self.dest_bin)
                if writer is not None and counter.count() >= target:
                    # A finished writer may linger as a zombie: killing it hits nothing.
                    landed = alive(writer)
                    try:
                        os.kill(writer, signal.SIGKILL)
                    except ProcessLookupError:
                        landed = False
                    r["records_in_files_at_kill"] = counter.count()
                    break
                time.sleep(0.0005)
            try:
                code = proc.wait(timeout=HANG_SECS)
            except subprocess.TimeoutExpired:
                r["violations"].append("hang: the host did not exit after its destination was killed")
                proc.kill()
                code = proc.wait()
            if landed and code == 0:
                landed = False  # the destination had finished: the kill hit nothing
        else:
            delay = self.rng.uniform(0, ref["seconds"][cache])
            r["kill_delay_s"] = round(delay, 4)
            try:
                code = proc.wait(timeout=delay)
            except subprocess.TimeoutExpired:
                orphans = children(proc.pid)
                proc.send_signal(signal.SIGKILL)
                code = proc.wait()
                r["records_in_files_at_kill"] = FileCounter(out).count()
                landed = True
                r["destination_running_at_kill"] = bool(orphans)
                left = wait_gone(orphans, ORPHAN_SECS)
                if left:
                    r["violations"].append(
                        f"hang: processes {left} ({[cmdline(p) for p in left]}) outlived the "
                        f"killed host by {ORPHAN_SECS} s")
                    for p in left:
                        os.kill(p, signal.SIGKILL)
        r["killed_exit"] = code
        r["landed"] = landed
        # Nothing of this run may still run (and write) while it is checked and rerun.
        left = wait_gone(run_processes(run_dir), ORPHAN_SECS)
        if left:
            r["violations"].append(f"hang: processes {left} of the killed run still run")
            for p in left:
                os.kill(p, signal.SIGKILL)

        # The state database right after the kill.
        r["integrity_after_kill"] = integrity(os.path.join(run_dir, "state.db"))
        if r["integrity_after_kill"] not in (None, "ok"):
            r["violations"].append(f"integrity: state db after the kill: {r['integrity_after_kill']}")
        if cache:
            r["cache_integrity_after_kill"] = integrity(os.path.join(run_dir, "cache.sqlite"))
            if r["cache_integrity_after_kill"] not in (None, "ok"):
                r["violations"].append(f"integrity: cache after the kill: {r['cache_integrity_after_kill']}")
        states, pair_rows = stored_states(os.path.join(run_dir, "state.db"))
        r["stored_states"] = {s: (st.get("stream") or {}).get("stream_state") for s, st in states}
        r["stored_state_count"] = len(states)
        for s, st in states:
            if "destinationStats" not in st:
                r["violations"].append(f"unechoed: the stored {s} state has no destinationStats")
        if pair_rows:
            r["violations"].append(f"unexpected: {pair_rows} GLOBAL/LEGACY states stored")
        held, partial, bad, staged = held_records(out)
        r["held_after_kill"] = sum(len(v) for v in held.values())
        r["partial_lines_after_kill"] = partial
        r["staged_files_after_kill"] = staged
        need = self.required_by_states(states, ref)
        r["confirmed_records_at_kill"] = sum(len(v) for v in need.values())
        ahead = {s: sorted(ids - set(held.get(s, ()))) for s, ids in need.items()}
        ahead = {s: v for s, v in ahead.items() if v}
        if ahead:
            r["state_ahead"] = {s: {"missing": len(v), "first": v[:5]} for s, v in ahead.items()}
            r["violations"].append(f"state ahead: {r['state_ahead']}")
        if bad:
            r["violations"].append(f"corrupt: {bad} complete lines without a record id after the kill")

        # The rerun, to the end.
        code, _ = self.run_clean(run_dir, config, cache, "rerun")
        r["rerun_exit"] = code
        if code == "hang":
            r["violations"].append(f"hang: the rerun took over {HANG_SECS} s")
        if code != 0:
            r["violations"].append(f"rerun failed ({code}): " + " | ".join(self.tail(run_dir, "rerun")))
        r["integrity_after_rerun"] = integrity(os.path.join(run_dir, "state.db"))
        if r["integrity_after_rerun"] != "ok":
            r["violations"].append(f"integrity: state db after the rerun: {r['integrity_after_rerun']}")
        held, partial, bad, staged = held_records(out)
        missing = {s: sorted(ref["ids"][s] - set(held.get(s, ()))) for s in STREAMS}
        r["missing"] = sum(len(v) for v in missing.values())
        if r["missing"]:
            r["violations"].append(
                "missing: " + json.dumps({s: {"count": len(v), "first": v[:5]} for s, v in missing.items() if v}))
        r["duplicates"] = sum(len(held.get(s, ())) - len(set(held.get(s, ()))) for s in STREAMS)
        r["unknown_ids"] = sum(len(set(held.get(s, ())) - ref["ids"][s]) for s in STREAMS)
        r["partial_lines_after_rerun"] = partial
        r["staged_files_after_rerun"] = staged
        r["corrupt_lines_after_rerun"] = bad
        if r["unknown_ids"] or bad or partial or staged:
            r["violations"].append(
                f"leftovers after the rerun: {r['unknown_ids']} unknown ids, {bad} corrupt lines, "
                f"{partial} partial lines, {staged} staged files")
        r["seconds"] = round(time.monotonic() - started, 3)
        if r["violations"]:
            r["reproduce"] = {
                "killed": self.command(run_dir, config, cache),
                "env": {"AIRLOCK_HOME": os.path.join(run_dir, "home")},
            }
            log(f"run {index} ({mode}, cache {'on' if cache else 'off'}): VIOLATION {r['violations']} "
                f"(kept {run_dir})")
        elif not self.args.keep:
            shutil.rmtree(run_dir)
        return r

    # The whole campaign ---------------------------------------------------------

    def run(self):
        t0 = time.monotonic()
        a = self.args
        # A handful of configs (count, seed, slice size), each with a clean reference run.
        self.configs = []
        for _ in range(a.configs):
            self.configs.append({
                "count": self.rng.randint(a.min_count, a.max_count),
                "seed": self.rng.randrange(1, 2**31),
                "records_per_slice": self.rng.choice([10, 25, 50, 100]),
            })
        log(f"work folder {self.work}; warming the compile cache")
        os.makedirs(os.path.join(self.warm, "root"))
        code, _ = self.run_clean(self.warm, {"count": 10, "seed": 1}, False, "warm")
        if code != 0:
            sys.exit(f"crash-campaign: a first sync failed ({code}): " + " | ".join(self.tail(self.warm, "warm")))
        plan = [("dest", i % 2 == 1) for i in range(a.dest_runs)]
        plan += [("host", i % 2 == 1) for i in range(a.host_runs)]
        self.rng.shuffle(plan)
        with open(os.path.join(self.work, "runs.jsonl"), "w") as runs_file:
            for index, (mode, cache) in enumerate(plan):
                r = self.crash_run(index, mode, cache)
                self.results.append(r)
                runs_file.write(json.dumps(r) + "\n")
                runs_file.flush()
                if (index + 1) % 10 == 0:
                    log(f"{index + 1}/{len(plan)} runs, {time.monotonic() - t0:.0f} s")
        report = self.report(time.monotonic() - t0)
        print(report)
        if a.out:
            with open(a.out, "w") as f:
                f.write(report + "\n")
        bad = [r for r in self.results if r["violations"]]
        if not a.keep and not bad:
            shutil.rmtree(self.work)
        else:
            log(f"kept {self.work} (runs.jsonl has every run)")
        return 1 if bad else 0

    def report(self, wall):
        a = self.args
        rows = []
        cols = ["mode", "cache", "runs", "kills mid-run", "state at kill", "integrity fails",
                "state ahead", "reruns failed", "hangs", "records missing", "duplicates",
                "dup/run (mean, max)"]
        groups = [(m, c) for m in ("dest", "host") for c in (False, True)] + [("all", None)]
        for mode, cache in groups:
            rs = [r for r in self.results
                  if (mode == "all" or r["mode"] == mode) and (cache is None or r["cache"] == cache)]
            if not rs:
                continue
            viol = lambda word: sum(1 for r in rs if any(v.startswith(word) for v in r["violations"]))
            dups = [r["duplicates"] for r in rs]
            rows.append([
                {"dest": "destination killed", "host": "host SIGKILLed", "all": "all"}[mode],
                "-" if cache is None else ("on" if cache else "off"),
                str(len(rs)),
                str(sum(r["landed"] for r in rs)),
                str(sum(r["stored_state_count"] > 0 for r in rs)),
                str(viol("integrity")),
                str(viol("state ahead")),
                str(viol("rerun failed")),
                str(viol("hang")),
                str(sum(r["missing"] for r in rs)),
                str(sum(dups)),
                f"{sum(dups) / len(dups):.0f}, {max(dups)}",
            ])
        widths = [max(len(c), *(len(row[i]) for row in rows)) for i, c in enumerate(cols)]
        line = lambda cells: "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths)) + " |"
        out = []
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, cwd=os.path.dirname(os.path.abspath(__file__))).stdout.strip()
        out.append(f"crash campaign: {len(self.results)} runs ({a.dest_runs} destination kills, "
                   f"{a.host_runs} host kills), seed {a.seed}, commit {commit or '?'}, "
                   f"{os.cpu_count()} CPUs, {time.strftime('%Y-%m-%d %H:%M %Z')}")
        out.append("configs (count, seed, records_per_slice; records per run; clean run s without/with cache):")
        for key, c in enumerate(self.configs):
            ref = self.references.get(key)
            if ref:
                out.append(f"  {c['count']:>6} {c['seed']:>10} {c['records_per_slice']:>4}  "
                           f"{ref['total']:>6} records  {ref['seconds'][False]:.2f} / {ref['seconds'][True]:.2f} s")
        out.append("")
        out.append(line(cols))
        out.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
        out.extend(line(row) for row in rows)
        out.append("")
        dest = [r for r in self.results if r["mode"] == "dest" and r["landed"]]
        if dest:
            frac = [r["records_in_files_at_kill"] / self.references_total(r) for r in dest]
            out.append(f"destination kills: at {min(frac):.0%}..{max(frac):.0%} of the records "
                       f"(median {sorted(frac)[len(frac) // 2]:.0%}); {sum(r['partial_lines_after_kill'] > 0 for r in dest)} "
                       f"left a half-written line, {sum(r['staged_files_after_kill'] > 0 for r in dest)} left staged files")
        host = [r for r in self.results if r["mode"] == "host" and r["landed"]]
        if host:
            out.append(f"host kills: {sum(r.get('destination_running_at_kill', False) for r in host)} with the "
                       f"destination running, {sum(r['held_after_kill'] == 0 for r in host)} before any record "
                       f"reached its files")
        confirmed = [r["confirmed_records_at_kill"] for r in self.results]
        out.append(f"records confirmed by a stored state at the kill: {sum(confirmed)} in all "
                   f"(every one checked present in the destination)")
        out.append(f"wall time: {wall:.0f} s ({wall / max(len(self.results), 1):.2f} s per run, "
                   f"including the rerun and the checks)")
        bad = [r for r in self.results if r["violations"]]
        out.append(f"violations: {len(bad)} runs" + ("" if not bad else ":"))
        for r in bad:
            out.append(f"  run {r['run']} ({r['mode']}, cache {'on' if r['cache'] else 'off'}, "
                       f"{json.dumps(r['config'])}): {'; '.join(r['violations'])}")
            out.append(f"    folder {r['dir']}")
        return "\n".join(out)

    def references_total(self, r):
        for key, c in enumerate(self.configs):
            if c == r["config"]:
                return self.references[key]["total"]
        return 1


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dest-runs", type=int, default=100, help="runs whose destination is killed")
    p.add_argument("--host-runs", type=int, default=100, help="runs whose host is SIGKILLed")
    p.add_argument("--seed", type=int, default=1, help="seed of every random choice")
    p.add_argument("--configs", type=int, default=8, help="distinct faker configs to draw from")
    p.add_argument("--min-count", type=int, default=3000, help="fewest users per config")
    p.add_argument("--max-count", type=int, default=30000, help="most users per config")
    p.add_argument("--airlock", default="target/release/airlock")
    p.add_argument("--destination", default="target/release/destination-local-json")
    p.add_argument("--tmpdir", default=None, help="parent of the work folder")
    p.add_argument("--out", default=None, help="also write the figures to this file")
    p.add_argument("--keep", action="store_true", help="keep every run's folder")
    sys.exit(Campaign(p.parse_args()).run())


if __name__ == "__main__":
    main()
