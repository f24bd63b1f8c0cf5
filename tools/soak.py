#!/usr/bin/env python3
"""Soak and load run of the real daemon, by hand before a release (not part of `swift test`).

    tools/soak.py [--files 1000] [--bin .build/release] [--seed 1] [--keep]

Starts `demucsd` with the small test model on a fresh data folder and, while it works, drops
FILES short WAV files in bursts under hostile names (unicode, spaces, leading dashes, names of
255 bytes), renames and deletes some of them mid-flight, sends SIGHUP, restarts it with SIGTERM
and kills it with SIGKILL a few times (restarting it each time). It samples the daemon's RSS
and open descriptors (/proc/PID/status, /proc/PID/fd) every second. At the end it checks:

- every input still in input/ has exactly one complete output folder (every stem, every format);
- no folder in output/ is incomplete (a deleted input left nothing half written);
- the job table is consistent: nothing queued or running, no input name and content done twice;
- staging is empty;
- descriptors did not grow between the first and the last restart-free stretch (at most a few);
- memory did not grow over the longest life of the process (median RSS of its last quarter at
  most 1.25x that of its second quarter, plus 16 MB);

and prints the figures (files, faults, duration, peak RSS, descriptors at start and end) that
docs/RELIABILITY.md records. Exit status 0 when every check holds.
"""
import argparse
import json
import os
import random
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STEMS = ["drums", "bass", "other", "vocals"]
FORMATS = ["wav", "mp3"]


def wav_bytes(seconds, rng):
    """A 44.1 kHz stereo 16-bit WAV of noise and a tone."""
    frames = int(seconds * 44100)
    base = rng.uniform(100, 900)
    out = bytearray()
    import math
    for i in range(frames):
        t = i / 44100
        v = 0.3 * math.sin(2 * math.pi * base * t) + rng.uniform(-0.05, 0.05)
        s = int(max(-1, min(1, v)) * 32000)
        out += struct.pack("<hh", s, -s)
    header = struct.pack("<4sI4s4sIHHIIHH4sI", b"RIFF", 36 + len(out), b"WAVE", b"fmt ", 16, 1, 2, 44100,
                         44100 * 4, 4, 16, b"data", len(out))
    return header + bytes(out)


def hostile_name(rng, i):
    kind = rng.choice(["plain", "unicode", "spaces", "dash", "long", "mixed"])
    if kind == "plain":
        stem = f"song{i}"
    elif kind == "unicode":
        stem = rng.choice(["人声分离", "Beyoncé", "Ångström", "東京", "😀 emoji", "Ünïcödé"]) + f" {i}"
    elif kind == "spaces":
        stem = f"  a  song   {i}  "
    elif kind == "dash":
        stem = f"-{i} --not-an-option"
    elif kind == "long":
        stem = f"{i}-" + "x" * 300
    else:
        stem = f"-- Ünï {i} (live) [2024] & 'quoted' \"dq\""
    name = stem + ".wav"
    # A file name is at most 255 bytes.
    while len(name.encode()) > 255:
        stem = stem[:-1]
        name = stem + ".wav"
    return name


class Daemon:
    def __init__(self, binaries, data, config, log):
        self.binaries, self.data, self.config, self.log = binaries, data, config, log
        self.process = None
        self.samples = []  # (time, rss kB, fds)
        self.lives = []    # per start: the samples of that process

    def start(self):
        self.process = subprocess.Popen(
            [os.path.join(self.binaries, "demucsd"), "--data", self.data, "--repo",
             os.path.join(ROOT, "Tests/Fixtures/models"), "-n", "tiny4", "--config", self.config],
            stdout=self.log, stderr=self.log, stdin=subprocess.DEVNULL)
        self.lives.append([])
        deadline = time.time() + 30
        while time.time() < deadline and b"watching" not in open(self.log.name, "rb").read()[-20000:]:
            time.sleep(0.1)

    def sample(self):
        if not self.process or self.process.poll() is not None:
            return
        pid = self.process.pid
        try:
            rss = next(int(l.split()[1]) for l in open(f"/proc/{pid}/status") if l.startswith("VmRSS:"))
            fds = len(os.listdir(f"/proc/{pid}/fd"))
            self.samples.append((time.time(), rss, fds))
            self.lives[-1].append((rss, fds))
        except (OSError, StopIteration):
            pass

    def signal(self, number):
        if self.process and self.process.poll() is None:
            self.process.send_signal(number)

    def stop(self, hard=False):
        if not self.process or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGKILL if hard else signal.SIGTERM)
        self.process.wait(timeout=60)


