#!/usr/bin/env python3
"""Build the parity fixtures under Tests/Fixtures/ from PyTorch demucs itself.

Run by hand with the reference environment (see docs in Tests/Fixtures/README.md):

    ~/.cache/demucs-ref/bin/python tools/make_fixtures.py

What it does, in order:
  1. builds small randomly initialised HTDemucs models (fixed seeds), perturbs
     every float tensor so that all branches (DConv, transformer, norms) matter,
     and rounds every weight to float16 (the stored dtype);
  2. writes them in the demucs >= 4.1 hub layout (<sig>.safetensors + <name>.yaml)
     under Tests/Fixtures/models/, and as legacy <sig>.th files in a temporary
     repo folder that demucs's own CLI reads with `--repo DIR -n NAME`;
  3. writes the input audio under Tests/Fixtures/audio/ as 16-bit FLAC;
  4. runs `python -m demucs.separate` on each case and stores the stems as
     24-bit FLAC under Tests/Fixtures/expected/<case>/, each quantised to the
     fewest bits that keep >= 80 dB SNR against the float32 CLI output (the low
     bits are zero, which FLAC stores for free), plus cases.json;
  5. dumps per-layer activations of one forward pass of tiny4 into
     Tests/Fixtures/debug/tiny4_layers.safetensors.

CI never runs this; the outputs are committed. Everything is seeded, so a rerun
with the same torch / demucs versions gives the same files.
"""
import argparse
import json
import math
import sys
from fractions import Fraction
from importlib.metadata import version
from pathlib import Path

import numpy as np
import soundfile
import sphn
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
# (run_cli, write_stem_flac and write_safetensors are also used as make_fixtures.* by
# tools/make_fixtures_import.py.)
from fixturelib import (  # noqa: E402,F401  (helpers shared by the fixture generators)
    NORM_PARAM, bag_yaml, branch_check as _branch_check, case_entry, check_init_args,
    check_round_trip, finish, full_kwargs, in_process_separate, keep_output, log, make_tmp,
    reset_dirs, round_weights_, run_cli, save_safetensors, save_th, store_stems, write_cases,
    write_safetensors, write_stem_flac)
from fixturelib import perturb_ as _perturb_  # noqa: E402

import demucs  # noqa: E402
from demucs.apply import BagOfModels  # noqa: E402
from demucs.htdemucs import HTDemucs  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO_ROOT / "Tests" / "Fixtures"
DEFAULT_MP3 = Path("/work/shared/test-audio/test.mp3")

KLASS = "demucs.htdemucs.HTDemucs"
SOURCES4 = ["drums", "bass", "other", "vocals"]
SOURCES6 = ["drums", "bass", "other", "vocals", "guitar", "piano"]

# Architecture overrides on top of the HTDemucs defaults: the official htdemucs
# layer structure (nfft 4096, depth 4, bottom channels, cross transformer with
# self / cross / self layers, DConv in encoder and decoder) at a tiny width.
TINY_ARCH = dict(
    audio_channels=2,
    channels=4,
    growth=2,
    nfft=4096,
    depth=4,
    bottom_channels=32,
    t_layers=3,
    t_heads=4,
    t_hidden_scale=4.0,
    dconv_mode=3,
    dconv_comp=2,
    samplerate=44100,
    segment=Fraction(1, 1),
)

# name -> (sources, construction seed, signature). Signatures are fixed, made-up
# 8 character hex strings; they name the files like the real hub signatures do.
MODELS = {
    "tiny4": (SOURCES4, 1004, "7e1a4c02"),
    "tiny6": (SOURCES6, 1006, "6b5d9e13"),
    "bag2_m1": (SOURCES4, 2001, "b2a1d7e8"),
}

# name -> (member models, weights matrix or None). bag2's first member is tiny4
# itself, which saves a model file; with these weights bag2's drums are tiny4's
# drums, its bass is bag2_m1's, and other / vocals mix both.
BAGS = {
    "tiny4": (["tiny4"], None),
    "tiny6": (["tiny6"], None),
    "bag2": (["tiny4", "bag2_m1"], [[1.0, 0.0, 0.5, 1.0], [0.0, 1.0, 0.5, 0.25]]),
}

