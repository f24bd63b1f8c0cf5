#!/usr/bin/env python3
"""Benchmark and full-size parity check: demucsctl against PyTorch demucs, same machine, same run.

Builds a full-size model of the official architecture with random weights (or takes a real
checkpoint with --weights), writes it both as demucs's `.th` (for PyTorch's CLI) and as the
safetensors hub layout (for demucsctl), makes a stereo test track from music the parity tests
never use, then runs both command lines on it as whole processes and prints wall time, peak RSS,
their ratios and the SNR of every stem.

Run by hand with the PyTorch reference (see ../shared/reference/README.md):

    swift build -c release --product demucsctl
    ~/.cache/demucs-ref/bin/python tools/bench.py --seconds 60

The demucs 2.0.3 architectures (`--arch v2demucs`, `--arch tasnet`) need v2 first on the path
(installed apart: pip install --no-deps --target DIR demucs==2.0.3 diffq) and run PyTorch through
tools/v2_separate.py:

    PYTHONPATH=DIR ~/.cache/demucs-ref/bin/python tools/bench.py --arch tasnet --seconds 60

CI never runs this. Results go into docs/PERFORMANCE.md with the command that produced them.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from safetensors.torch import save_file

REPO = Path(__file__).resolve().parent.parent
SOURCES = ["drums", "bass", "other", "vocals"]


def encode_kwargs(value):
    if isinstance(value, Fraction):
        return {"_type": "fraction", "numerator": value.numerator, "denominator": value.denominator}
    if isinstance(value, dict):
        return {k: encode_kwargs(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [encode_kwargs(v) for v in value]
    return value


def build_model(arch, seed):
    torch.manual_seed(seed)
    if arch == "htdemucs":
        from demucs.htdemucs import HTDemucs
        return HTDemucs(sources=SOURCES, bottom_channels=512, dconv_mode=3, t_layers=5,
                        segment=Fraction(39, 5))
    if arch == "demucs":
        # The waveform U-Net with demucs 4.1's defaults (133,753,064 parameters): DConv in the
        # encoder, with BLSTM and LocalState attention in layers 4 and 5, 40 s segments.
        from demucs.demucs import Demucs
        return Demucs(sources=SOURCES, channels=64, depth=6)
    if arch == "hdemucs":
        # Hybrid Demucs v3 as hdemucs_mmi: all defaults (83,637,832 parameters).
        from demucs.hdemucs import HDemucs
        return HDemucs(sources=SOURCES, channels=48)
    if arch in V2_ARCHS:
        import demucs
        if not demucs.__version__.startswith("2."):
            raise SystemExit(f"--arch {arch} needs demucs 2.0.3 first on PYTHONPATH (see tools/v2_separate.py)")
        if arch == "v2demucs":
            # `-n demucs` of demucs 2.0.3: Demucs(sources=SOURCES), 265,679,496 parameters.
            from demucs.model import Demucs
            return Demucs(sources=SOURCES)
        # `-n tasnet`: ConvTasNet(X=10, sources=SOURCES), 10,977,872 parameters.
        from demucs.tasnet import ConvTasNet
        return ConvTasNet(X=10, sources=SOURCES)
    raise SystemExit(f"unknown architecture {arch}")


V2_ARCHS = ("v2demucs", "tasnet")


def save_v2(model, name, workdir, demucsctl):
    """demucs 2.0.3's save_model package (for tools/v2_separate.py), imported by demucsctl."""
    import argparse as ap
    args, kwargs = model._init_args_kwargs
    th_repo, st_repo = workdir / "repo_th", workdir / "repo_st"
    th_repo.mkdir(parents=True, exist_ok=True)
    st_repo.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}
    torch.save({"klass": type(model), "args": args, "kwargs": kwargs, "state": state,
                "training_args": ap.Namespace(diffq=0, qat=None, q_min_size=1)}, th_repo / f"{name}.th")
    subprocess.run([demucsctl, "models", "import", "--force", "--repo", str(st_repo), str(th_repo / f"{name}.th")],
                   check=True, stdout=subprocess.DEVNULL)
    return sum(p.numel() for p in model.parameters())


def save_both(model, name, sig, workdir):
    """The same weights as demucs's .th (for its CLI) and as hub safetensors (for demucsctl)."""
    from demucs.states import get_state
    args, kwargs = model._init_args_kwargs
    klass = f"{type(model).__module__}.{type(model).__name__}"
    th_repo, st_repo = workdir / "repo_th", workdir / "repo_st"
    th_repo.mkdir(parents=True, exist_ok=True)
    st_repo.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}
    torch.save({"klass": type(model), "args": args, "kwargs": kwargs, "state": state}, th_repo / f"{sig}.th")
    save_file(state, str(st_repo / f"{sig}.safetensors"), metadata={
        "klass": klass, "args": json.dumps(encode_kwargs(list(args))),
        "kwargs": json.dumps(encode_kwargs(kwargs))})
    for repo in (th_repo, st_repo):
        (repo / f"{name}.yaml").write_text(f"models: ['{sig}']\n")
    return sum(p.numel() for p in model.parameters())


