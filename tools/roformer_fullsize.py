#!/usr/bin/env python3
"""The reference's whole-track separation with full-size published RoFormers (hand-run check).

Acceptance point: the full-size architectures of the most used published RoFormer configs
(BS-RoFormer vocals, dim 512 / depth 12, viperx's `model_bs_roformer_ep_317_sdr_12.9755`, the
audio-separator default; Mel-Band RoFormer vocals, Kim's `vocals_mel_band_roformer`), random
weights, on 60 s of music the tests never saw: the reference's whole-track output, its
whole-process time and peak RSS. Not part of the test suite (minutes of CPU per model, hundreds
of MB of weights); its outputs go to a folder outside the repository.

Run from the repository root with the reference environment (docs/ROFORMER.md), niced on a
shared machine:

    PYTHONPATH=~/.cache/roformer-ref nice -n 10 ~/.cache/demucs-ref/bin/python \
        tools/roformer_fullsize.py --out /work/fullsize --music SONG.ogg GUITAR.ogg [--models mel,bs]

What it does:

  1. for each model (MODELS below, in the order given): builds it from the published config
     with a fixed seed, torch's random init, then `fixturelib.perturb_` as
     tools/make_fixtures_roformer.py does (norm gains etc. stop being exactly 1); saves
     OUT/NAME.ckpt (`torch.save` of the float32 state dict, as the published .ckpt files are)
     and OUT/NAME.yaml (the published config, same keys, `!!python/tuple` kept); loads both back
     into a fresh model and checks that one second of the mix gives the same output, and that
     the output is neither silent nor the mix;
  2. writes the 60 s mix as OUT/mix.wav (float32 WAV, 44.1 kHz stereo);
  3. runs the reference once per model in a child process of its own
     (`tools/roformer_fullsize.py --reference NAME --out OUT`): it loads NAME.yaml as
     audio-separator does (`yaml.FullLoader`), builds the model and loads NAME.ckpt through
     audio-separator's own `RoformerLoader`, reads mix.wav, runs `MDXCSeparator.demix` (on an
     instance given only the attributes demix reads, as make_fixtures_roformer.demix_case does;
     the yaml's `inference.dim_t` sets the chunk, `inference.num_overlap` the overlap,
     override_model_segment_size=False) with 2 torch threads, and writes every stem demix
     returns (the one-target models' residual included) as OUT/reference/NAME/STEM.wav (float32
     WAV) and its own load / demix times as OUT/reference/NAME/timing.json;
  4. the parent measures each child's wall time (and CPU time, `os.wait4`); the child's peak
     RSS is its own VmHWM, which it reads at its end (see measure); the parent checks the stems (not silent, not the mix) and writes OUT/reference.json;
     `--no-build` reruns step 3 on the files already in OUT.

The music (not the tests' test.mp3 nor Tests/Fixtures/audio): Debian package
`fretsonfire-songs-muldjord` 2.dfsg-2.1 (bookworm, `all`), "Chaos God" by Muldjord (El Senator),
metal, licensed CC BY-SA 3.0 (the package's /usr/share/doc/fretsonfire-songs-muldjord/copyright
and the song's readme.txt). Frets on Fire ships each song as two synchronised stereo 44.1 kHz
Ogg Vorbis files, `song.ogg` (everything but the lead guitar) and `guitar.ogg`; the mix here is
their sum times MIX_GAIN (0.6: the sum peaks at 1.41 over this stretch), seconds 30 to 90 of the
183.5 s song. Vocals are not verified by ear. To get the files:

    mkdir -p /tmp/music && cd /tmp/music && apt-get download fretsonfire-songs-muldjord && \
        dpkg-deb -x fretsonfire-songs-muldjord_2.dfsg-2.1_all.deb fretsonfire-songs-muldjord
    # then pass both files to --music:
    #   /tmp/music/fretsonfire-songs-muldjord/usr/share/games/fretsonfire/data/songs/muldjord/chaos_god/song.ogg
    #   /tmp/music/fretsonfire-songs-muldjord/usr/share/games/fretsonfire/data/songs/muldjord/chaos_god/guitar.ogg

Each file is decoded whole by ffmpeg to 44.1 kHz stereo float32 (`-f f32le -ac 2 -ar 44100`) and
cut in numpy (sample-exact, unlike an input seek in an Ogg file).
"""
import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import soundfile
import torch
import yaml