# Input clips: name -> (start in the MP3 in seconds, length in seconds). All are
# longer than the 1 s segment, so every case runs several overlapping chunks with
# a partial last one.
CUTS = {
    "cut_a.flac": (5.0, 1.5),
    "cut_b.flac": (12.0, 1.25),
}
MONO48K_SECONDS = 1.3

# case name -> (bag name, input file, extra CLI flags). The input base names are
# unique: the CLI's output folder is named after them.
CASES = [
    ("tiny4_cut_a", "tiny4", "cut_a.flac", []),
    ("tiny4_mono48k", "tiny4", "mono48k.flac", []),
    ("tiny6_cut_b", "tiny6", "cut_b.flac", ["--overlap", "0.5"]),
    ("bag2_cut_a", "bag2", "cut_a.flac", []),
]


# ---------------------------------------------------------------------------
# Models

def perturb_(model, seed):
    """Make every weight matter.

    Random init leaves LayerScale at 1e-3 (DConv) / 1e-4 (transformer), norm
    weights at exactly 1 and biases at 0, which would hide whole branches or
    let a port that forgets an affine term pass anyway. Also, with the init's
    weight rescaling the activations of the un-normalised convolutions are so
    small that their biases dominate: the output is then mostly a constant
    offset and the deep layers (transformer included) hardly reach it. So:
      - every LayerScale is set to uniform 0.2..0.8;
      - constant tensors (norm weight / bias, attention biases) get N(0, 0.1) noise,
        every other float tensor gets noise of 2% of its own std;
      - the biases of the convolutions outside the normalisation layers and the
        transformer are scaled by 0.1;
      - the last frequency decoder's transposed conv weight is scaled by 4 so
        that the spectrogram branch and the waveform branch weigh about the same
        in the output.
    With this, dropping any one branch moves the output far below the 60 dB bar
    (see the branch check printed by this script)."""
    _perturb_(model, seed, lambda model, name, tensor: not NORM_PARAM.search(name)
              and not name.startswith("crosstransformer."))
    with torch.no_grad():
        model.state_dict()[f"decoder.{len(model.decoder) - 1}.conv_tr.weight"].mul_(4.0)


def build_model(sources, seed):
    torch.manual_seed(seed)
    kwargs = full_kwargs(HTDemucs, sources, TINY_ARCH)
    model = HTDemucs(**kwargs)
    perturb_(model, seed + 7919)
    round_weights_(model)
    model.eval()
    check_init_args(model, kwargs)
    return model


# ---------------------------------------------------------------------------
# Audio

def to_int16(data):
    """float [-1, 1) -> int16, rounding to nearest (ties to even)."""
    ints = np.round(np.asarray(data, np.float64) * 32768.0)
    assert np.max(np.abs(ints)) < 32767, "clip would saturate"
    return ints.astype(np.int16)


def write_flac16(path, ints, samplerate):
    """`ints` [channels, frames] int16 -> 16-bit FLAC (libFLAC via libsndfile, no
    tags, so the bytes depend on the samples only)."""
    soundfile.write(str(path), np.ascontiguousarray(ints.T), samplerate, format="FLAC",
                    subtype="PCM_16", compression_level=1.0)