def jobs(binaries, data):
    run = subprocess.run([os.path.join(binaries, "demucsctl"), "jobs", "--json", "--limit", "100000", "--data", data],
                         capture_output=True, text=True)
    return json.loads(run.stdout) if run.returncode == 0 else []


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--bin", default=os.path.join(ROOT, ".build/release"))
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep", action="store_true", help="keep the data folder")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    work = tempfile.mkdtemp(prefix="demucsd-soak-")
    data = os.path.join(work, "data")
    config = os.path.join(work, "demucsd.conf")
    with open(config, "w") as f:
        f.write("[jobs]\nsettle_seconds = 0.3\nthreads = 1\n")
    log = open(os.path.join(work, "daemon.log"), "ab")
    daemon = Daemon(args.bin, data, config, log)
    started = time.time()
    daemon.start()
    inbox = os.path.join(data, "input")
    staging_src = os.path.join(work, "incoming")
    os.makedirs(staging_src)
    dropped, renamed, deleted = [], 0, 0
    faults = {"SIGHUP": 0, "SIGTERM+restart": 0, "SIGKILL+restart": 0}
    # Three SIGKILLs at random points of the run, whatever the draws below.
    kill_at = sorted(rng.sample(range(1, args.files), k=min(3, args.files - 1)))
    i = 0
    while i < args.files:
        burst = min(rng.randint(5, 40), args.files - i)
        for _ in range(burst):
            name = hostile_name(rng, i)
            path = os.path.join(staging_src, name)
            with open(path, "wb") as f:
                f.write(wav_bytes(rng.uniform(0.3, 1.5), rng))
            shutil.move(path, os.path.join(inbox, name))
            dropped.append(name)
            i += 1
        # Mid-flight changes to some of what is there.
        present = [n for n in os.listdir(inbox) if not n.startswith(".")]
        for name in rng.sample(present, k=min(len(present), rng.randint(0, 3))):
            if rng.random() < 0.5:
                new = "renamed " + name
                if len(new.encode()) <= 255:
                    os.rename(os.path.join(inbox, name), os.path.join(inbox, new))
                    renamed += 1
            else:
                os.unlink(os.path.join(inbox, name))
                deleted += 1
        roll = rng.random()
        if roll < 0.08:
            daemon.signal(signal.SIGHUP)
            faults["SIGHUP"] += 1
        elif roll < 0.12:
            daemon.stop()
            daemon.start()
            faults["SIGTERM+restart"] += 1
        if kill_at and i >= kill_at[0]:
            kill_at.pop(0)
            daemon.stop(hard=True)
            daemon.start()
            faults["SIGKILL+restart"] += 1
        for _ in range(rng.randint(1, 4)):
            daemon.sample()
            time.sleep(0.5)

    # Let the queue drain.
    deadline = time.time() + 3600
    while time.time() < deadline:
        daemon.sample()
        rows = jobs(args.bin, data)
        if rows and not any(r["state"] in ("queued", "running") for r in rows) and \
                len({r["file"] for r in rows}) >= 1:
            time.sleep(3)  # the watcher's last settles
            rows = jobs(args.bin, data)
            if not any(r["state"] in ("queued", "running") for r in rows):
                break
        time.sleep(1)
    for _ in range(5):
        daemon.sample()
        time.sleep(1)
    daemon.stop()
    duration = time.time() - started

    problems = []
    rows = jobs(args.bin, data)
    output = os.path.join(data, "output", "demucs")
    expected = sorted(f"{s}.{e}" for s in STEMS for e in FORMATS)
    folders = sorted(os.listdir(output)) if os.path.isdir(output) else []
    for folder in folders:
        files = sorted(os.listdir(os.path.join(output, folder)))
        if files != expected:
            problems.append(f"incomplete output folder {folder!r}: {files}")
    surviving = sorted(n for n in os.listdir(inbox) if not n.startswith("."))
    for name in surviving:
        mine = [r for r in rows if r["file"] == name and r["state"] == "done"]
        outs = {r["output"] for r in mine}
        if len(outs) != 1:
            problems.append(f"input {name!r} has {len(outs)} output folder(s): {sorted(outs)}")
    busy = [r for r in rows if r["state"] in ("queued", "running")]
    if busy:
        problems.append(f"{len(busy)} job(s) still queued or running")
    # No name here is ever given new content, so one name done twice is work done twice.
    done_by_name = {}
    for r in rows:
        if r["state"] == "done":
            done_by_name.setdefault(r["file"], []).append(r["id"])
    for name, ids in done_by_name.items():
        if len(ids) > 1:
            problems.append(f"{name!r} was done {len(ids)} times: jobs {ids}")
    staging = os.path.join(data, "state", "staging")
    if os.path.isdir(staging) and os.listdir(staging):
        problems.append(f"staging not empty: {os.listdir(staging)}")
    # Descriptors within each life of the process, from its third sample (the model loaded, the
    # watch made) to its last.
    lives = [life[2:] for life in daemon.lives if len(life) > 3]
    for n, life in enumerate(lives):
        if life[-1][1] > life[0][1] + 4:
            problems.append(f"descriptors grew from {life[0][1]} to {life[-1][1]} in run {n + 1} of the daemon")
    # Memory within the longest life: the median RSS of its last quarter against that of its
    # second quarter (the first holds the model's load and the first jobs' arenas growing).
    longest = max(lives, key=len, default=[])
    rss_growth = None
    if len(longest) >= 16:
        q = len(longest) // 4
        early = sorted(r for r, _ in longest[q:2 * q])[q // 2]
        late = sorted(r for r, _ in longest[3 * q:])[len(longest[3 * q:]) // 2]
        rss_growth = [round(early / 1024), round(late / 1024)]
        if late > early * 1.25 + 16 * 1024:
            problems.append(f"RSS grew from {early // 1024} MB to {late // 1024} MB over the longest run of the daemon")
    fds_first_stretch = lives[0][0][1] if lives else None
    fds_end = lives[-1][-1][1] if lives else None
    peak_rss = max((s[1] for s in daemon.samples), default=0)
    states = {}
    for r in rows:
        states[r["state"]] = states.get(r["state"], 0) + 1
    print(json.dumps({
        "files_dropped": len(dropped), "renamed": renamed, "deleted": deleted, "faults": faults,
        "duration_s": round(duration), "jobs": states, "output_folders": len(folders),
        "surviving_inputs": len(surviving), "peak_rss_mb": round(peak_rss / 1024),
        "rss_median_mb_second_vs_last_quarter": rss_growth, "longest_life_samples": len(longest),
        "fds_start": fds_first_stretch, "fds_end": fds_end, "problems": problems,
        "data": data if args.keep else None,
    }, indent=2, ensure_ascii=False))
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