TOOLS = Path(__file__).resolve().parent
REFERENCE_VERSION = "0.47.1"
RATE = 44100
OFFSET_S = 30.0
SECONDS = 60.0
MIX_GAIN = 0.6
THREADS = 2
DITHER_SEED = 1

# The 62-band split of the published BS-RoFormers (sums to 1025 bins at n_fft 2048).
PUBLISHED_BANDS = (2,) * 24 + (4,) * 12 + (12,) * 8 + (24,) * 8 + (48,) * 8 + (128, 129)
MULTI_STFT = dict(multi_stft_resolution_loss_weight=1.0,
                  multi_stft_resolutions_window_sizes=(4096, 2048, 1024, 512, 256),
                  multi_stft_hop_size=147, multi_stft_normalized=False)

# viperx's BS-RoFormer 1297 (`model_bs_roformer_ep_317_sdr_12.9755.ckpt`, audio-separator's
# default model). Values: ZFTurbo/Music-Source-Separation-Training,
# configs/viperx/model_bs_roformer_ep_317_sdr_12.9755.yaml (commit d9672dac), the config that
# MSST and most tools pair with this checkpoint. audio-separator downloads a file of the same
# name from its model repository at run time; that copy could not be read here, so this is the
# MSST one, every key and value as there (dropouts 0.1 are inert in eval mode; the class default
# of every key the file lacks is kept, e.g. mlp_expansion_factor 4).
BS_CONFIG = {
    "audio": {"chunk_size": 352800, "dim_f": 1024, "dim_t": 801, "hop_length": 441, "n_fft": 2048,
              "num_channels": 2, "sample_rate": 44100, "min_mean_abs": 0.0},
    "model": dict(dim=512, depth=12, stereo=True, num_stems=1, time_transformer_depth=1,
                  freq_transformer_depth=1, linear_transformer_depth=0, freqs_per_bands=PUBLISHED_BANDS,
                  dim_head=64, heads=8, attn_dropout=0.1, ff_dropout=0.1, flash_attn=True,
                  dim_freqs_in=1025, stft_n_fft=2048, stft_hop_length=441, stft_win_length=2048,
                  stft_normalized=False, mask_estimator_depth=2, **MULTI_STFT),
    "training": {"batch_size": 2, "gradient_accumulation_steps": 1, "grad_clip": 0,
                 "instruments": ["vocals", "other"], "lr": 1.0e-05, "patience": 2, "reduce_factor": 0.95,
                 "target_instrument": "vocals", "num_epochs": 1000, "num_steps": 1000, "q": 0.95,
                 "coarse_loss_clip": True, "ema_momentum": 0.999, "optimizer": "adam", "other_fix": True,
                 "use_amp": True},
    "inference": {"batch_size": 4, "dim_t": 801, "num_overlap": 2},
}

# Kim's Mel-Band RoFormer vocals (`vocals_mel_band_roformer.ckpt` in audio-separator, "MelBand
# Roformer | Vocals by Kimberley Jensen"; its fine-tunes by unwa, SYH99999 and others share the
# architecture). Values: audio-separator's own `vocals_mel_band_roformer.yaml` (its model-configs
# release, sha256 b958b29c...cd38), as quoted in full by a third-party project that pins it. Its
# `model` section is KimberleyJensen/Mel-Band-Roformer-Vocal-Model
# configs/config_vocals_mel_band_roformer.yaml (and MSST's
# configs/KimberleyJensen/config_vocals_mel_band_roformer_kj.yaml) key for key; it adds the
# `audio` section and `inference.dim_t: 1101`, which audio-separator's demix needs
# (chunk = 441 * 1100 = 485100 samples), with `num_overlap: 1` (Kim's repo: 1, later 2; MSST: 2).
MEL_CONFIG = {
    "audio": {"chunk_size": 352800, "dim_f": 1024, "dim_t": 256, "hop_length": 441, "n_fft": 2048,
              "num_channels": 2, "sample_rate": 44100, "min_mean_abs": 0.001},
    "model": dict(dim=384, depth=6, stereo=True, num_stems=1, time_transformer_depth=1,
                  freq_transformer_depth=1, num_bands=60, dim_head=64, heads=8, attn_dropout=0,
                  ff_dropout=0, flash_attn=True, dim_freqs_in=1025, sample_rate=44100, stft_n_fft=2048,
                  stft_hop_length=441, stft_win_length=2048, stft_normalized=False,
                  mask_estimator_depth=2, **MULTI_STFT),
    "training": {"instruments": ["vocals", "other"], "target_instrument": "vocals"},
    "inference": {"dim_t": 1101, "num_overlap": 1, "chunk_size": 352800},
}