def make_inputs(mp3, audio_dir):
    data, sr = sphn.read(str(mp3))          # as demucs 4.1's Separator._load_audio does
    data = np.asarray(data, dtype=np.float32)
    assert sr == 44100 and data.shape[0] == 2, (sr, data.shape)
    log(f"  decoded {mp3.name} with sphn {version('sphn')}: {data.shape[1]} frames at {sr} Hz")
    inputs = {}
    for name, (start, length) in CUTS.items():
        first = int(round(start * sr))
        inputs[name] = (to_int16(data[:, first: first + int(round(length * sr))]), sr)

    sr48 = 48000
    n = int(round(MONO48K_SECONDS * sr48))
    t = np.arange(n) / sr48
    rng = np.random.default_rng(4848)
    sig = (0.30 * np.sin(2 * np.pi * 220.0 * t)
           + 0.20 * np.sin(2 * np.pi * 554.37 * t + 0.3)
           + 0.10 * np.sin(2 * np.pi * 3520.0 * t + 1.1))
    # Exponential chirp 80 Hz -> 16 kHz over the whole clip.
    f0, f1, dur = 80.0, 16000.0, n / sr48
    k = math.log(f1 / f0) / dur
    sig += 0.15 * np.sin(2 * np.pi * f0 * (np.exp(k * t) - 1) / k)
    sig += 0.02 * rng.standard_normal(n)
    # Fade in / out over 10 ms so the clip does not start with a step.
    fade = int(0.01 * sr48)
    ramp = np.linspace(0.0, 1.0, fade)
    sig[:fade] *= ramp
    sig[-fade:] *= ramp[::-1]
    sig *= 0.5 / np.max(np.abs(sig))
    inputs["mono48k.flac"] = (to_int16(sig[None]), sr48)

    # demucs 4.1 decodes the inputs with sphn; the Swift engine with libsndfile.
    # Both must give exactly int16 / 32768.
    worst = 0.0
    for name, (ints, rate) in inputs.items():
        path = audio_dir / name
        write_flac16(path, ints, rate)
        exact = ints.astype(np.float32) / np.float32(32768)
        by_sphn, sphn_sr = sphn.read(str(path))
        by_sphn = np.asarray(by_sphn, np.float32)
        by_sf, sf_sr = soundfile.read(str(path), dtype="float32", always_2d=True)
        by_sf = by_sf.T
        assert sphn_sr == rate and sf_sr == rate, (name, sphn_sr, sf_sr)
        assert by_sphn.shape == exact.shape and by_sf.shape == exact.shape, name
        d_sphn_sf = float(np.max(np.abs(by_sphn - by_sf)))
        d_sf = float(np.max(np.abs(by_sf - exact)))
        worst = max(worst, d_sphn_sf, d_sf)
        log(f"  {name}: {ints.shape[0]} ch, {ints.shape[1]} frames at {rate} Hz, "
            f"peak {np.max(np.abs(exact)):.4f}; max |sphn - soundfile| {d_sphn_sf:.3g}, "
            f"max |soundfile - int16/32768| {d_sf:.3g}")
    if worst != 0.0:
        raise SystemExit(f"sphn and soundfile decode the FLAC inputs differently ({worst:.3g})")
    return inputs


# ---------------------------------------------------------------------------
# Layer dump