def make_track(path, seconds, source):
    """A stereo track from music the parity fixtures do not use: the test clip played forwards,
    backwards and with its channels swapped, tiled to the requested length."""
    data, sr = sf.read(source, dtype="float32", always_2d=True)
    pieces = [data, data[::-1], data[:, ::-1] * 0.8]
    track = np.concatenate(pieces * (int(seconds * sr) // sum(len(p) for p in pieces) + 1))
    track = track[: int(seconds * sr)]
    sf.write(path, track, sr, subtype="FLOAT")


def run(cmd, env=None):
    """Runs a whole process; returns (wall seconds, peak RSS in MB).

    The peak RSS comes from GNU time (`/usr/bin/time`, Debian package `time`), which reports
    its own child's. Read straight from `wait4` here it is wrong for any process smaller than
    this script: a child forked (or vforked) from Python inherits the parent's memory high-water
    mark through exec, so demucsctl's 620 MB read as this script's 860 MB."""
    gnu_time = shutil.which("time", path="/usr/bin:/bin")
    with tempfile.NamedTemporaryFile("r", suffix=".rss") as rss_file:
        wrapped = [gnu_time, "-q", "-f", "%M", "-o", rss_file.name] + cmd if gnu_time else cmd
        start = time.monotonic()
        proc = subprocess.Popen(wrapped, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.monotonic() - start
        err = proc.stderr.read().decode(errors="replace")
        if status != 0:
            raise SystemExit(f"{cmd[0]} failed ({status}):\n{err[-2000:]}")
        if gnu_time:
            return wall, int(rss_file.read().split()[-1]) / 1024
    print("warning: /usr/bin/time not found (apt install time); peak RSS includes this script's", file=sys.stderr)
    return wall, usage.ru_maxrss / 1024


def snr(ref, est):
    return 10 * np.log10((ref ** 2).sum() / max(((ref - est) ** 2).sum(), 1e-30))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arch", default="htdemucs",
                        help="htdemucs, hdemucs, demucs; v2demucs and tasnet (demucs 2.0.3 on PYTHONPATH)")
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--input", help="audio file to use instead of the generated track")
    parser.add_argument("--workdir", default="/tmp/demucsd-bench")
    parser.add_argument("--demucsctl", default=str(REPO / ".build/release/demucsctl"))
    parser.add_argument("--repeat", type=int, default=1, help="alternate runs of both, report the best")
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--demucsctl-args", default="", help="extra flags for demucsctl, e.g. '--precision bf16'")
    parser.add_argument("--min-snr", type=float, default=60, help="parity threshold in dB (40 for --precision bf16)")
    args = parser.parse_args()

    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    name, sig = f"bench_{args.arch}", "ba5eba11"
    model = build_model(args.arch, args.seed)
    v2 = args.arch in V2_ARCHS
    params = save_v2(model, name, workdir, args.demucsctl) if v2 else save_both(model, name, sig, workdir)
    del model
    track = Path(args.input) if args.input else workdir / "track.wav"
    if not args.input:
        make_track(track, args.seconds, REPO.parent / "shared/test-audio/test.mp3")
    info = sf.info(str(track))

    common = ["-n", name, "--shifts", "0", "--float32", "--clip-mode", "none"]
    torch_cmd = [sys.executable, "-m", "demucs.separate", "--repo", str(workdir / "repo_th"), "-o",
                 str(workdir / "out_torch"), "-d", "cpu"] + common + [str(track)]
    if v2:
        # v2 has no --clip-mode: it always rescales a stem whose peak passes 1, as demucsctl's default.
        common = ["-n", name, "--shifts", "0", "--float32"]
        torch_cmd = [sys.executable, str(REPO / "tools/v2_separate.py"), "--models", str(workdir / "repo_th"),
                     "-o", str(workdir / "out_torch")] + common + [str(track)]
    swift_cmd = [args.demucsctl, "separate", "--repo", str(workdir / "repo_st"), "-o",
                 str(workdir / "out_swift")] + common + args.demucsctl_args.split() + [str(track)]
    results = {"torch": [], "swift": []}
    for _ in range(args.repeat):
        results["torch"].append(run(torch_cmd))
        results["swift"].append(run(swift_cmd))
    t_time, t_rss = min(r[0] for r in results["torch"]), max(r[1] for r in results["torch"])
    s_time, s_rss = min(r[0] for r in results["swift"]), max(r[1] for r in results["swift"])

    stem_dir = track.stem
    snrs = {}
    for stem in SOURCES:
        ref, _ = sf.read(workdir / "out_torch" / name / stem_dir / f"{stem}.wav", dtype="float64")
        est, _ = sf.read(workdir / "out_swift" / name / stem_dir / f"{stem}.wav", dtype="float64")
        snrs[stem] = snr(ref, est)

    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    print(f"model: {args.arch} ({params:,} parameters, random weights, seed {args.seed})")
    print(f"audio: {info.duration:.1f} s, {info.channels} ch, {info.samplerate} Hz; cpu: {cpu}, {os.cpu_count()} cores")
    print(f"{'':10} {'time (s)':>9} {'x audio':>8} {'peak RSS (MB)':>14}")
    print(f"{'pytorch':10} {t_time:9.1f} {t_time / info.duration:8.2f} {t_rss:14.0f}")
    print(f"{'demucsctl':10} {s_time:9.1f} {s_time / info.duration:8.2f} {s_rss:14.0f}")
    print(f"ratio demucsctl/pytorch: time {s_time / t_time:.2f}, peak RSS {s_rss / t_rss:.2f}")
    print("SNR vs pytorch (dB): " + ", ".join(f"{k} {v:.1f}" for k, v in snrs.items()))
    if min(snrs.values()) < args.min_snr:
        print(f"PARITY FAILED: a stem is below {args.min_snr:g} dB", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