# short name: (file stem, class name, seed, config)
MODELS = {
    "mel": ("mel_band_roformer_kim_vocals", "MelBandRoformer", 31, MEL_CONFIG),
    "bs": ("bs_roformer_viperx_1297", "BSRoformer", 32, BS_CONFIG),
}


def log(*args):
    print(*args, flush=True)


def model_class(name):
    if name == "BSRoformer":
        from audio_separator.separator.uvr_lib_v5.roformer.bs_roformer import BSRoformer
        return BSRoformer
    from audio_separator.separator.uvr_lib_v5.roformer.mel_band_roformer import MelBandRoformer
    return MelBandRoformer


def check_version():
    from importlib.metadata import version
    got = version("audio-separator")
    if got != REFERENCE_VERSION:
        import audio_separator
        raise SystemExit(f"audio-separator {got} imported from {audio_separator.__file__}; the reference is {REFERENCE_VERSION}")


def decode(path):
    raw = subprocess.run(["ffmpeg", "-v", "error", "-nostdin", "-i", str(path), "-vn", "-f", "f32le", "-ac", "2",
                          "-ar", str(RATE), "-"], check=True, capture_output=True).stdout
    return np.frombuffer(raw, dtype=np.float32).reshape(-1, 2)


def make_mix(paths, gain):
    first, count = int(OFFSET_S * RATE), int(SECONDS * RATE)
    parts = [decode(p) for p in paths]
    for p, part in zip(paths, parts):
        if part.shape[0] < first + count:
            raise SystemExit(f"{p}: {part.shape[0] / RATE:.1f} s, shorter than {OFFSET_S + SECONDS:.0f} s")
    mix = gain * sum(part[first:first + count].astype(np.float64) for part in parts)
    # Rendered as a 16-bit master with TPDF dither (seeded), as music on a CD or in a WAV is:
    # the Ogg Vorbis source leaves whole bands at exactly zero in quiet passages, where a band's
    # RMSNorm turns the STFT's rounding noise into unit-size features, and there the reference
    # in float32 and in float64 agree to only ~50 dB (18 dB at the band split), so no float32
    # port could be held to 60 dB. Dithered, the reference's float32 and float64 outputs agree
    # to 96 dB in the worst second measured.
    rng = np.random.default_rng(DITHER_SEED)
    dither = rng.random(mix.shape) - rng.random(mix.shape)
    mix = np.round(mix * 32767 + dither) / 32767
    return np.ascontiguousarray(mix.astype(np.float32))  # (frames, 2)


def stem_stats(stem, mix):
    """RMS of the stem, of stem - mix, of the mix (all over both channels)."""
    rms = lambda x: float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))
    return {"rms": round(rms(stem), 6), "rms_minus_mix": round(rms(stem - mix), 6), "mix_rms": round(rms(mix), 6),
            "peak": round(float(np.max(np.abs(stem))), 4)}


def sane(stats):
    """Not silent, and not the mix (nor zero next to it)."""
    return stats["rms"] > 1e-3 * stats["mix_rms"] and stats["rms_minus_mix"] > 1e-2 * stats["mix_rms"]


def tools_module(name):
    """A module of tools/ (fixturelib, make_fixtures_roformer), imported where it is used (they
    import demucs and librosa, so not at this script's start)."""
    sys.path.insert(0, str(TOOLS))
    import importlib
    return importlib.import_module(name)