def dump_layers(model, wav, path):
    """One forward pass of `model` on `wav` [1, C, T] (T = one segment), with
    hooks on every encoder / decoder layer and on the cross transformer.

    Large tensors are stored as a slice along one axis; metadata["slices"]
    says which (JSON: name -> {"dim", "start", "stop", "full_shape"})."""
    captured = {}
    hooks = []
    keep = lambda name: keep_output(captured, name)  # noqa: E731

    for i, layer in enumerate(model.encoder):
        hooks.append(layer.register_forward_hook(keep(f"enc{i}")))
    for i, layer in enumerate(model.tencoder):
        hooks.append(layer.register_forward_hook(keep(f"tenc{i}")))
    for i, layer in enumerate(model.decoder):
        hooks.append(layer.register_forward_hook(keep(f"dec{i}")))
    for i, layer in enumerate(model.tdecoder):
        hooks.append(layer.register_forward_hook(keep(f"tdec{i}")))

    def ct_pre(module, inputs):
        captured["ct_in_x"] = inputs[0].detach().clone()
        captured["ct_in_xt"] = inputs[1].detach().clone()

    def ct_post(module, inputs, output):
        captured["ct_out_x"] = output[0].detach().clone()
        captured["ct_out_xt"] = output[1].detach().clone()

    hooks.append(model.crosstransformer.register_forward_pre_hook(ct_pre))
    hooks.append(model.crosstransformer.register_forward_hook(ct_post))

    with torch.no_grad():
        z = model._spec(wav)
        cac = model._magnitude(z)
        out = model(wav)
    for h in hooks:
        h.remove()
    captured["spec_cac"] = cac
    captured["output"] = out
    captured["input"] = wav

    # name -> (dim, start, stop) for every tensor but `input`, cut to a few KB
    # each so the file stays small (`input` stays whole: the test feeds it to the
    # model). Frequency slices keep the lowest bins, time slices the first samples
    # (so the reflect padding at the start of the segment is covered); the
    # transformer tensors are mixed over all positions, so any slice of them checks
    # the whole attention.
    slices = {
        "spec_cac": (2, 0, 16),      # [1, 4, 2048, 44]
        "enc0": (2, 0, 16),          # [1, 4, 512, 44]
        "enc1": (2, 0, 8),           # [1, 8, 128, 44]
        "enc2": (2, 0, 4),           # [1, 16, 32, 44]
        "enc3": (2, 0, 2),           # [1, 32, 8, 44]
        "ct_in_x": (2, 0, 2),        # [1, 32, 8, 44]
        "ct_out_x": (2, 0, 2),       # [1, 32, 8, 44]
        "ct_in_xt": (2, 0, 64),      # [1, 32, 173]
        "ct_out_xt": (2, 0, 64),     # [1, 32, 173]
        "dec0": (2, 0, 4),           # [1, 16, 32, 44]
        "dec1": (2, 0, 8),           # [1, 8, 128, 44]
        "dec2": (2, 0, 16),          # [1, 4, 512, 44]
        "dec3": (2, 0, 4),           # [1, 16, 2048, 44]
        "tenc0": (2, 0, 512),        # [1, 4, 11025]
        "tenc1": (2, 0, 256),        # [1, 8, 2757]
        "tenc2": (2, 0, 128),        # [1, 16, 690]
        "tenc3": (2, 0, 64),         # [1, 32, 173]
        "tdec0": (2, 0, 128),        # [1, 16, 690]
        "tdec1": (2, 0, 256),        # [1, 8, 2757]
        "tdec2": (2, 0, 512),        # [1, 4, 11025]
        "tdec3": (2, 0, 256),        # [1, 8, 44100]
        "output": (3, 0, 512),       # [1, 4, 2, 44100]
    }
    tensors = {}
    meta_slices = {}
    assert set(captured) == set(slices) | {"input"}, sorted(captured)
    for name, tensor in captured.items():
        full_shape = list(tensor.shape)
        if name in slices:
            dim, start, stop = slices[name]
            tensor = tensor.narrow(dim, start, stop - start)
            meta_slices[name] = {"dim": dim, "start": start, "stop": stop,
                                 "full_shape": full_shape}
        tensors[name] = tensor.to(torch.float32).contiguous()
    # The high end of the spectrogram too (the bin just below Nyquist is the last kept).
    fbins = captured["spec_cac"].shape[2]
    tensors["spec_cac_hi"] = captured["spec_cac"][:, :, fbins - 16:].contiguous()
    meta_slices["spec_cac_hi"] = {"dim": 2, "start": fbins - 16, "stop": fbins,
                                  "full_shape": list(captured["spec_cac"].shape)}
    full_shapes = {name: list(t.shape) for name, t in captured.items()}
    metadata = {
        "model": "tiny4",
        "slices": json.dumps(meta_slices, sort_keys=True),
        "full_shapes": json.dumps(full_shapes, sort_keys=True),
        "torch": torch.__version__,
        "demucs": demucs.__version__,
    }
    write_safetensors(path, tensors, metadata)
    return tensors, meta_slices, full_shapes


# ---------------------------------------------------------------------------
# Branch check

BRANCHES = {
    "encoder DConv (layer scales = 0)": lambda k: k.startswith(("encoder.", "tencoder."))
    and k.endswith(".scale"),
    "decoder DConv (layer scales = 0)": lambda k: k.startswith(("decoder.", "tdecoder."))
    and k.endswith(".scale"),
    "transformer residuals (all gamma = 0)": lambda k: ".gamma_" in k,
    "cross-attention layer 1 (gamma = 0)": lambda k: ".1.gamma_" in k,
    "self-attention layer 2 (gamma = 0)": lambda k: ".2.gamma_" in k,
    "bottleneck (channel_downsampler* = 0)": lambda k: k.startswith("channel_downsampler"),
    "frequency embedding (= 0)": lambda k: k.startswith("freq_emb."),
    "waveform branch output (tdecoder.3.conv_tr = 0)": lambda k: k.startswith(
        "tdecoder.3.conv_tr."),
    "spectrogram branch output (decoder.3.conv_tr = 0)": lambda k: k.startswith(
        "decoder.3.conv_tr."),
}


def branch_check(model, wav):
    """fixturelib.branch_check with the HTDemucs groups."""
    return _branch_check(model, wav, BRANCHES, 50)