def build(out, key, mix):
    fixturelib = tools_module("fixturelib")
    fx = tools_module("make_fixtures_roformer")

    name, cls_name, seed, cfg = MODELS[key]
    cls = model_class(cls_name)
    t0 = time.time()
    torch.manual_seed(seed)
    model = cls(**cfg["model"]).eval()
    fixturelib.perturb_(model, seed, lambda _m, _n, _t: False)
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    torch.save(state, out / f"{name}.ckpt")
    (out / f"{name}.yaml").write_text(yaml.dump(cfg, Dumper=fx.TupleDumper, sort_keys=False))
    params = sum(p.numel() for p in model.parameters())

    loaded = yaml.load((out / f"{name}.yaml").read_text(), Loader=yaml.FullLoader)
    assert loaded == cfg, f"{name}: the .yaml does not read back as written"
    again = cls(**loaded["model"]).eval()
    again.load_state_dict(torch.load(out / f"{name}.ckpt"))
    x = torch.from_numpy(np.ascontiguousarray(mix[:RATE].T))[None]
    with torch.no_grad():
        y, y_again = model(x), again(x)
    assert torch.equal(y, y_again), f"{name}: the saved files do not give the same output"
    y = y.reshape(2, -1).numpy()
    stats = stem_stats(y, x[0, :, : y.shape[-1]].numpy())
    assert sane(stats), f"{name}: one second through the model looks trivial: {stats}"
    del model, again, state
    log(f"{name}: {params} parameters, {(out / f'{name}.ckpt').stat().st_size / 2**20:.0f} MiB, "
        f"1 s check {stats}, {time.time() - t0:.0f} s")
    return {"name": name, "class": cls_name, "seed": seed, "parameters": params, "one_second_check": stats}


def run_reference(out, key):
    """Child process: the reference's whole-track separation of OUT/mix.wav with model KEY."""
    t_start = time.time()
    torch.set_num_threads(THREADS)
    from audio_separator.separator.architectures.mdxc_separator import MDXCSeparator
    from audio_separator.separator.roformer.roformer_loader import RoformerLoader
    fx = tools_module("make_fixtures_roformer")  # its reference_demix: the same driver call as the fixtures'
    check_version()

    name = MODELS[key][0]
    cfg = yaml.load(open(out / f"{name}.yaml", encoding="utf-8"), Loader=yaml.FullLoader)
    result = RoformerLoader().load_model(model_path=str(out / f"{name}.ckpt"), config=cfg, device="cpu")
    if not getattr(result, "success", False) or result.model is None:
        raise SystemExit(f"{name}: RoformerLoader failed: {getattr(result, 'error_message', None)}")
    model = result.model.eval()
    audio, rate = soundfile.read(str(out / "mix.wav"), dtype="float32", always_2d=True)
    assert rate == RATE and audio.shape[1] == 2
    t_loaded = time.time()

    mix = np.ascontiguousarray(audio.T)
    sources = fx.reference_demix(model, cfg, mix)
    t_demixed = time.time()

    stems_dir = out / "reference" / name
    stems_dir.mkdir(parents=True, exist_ok=True)
    for stem, wave in sources.items():
        wave = np.asarray(wave, dtype=np.float32)
        assert wave.shape == mix.shape, f"{name}/{stem}: {wave.shape}"
        soundfile.write(str(stems_dir / f"{stem}.wav"), np.ascontiguousarray(wave.T), RATE, subtype="FLOAT")
    hop = cfg["model"]["stft_hop_length"]
    chunk = hop * (cfg["inference"]["dim_t"] - 1)
    step = chunk // cfg["inference"]["num_overlap"]
    timing = {"vm_hwm_mb": vm_hwm_mb(), "import_and_load_s": round(t_loaded - t_start, 2), "demix_s": round(t_demixed - t_loaded, 2),
              "write_s": round(time.time() - t_demixed, 2), "loader": dict(result.model_info),
              "chunk_samples": chunk, "step_samples": step,
              "chunks": len(MDXCSeparator._roformer_chunk_starts(mix.shape[1], chunk, step)),
              "torch_threads": torch.get_num_threads(), "stems": sorted(sources)}
    (stems_dir / "timing.json").write_text(json.dumps(timing, indent=2) + "\n")


def vm_hwm_mb():
    """This process's peak resident set (Linux /proc/self/status VmHWM), in MiB."""
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    return None


def measure(out, key):
    """Runs the child for KEY: its wall time, its CPU times (os.wait4) and its peak RSS.

    The peak RSS is the child's own VmHWM, read by the child at its end. The rusage maxrss that
    os.wait4 (or RUSAGE_CHILDREN, or time -v) reports is not that on Linux: it is at least the
    parent's RSS at the fork (the forked copy counts the parent's pages until the exec), so after
    the build step it is the parent's few GB; it is kept as wait4_maxrss_mb, a bound only."""
    name = MODELS[key][0]
    cmd = [sys.executable, str(Path(__file__).resolve()), "--reference", key, "--out", str(out)]
    env = dict(os.environ, OMP_NUM_THREADS=str(THREADS), MKL_NUM_THREADS=str(THREADS))
    (out / "reference" / name).mkdir(parents=True, exist_ok=True)
    log_path = out / "reference" / name / "log.txt"
    log(f"{name}: reference run started, log {log_path}")
    with open(log_path, "w") as logf:
        t0 = time.monotonic()
        child = subprocess.Popen(cmd, env=env, stdout=logf, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(child.pid, 0)
        seconds = time.monotonic() - t0
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        raise SystemExit(f"{name}: the reference run failed ({child.returncode}); see {log_path}")
    timing = json.loads((out / "reference" / name / "timing.json").read_text())
    mix, _ = soundfile.read(str(out / "mix.wav"), dtype="float32", always_2d=True)
    stems = {}
    for stem in timing["stems"]:
        wave, _ = soundfile.read(str(out / "reference" / name / f"{stem}.wav"), dtype="float32", always_2d=True)
        stems[stem] = stem_stats(wave, mix)
        stems[stem]["file"] = f"reference/{name}/{stem}.wav"
        stems[stem]["sane"] = sane(stems[stem])
    cfg = MODELS[key][3]
    return {
        "name": name, "model": f"{name}.yaml", "weights": f"{name}.ckpt", "class": MODELS[key][1],
        "seconds": round(seconds, 2), "peak_rss_mb": timing["vm_hwm_mb"],
        "wait4_maxrss_mb": round(usage.ru_maxrss / 1024, 1),
        "user_cpu_s": round(usage.ru_utime, 2), "system_cpu_s": round(usage.ru_stime, 2),
        "threads": THREADS, "torch": torch.__version__, "audio_separator": REFERENCE_VERSION,
        "audio_seconds": SECONDS, "dim_t": cfg["inference"]["dim_t"], "num_overlap": cfg["inference"]["num_overlap"],
        "command": " ".join(shlex.quote(c) for c in cmd), "child": timing, "stems": stems,
    }


def run_ours(out, key, demucsctl):
    """demucsctl separate on OUT/mix.wav with model KEY, as a whole process under /usr/bin/time:
    its wall time and peak RSS."""
    name = MODELS[key][0]
    dest = out / "ours"
    cmd = [str(demucsctl), "separate", "--repo", str(out), "-n", name, "-o", str(dest), "--float32",
           "--clip-mode", "none", str(out / "mix.wav")]
    timing = out / "ours" / f"{name}.time"
    dest.mkdir(parents=True, exist_ok=True)
    log(f"{name}: demucsctl run started")
    subprocess.run(["/usr/bin/time", "-f", "%e %M %U %S", "-o", str(timing)] + cmd, check=True,
                   stdout=subprocess.DEVNULL)
    wall, rss_kb, user, system = timing.read_text().split()[-4:]
    return {"seconds": round(float(wall), 2), "peak_rss_mb": round(int(rss_kb) / 1024, 1),
            "user_cpu_s": float(user), "system_cpu_s": float(system),
            "command": " ".join(shlex.quote(c) for c in cmd)}


def compare(out, key):
    """Every stem demucsctl wrote against the reference's: SNR over the whole track and in its
    worst second."""
    snr = tools_module("fixturelib").snr_db
    name = MODELS[key][0]
    stems = {}
    for wav in sorted((out / "ours" / name / "mix").glob("*.wav")):
        mine, _ = soundfile.read(str(wav), dtype="float64", always_2d=True)
        ref, _ = soundfile.read(str(out / "reference" / name / wav.name), dtype="float64", always_2d=True)
        assert mine.shape == ref.shape, f"{wav}: {mine.shape} vs {ref.shape}"
        worst = min(snr(ref[i:i + RATE], mine[i:i + RATE]) for i in range(0, ref.shape[0], RATE))
        stems[wav.stem] = {"snr_db": round(float(snr(ref, mine)), 1), "worst_second_snr_db": round(float(worst), 1)}
    return stems


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--music", nargs="+", type=Path, help="audio file(s), summed (see the docstring)")
    ap.add_argument("--gain", type=float, default=MIX_GAIN)
    ap.add_argument("--models", default="mel,bs", help="comma-separated, in run order: " + ",".join(MODELS))
    ap.add_argument("--no-build", action="store_true", help="reuse OUT's .ckpt/.yaml/mix.wav, rerun the references")
    ap.add_argument("--demucsctl", type=Path, help="also run this demucsctl (a release build) on the mix, "
                    "before each reference run, and compare: SNR per stem, time and peak RSS ratios")
    ap.add_argument("--reference", choices=sorted(MODELS), help=argparse.SUPPRESS)
    args = ap.parse_args()
    out = args.out.resolve()
    if args.reference:
        run_reference(out, args.reference)
        return
    check_version()
    keys = [k for k in args.models.split(",") if k]
    for k in keys:
        if k not in MODELS:
            raise SystemExit(f"unknown model {k!r}; known: {', '.join(MODELS)}")
    out.mkdir(parents=True, exist_ok=True)
    report_path = out / "reference.json"
    report = json.loads(report_path.read_text()) if report_path.exists() else {"models": {}}
    if not args.no_build:
        if not args.music:
            raise SystemExit("--music is needed unless --no-build")
        mix = make_mix(args.music, args.gain)
        soundfile.write(str(out / "mix.wav"), mix, RATE, subtype="FLOAT")
        report["mix"] = {"file": "mix.wav", "sources": [str(p) for p in args.music], "gain": args.gain,
                         "offset_s": OFFSET_S, "seconds": SECONDS, "rate": RATE, "peak": round(float(np.abs(mix).max()), 4)}
        log(f"mix.wav: {SECONDS:.0f} s from {OFFSET_S:.0f} s of {', '.join(p.name for p in args.music)}, "
            f"peak {report['mix']['peak']}")
        torch.set_num_threads(THREADS)
        report.setdefault("build", {})
        for k in keys:
            report["build"][k] = build(out, k, mix)
    report["machine"] = {"cpus": os.cpu_count(), "processor": platform.processor() or platform.machine(),
                         "python": platform.python_version(), "nice": os.nice(0)}
    for k in keys:
        ours = run_ours(out, k, args.demucsctl.resolve()) if args.demucsctl else None
        entry = measure(out, k)
        if ours:
            ours["stems"] = compare(out, k)
            entry["ours"] = ours
            entry["time_ratio"] = round(ours["seconds"] / entry["seconds"], 3)
            entry["rss_ratio"] = round(ours["peak_rss_mb"] / entry["peak_rss_mb"], 3)
        report["models"][k] = entry
        report_path.write_text(json.dumps(report, indent=2) + "\n")
        log(f"{entry['name']}: {entry['seconds']} s, peak RSS {entry['peak_rss_mb']} MB "
            f"(load {entry['child']['import_and_load_s']} s, demix {entry['child']['demix_s']} s, "
            f"{entry['child']['chunks']} chunks of {entry['child']['chunk_samples']})")
        for stem, s in entry["stems"].items():
            log(f"  {stem}: rms {s['rms']} (mix {s['mix_rms']}), rms of stem - mix {s['rms_minus_mix']}, "
                f"peak {s['peak']}{'' if s['sane'] else '  <-- looks trivial'}")
        if ours:
            log(f"  demucsctl: {ours['seconds']} s ({entry['time_ratio']}x), peak RSS {ours['peak_rss_mb']} MB "
                f"({entry['rss_ratio']}x), SNR {ours['stems']}")
    log(f"wrote {report_path}")


if __name__ == "__main__":
    main()