# ---------------------------------------------------------------------------

def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mp3", type=Path, default=DEFAULT_MP3, help="test audio")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="fixtures folder")
    parser.add_argument("--keep-tmp", action="store_true",
                        help="keep the temporary .th repo and CLI outputs")
    opts = parser.parse_args()

    torch.set_num_threads(2)
    out = opts.out
    models_dir, audio_dir, expected_dir, debug_dir = reset_dirs(
        out, ("models", "audio", "expected", "debug"))
    tmp, th_repo, cli_out = make_tmp("demucs-fixtures-")

    summary = {"versions": {"torch": torch.__version__, "demucs": demucs.__version__,
                            "numpy": np.__version__, "soundfile": soundfile.__version__,
                            "sphn": version("sphn")},
               "models": {}, "cases": {}}

    log("== models")
    models = {}
    for name, (sources, seed, sig) in MODELS.items():
        model = build_model(sources, seed)
        models[name] = model
        n_params = sum(p.numel() for p in model.parameters())
        st_path = models_dir / f"{sig}.safetensors"
        th_path = th_repo / f"{sig}.th"
        save_safetensors(model, st_path, KLASS)
        save_th(model, th_path)
        log(f"  {name}: sig {sig}, seed {seed}, {n_params:,} parameters, "
            f"{len(model.state_dict())} tensors")
        check_round_trip(name, model, st_path, th_path, 22050)  # 0.5 s, padded to 1 s inside
        summary["models"][name] = {"sig": sig, "seed": seed, "parameters": n_params,
                                   "sources": sources}
    for bag, (members, weights) in BAGS.items():
        text = bag_yaml([MODELS[m][2] for m in members], weights)
        (models_dir / f"{bag}.yaml").write_text(text)
        (th_repo / f"{bag}.yaml").write_text(text)

    log("== inputs")
    make_inputs(opts.mp3, audio_dir)

    log("== expected outputs (demucs CLI)")
    cases_json = []
    for case, bag, track_name, flags in CASES:
        track = audio_dir / track_name
        stem_dir, cmd = run_cli(th_repo, bag, track, cli_out, flags)
        members, weights = BAGS[bag]
        sources = models[members[0]].sources
        overlap = float(flags[flags.index("--overlap") + 1]) if "--overlap" in flags else 0.25
        if len(members) == 1:
            ref_model = models[members[0]]
        else:
            ref_model = BagOfModels([models[m] for m in members], weights)
        in_proc = in_process_separate(ref_model, track, overlap).numpy()

        case_dir = expected_dir / case
        case_dir.mkdir()
        info = store_stems(case, stem_dir, case_dir, sources, in_proc)
        summary["cases"][case] = {"stems": {
            stem: {"peak": v["peak"], "quantisation_snr_db": v["snr"], "bits": v["bits"],
                   "max_abs_diff_in_process": v["diff"], "frames": v["frames"]}
            for stem, v in info.items()}}
        cases_json.append(case_entry(case, bag, track_name, flags, sources,
                                     in_proc.shape[-1], info))
    write_cases(expected_dir / "cases.json", cases_json)

    log("== layer dump")
    cut_a, _ = soundfile.read(str(audio_dir / "cut_a.flac"), dtype="float32", always_2d=True)
    seg = torch.from_numpy(np.ascontiguousarray(cut_a.T[:, :44100]))[None]
    tensors, meta_slices, full_shapes = dump_layers(
        models["tiny4"], seg, debug_dir / "tiny4_layers.safetensors")
    for name in sorted(tensors):
        note = f" (slice of {full_shapes.get(name, meta_slices.get(name, {}).get('full_shape'))})" \
            if name in meta_slices else ""
        log(f"  {name:12s} {list(tensors[name].shape)}{note}")
    summary["debug_tensors"] = {name: list(t.shape) for name, t in sorted(tensors.items())}
    summary["debug_slices"] = meta_slices

    log("== branch check (tiny4, first second of cut_a)")
    summary["branch_check"] = branch_check(models["tiny4"], seg)

    (tmp / "summary.json").write_text(json.dumps(summary, indent=2))
    total = finish(out, tmp, opts.keep_tmp)
    log(f"== done: {total / 1e6:.2f} MB under {out}")
    return summary


if __name__ == "__main__":
    main()
