#!/usr/bin/env python3
"""Build the HDemucs (Hybrid Demucs v3) parity fixtures under Tests/Fixtures/hdemucs/.

Run by hand with the reference environment, after tools/make_fixtures.py (it reads that
script's inputs and its tiny4 model):

    ~/.cache/demucs-ref/bin/python tools/make_fixtures_hdemucs.py

What it does, in order:
  1. builds small randomly initialised `demucs.hdemucs.HDemucs` models (fixed seeds), perturbs
     every tensor so that all branches matter, rounds every weight to float16 (the stored dtype);
  2. writes them in the hub layout (<sig>.safetensors + <name>.yaml) under
     Tests/Fixtures/hdemucs/models/, plus the bag `mixbag` of an HDemucs and the HTDemucs
     fixture `tiny4` (a relative symlink to ../../models/7e1a4c02.safetensors, so the 0.4 MB
     file is not stored twice), and as .th files in a temporary repo folder for demucs's CLI;
  3. runs `python -m demucs.separate` on each case and stores the stems as 24-bit FLAC
     rounded to the fewest bits that keep >= 80 dB (as make_fixtures.py does), plus cases.json;
  4. dumps one forward pass of each model (layer outputs of the main model, the output of the
     variants) into Tests/Fixtures/hdemucs/debug/, for the engine-level tests;
  5. prints a branch check: the SNR of the output with one part of the network zeroed.

CI never runs this; the outputs are committed. Everything is seeded.
"""
import argparse
import copy
import hashlib
import json
import re
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch
from safetensors import safe_open

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fixturelib import (  # noqa: E402  (helpers shared by the fixture generators)
    NORM_PARAM, WEIGHT_DTYPE, bag_yaml, branch_check as _branch_check, case_entry,
    check_init_args, check_round_trip, finish, full_kwargs, in_process_separate, keep_output,
    log, make_tmp, reset_dirs, round_weights_, run_cli, save_safetensors, save_th, snr_db,
    store_stems, write_cases, write_safetensors)
from fixturelib import perturb_ as _perturb_  # noqa: E402

import demucs  # noqa: E402
from demucs.apply import BagOfModels  # noqa: E402
from demucs.hdemucs import HDemucs  # noqa: E402
from demucs.hf import load_safetensors_model  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parent.parent
FIXTURES = REPO_ROOT / "Tests" / "Fixtures"
DEFAULT_OUT = FIXTURES / "hdemucs"

KLASS = "demucs.hdemucs.HDemucs"
SOURCES4 = ["drums", "bass", "other", "vocals"]

# The main model: the official HDemucs layer structure at a small size. nfft 256 gives 128
# bins: two frequency layers (128 -> 32 -> 8), the `last_freq` layer (kernel 8 over the last 8
# bins -> 1), where the waveform branch (3 layers, total stride 64 = the hop) is added, then two
# time layers (stride 2) on the merged tensor; the decoder mirrors it. GroupNorm from layer 2 on
# (the last frequency layer and the time layers), DConv in encoder and decoder, and a BLSTM and
# LocalState attention in the DConv branches of the two time layers (as hdemucs_mmi has in its
# last two layers). The first time layer runs its BLSTM on more than 200 steps (framed), the
# second on fewer.
HD_ARCH = dict(
    audio_channels=2,
    channels=2,
    growth=2,
    nfft=256,
    depth=5,
    cac=True,
    hybrid=True,
    hybrid_old=False,
    norm_starts=2,
    norm_groups=4,
    dconv_mode=3,
    dconv_depth=1,
    dconv_comp=2,
    dconv_lstm=3,
    dconv_attn=3,
    samplerate=44100,
    segment=Fraction(1, 1),
)

# Variants checked by a single forward pass (engine test only): the MDX padding bug and the
# spectrogram-only model. Two sources and two channels keep them small.
VARIANTS = {
    "hd_old": dict(HD_ARCH, depth=4, hybrid_old=True, dconv_lstm=100, dconv_attn=100,
                   dconv_mode=1),
    "hd_spec": dict(HD_ARCH, depth=4, hybrid=False, dconv_lstm=100, dconv_attn=100,
                    dconv_mode=2, context_enc=1),
}
VARIANT_SOURCES = ["drums", "vocals"]

# MultiWrap: the two outermost frequency layers (128 and 32 bins, no GroupNorm there) split into
# three bands at 1/4 and 1/2 of the bins, each band its own copy of the layer (encoder convs
# without frequency padding, decoder layers overlap-added, decoder rewrite convs along time only,
# `context_freq=False`). Checked end to end on cut_b (one stem stored, for size).
HD_MULTI = dict(HD_ARCH, depth=4, dconv_lstm=100, dconv_attn=100, multi_freqs=[0.25, 0.5],
                multi_freqs_depth=2)

# name -> (sources, arch, construction seed, signature)
MODELS = {
    "hdemucs4": (SOURCES4, HD_ARCH, 3004, "4d3c0de4"),
    "hd_old": (VARIANT_SOURCES, VARIANTS["hd_old"], 3102, "0d01d002"),
    "hd_spec": (VARIANT_SOURCES, VARIANTS["hd_spec"], 3202, "5bec0002"),
    "hdmulti": (VARIANT_SOURCES, HD_MULTI, 3302, "3d7f0003"),
}

# The HTDemucs fixture model reused in the mixed bag.
TINY4_SIG = "7e1a4c02"
TINY4_FILE = FIXTURES / "models" / f"{TINY4_SIG}.safetensors"

# Bags: name -> (members (model names or "tiny4"), weights, segment).
# mixbag: an HDemucs and an HTDemucs with a weights matrix and a `segment:` as the mdx bags have
# (`segment: 44`). The segment applies to the HDemucs (BagOfModels always sets it on non-HTDemucs
# models) and not to tiny4 (an HTDemucs only takes a segment that is not longer than its own
# 1 s). 1.2 s: the HDemucs then splits cut_b into 52920-sample chunks, not its own 44100.
BAGS = {
    "hdemucs4": (["hdemucs4"], None, None),
    "mixbag": (["hdemucs4", "tiny4"], [[1.0, 0.0, 0.5, 0.75], [0.0, 1.0, 0.5, 0.25]], 1.2),
    "hdmulti": (["hdmulti"], None, None),
    # segbag: the HTDemucs tiny4 alone with a `segment:` shorter than its own 1 s. BagOfModels then
    # lowers tiny4's segment, and its forward pass pads each chunk to 0.5 s instead of 1 s.
    "segbag": (["tiny4"], None, 0.5),
}

# case name -> (bag, input file, extra CLI flags)
CASES = [
    ("hdemucs4_cut_b", "hdemucs4", "cut_b.flac", []),
    ("mixbag_cut_b", "mixbag", "cut_b.flac", ["--two-stems", "vocals", "--other-method", "none"]),
    ("hdmulti_cut_b", "hdmulti", "cut_b.flac", ["--two-stems", "vocals", "--other-method", "none"]),
    ("segbag_cut_b", "segbag", "cut_b.flac", ["--two-stems", "vocals", "--other-method", "none"]),
]


# ---------------------------------------------------------------------------
# Models

def perturb_(model, seed):
    """fixturelib.perturb_ (LayerScales uniform 0.2..0.8, N(0, 0.1) on constant tensors, 2%
    noise on the rest) with the conv biases outside the norms and LSTMs scaled by 0.1, and the
    outermost spectrogram decoder's transposed conv scaled by 4 so that both branches weigh
    about the same in the output (for a spectrogram-only model this changes nothing but the
    output scale)."""
    _perturb_(model, seed, lambda model, name, tensor: not NORM_PARAM.search(name)
              and ".lstm." not in name)
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if _outer_conv_tr(model, name) and name.endswith(".weight"):
                tensor.mul_(4.0)


def _outer_conv_tr(model, name):
    """Whether `name` belongs to the outermost spectrogram decoder's transposed conv (all the
    band copies of it when that layer is a MultiWrap)."""
    return re.match(rf"decoder\.{len(model.decoder) - 1}\.(layers\.\d+\.)?conv_tr\.", name)


def probe_input():
    """The first second of cut_a (the input of the layer dumps), normalised as the CLI does."""
    with safe_open(str(FIXTURES / "debug" / "tiny4_layers.safetensors"), framework="pt") as f:
        wav = f.get_tensor("input")
    return (wav - wav.mean()) / wav.std()


def scale_output_(model, target_peak=2.4):
    """Scales the two outermost transposed convolutions (weights and biases) so that the
    output on the probe input peaks at `target_peak` (in units of the mix's std): random
    networks of this size otherwise peak anywhere from 0.2 to 7, and the CLI's float32 writer
    clamps to [-1, 1] after the de-normalisation."""
    with torch.no_grad():
        peak = float(model(probe_input()).abs().max())
        factor = target_peak / peak
        state = model.state_dict()
        names = []
        if model.hybrid:
            names.append(f"tdecoder.{len(model.tdecoder) - 1}.conv_tr.")
        for name, tensor in state.items():
            if name.startswith(tuple(names)) or _outer_conv_tr(model, name):
                tensor.mul_(factor)
    return factor


def build_model(sources, arch, seed):
    torch.manual_seed(seed)
    kwargs = full_kwargs(HDemucs, sources, arch)
    model = HDemucs(**kwargs)
    perturb_(model, seed + 7919)
    model.eval()
    scale_output_(model)
    round_weights_(model)
    model.eval()
    check_init_args(model, kwargs)
    return model


def tiny4_model():
    """The HTDemucs fixture tiny4, loaded from its committed safetensors file."""
    return load_safetensors_model(TINY4_FILE).eval()


# ---------------------------------------------------------------------------
# Layer dump

def dump_forward(model, wav, path, name, layers):
    """One forward pass on `wav` [1, C, T]. With `layers`, hooks keep every encoder / decoder
    output too (the first output of a decoder; `enc0` before the frequency embedding). Big
    tensors are cut along their last axis (`slices` in the metadata says how)."""
    captured = {}
    hooks = []
    keep = lambda key: keep_output(captured, key)  # noqa: E731

    if layers:
        for prefix, modules in (("enc", model.encoder), ("dec", model.decoder),
                                ("tenc", model.tencoder), ("tdec", model.tdecoder)):
            for i, layer in enumerate(modules):
                hooks.append(layer.register_forward_hook(keep(f"{prefix}{i}")))
    with torch.no_grad():
        out = model(wav)
    for h in hooks:
        h.remove()
    # Each tensor is cut to a small box: `ranges` gives [start, stop) per axis after the batch
    # axis (at most 4 channels and 4 bins of a spectrogram-branch tensor, 8 channels of a time
    # tensor, 32 frames or samples; the output: all sources
    # and channels, 128 samples at the start, in the middle and at the end).
    tensors, slices = {}, {}

    def cut(key, tensor, ranges):
        box = tensor[0]
        for axis, (start, stop) in enumerate(ranges):
            box = box.narrow(axis, start, stop - start)
        tensors[key] = box[None].contiguous().float()
        slices[key] = {"ranges": ranges, "full_shape": list(tensor.shape)}

    for key, tensor in sorted(captured.items()):
        shape = list(tensor.shape)[1:]
        limits = [4, 4, 32] if len(shape) == 3 else [8, 32]
        cut(key, tensor, [[0, min(n, lim)] for n, lim in zip(shape, limits)])
    S, C, T = out.shape[1:]
    n = 128
    for key, start in (("output_head", 0), ("output_mid", T // 2 - n // 2), ("output_tail", T - n)):
        cut(key, out, [[0, S], [0, C], [start, start + n]])
    metadata = {"model": name, "input": "debug/tiny4_layers.safetensors:input (cut_a, first second)",
                "slices": json.dumps(slices, sort_keys=True), "torch": torch.__version__,
                "demucs": demucs.__version__}
    write_safetensors(path, tensors, metadata)
    return tensors, slices


# ---------------------------------------------------------------------------
# Branch check

def branch_groups(model):
    depth = len(model.encoder)
    nt = len(model.tencoder) if model.hybrid else 0
    groups = {
        "encoder DConv (layer scales = 0)": lambda k: k.startswith(("encoder.", "tencoder."))
        and k.endswith(".scale"),
        "decoder DConv (layer scales = 0)": lambda k: k.startswith(("decoder.", "tdecoder."))
        and k.endswith(".scale"),
        "DConv BLSTMs (= 0)": lambda k: ".lstm." in k or (".dconv." in k and ".3.linear" in k),
        "DConv LocalState projections (= 0)": lambda k: ".dconv." in k and ".4.proj." in k,
        "frequency embedding (= 0)": lambda k: k.startswith("freq_emb."),
        "waveform branch merge (empty tencoder conv = 0)": lambda k: k.startswith(
            f"tencoder.{nt - 1}.conv."),
        f"innermost time layer skip (encoder.{depth - 1} rewrite = 0)": lambda k: k.startswith(
            f"encoder.{depth - 1}.rewrite."),
        f"waveform branch output (tdecoder.{nt - 1}.conv_tr = 0)": lambda k: k.startswith(
            f"tdecoder.{nt - 1}.conv_tr."),
        f"spectrogram branch output (decoder.{depth - 1}.conv_tr = 0)": lambda k: k.startswith(
            f"decoder.{depth - 1}.conv_tr."),
    }
    return groups


def branch_check(model, wav):
    """fixturelib.branch_check with the HDemucs groups."""
    return _branch_check(model, wav, branch_groups(model), 58)


# ---------------------------------------------------------------------------

def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="fixtures folder")
    parser.add_argument("--keep-tmp", action="store_true")
    opts = parser.parse_args()

    torch.set_num_threads(2)
    out = opts.out
    models_dir, expected_dir, debug_dir = reset_dirs(out, ("models", "expected", "debug"))
    audio_dir = FIXTURES / "audio"
    tmp, th_repo, cli_out = make_tmp("demucs-hdemucs-fixtures-")

    log("== models")
    models = {}
    for name, (sources, arch, seed, sig) in MODELS.items():
        model = build_model(sources, arch, seed)
        models[name] = model
        n_params = sum(p.numel() for p in model.parameters())
        st_path, th_path = models_dir / f"{sig}.safetensors", th_repo / f"{sig}.th"
        save_safetensors(model, st_path, KLASS)
        save_th(model, th_path)
        log(f"  {name}: sig {sig}, seed {seed}, {n_params:,} parameters, "
            f"{len(model.state_dict())} tensors, {st_path.stat().st_size:,} bytes")
        check_round_trip(name, model, st_path, th_path, 30000)

    # tiny4 (HTDemucs) for the mixed bag: a symlink to the committed file, and a .th for the CLI.
    tiny4 = tiny4_model()
    models["tiny4"] = tiny4
    (models_dir / f"{TINY4_SIG}.safetensors").symlink_to(
        Path("..") / ".." / "models" / f"{TINY4_SIG}.safetensors")
    with safe_open(str(TINY4_FILE), framework="pt") as f:
        meta = f.metadata()
    from demucs.htdemucs import HTDemucs
    from demucs.hf import _decode_json
    torch.save({"klass": HTDemucs, "args": [], "kwargs": _decode_json(json.loads(meta["kwargs"])),
                "state": {k: v.to(WEIGHT_DTYPE) for k, v in tiny4.state_dict().items()}},
               str(th_repo / f"{TINY4_SIG}.th"))
    tiny4_sha = hashlib.sha256(TINY4_FILE.read_bytes()).hexdigest()
    log(f"  tiny4: {TINY4_FILE.relative_to(REPO_ROOT)} sha256 {tiny4_sha[:16]}…, linked")

    sigs = {name: spec[3] for name, spec in MODELS.items()}
    sigs["tiny4"] = TINY4_SIG
    for bag, (members, weights, segment) in BAGS.items():
        text = bag_yaml([sigs[m] for m in members], weights)
        if segment is not None:
            text += f"segment: {segment}\n"
        (models_dir / f"{bag}.yaml").write_text(text)
        (th_repo / f"{bag}.yaml").write_text(text)

    log("== expected outputs (demucs CLI)")
    cases_json = []
    for case, bag, track_name, flags in CASES:
        track = audio_dir / track_name
        stem_dir, cmd = run_cli(th_repo, bag, track, cli_out, flags)
        members, weights, segment = BAGS[bag]
        if len(members) == 1 and segment is None:
            ref_model = models[members[0]]
        else:
            # BagOfModels sets the segment on its models in place: give it copies.
            ref_model = BagOfModels([copy.deepcopy(models[m]) for m in members], weights, segment)
        in_proc = in_process_separate(ref_model, track, 0.25).numpy()
        sources = list(ref_model.sources)
        if "--two-stems" in flags:
            stem = flags[flags.index("--two-stems") + 1]
            k = sources.index(stem)
            rest = [i for i in range(len(sources)) if i != k]
            method = flags[flags.index("--other-method") + 1] if "--other-method" in flags else "add"
            assert method in ("add", "none"), method
            if method == "add":
                in_proc = np.stack([in_proc[k], in_proc[rest].sum(0)])
                sources = [stem, f"no_{stem}"]
            else:
                in_proc = in_proc[k:k + 1]
                sources = [stem]
        case_dir = expected_dir / case
        case_dir.mkdir()
        info = store_stems(case, stem_dir, case_dir, sources, in_proc, stem_width=9,
                           max_diff=1e-5)
        cases_json.append(case_entry(case, bag, track_name, flags, sources, in_proc.shape[-1],
                                     info))
    write_cases(expected_dir / "cases.json", cases_json)

    log("== what the bag's segment changes")
    with torch.no_grad():
        own = in_process_separate(models["hdemucs4"], audio_dir / "cut_b.flac", 0.25)
        seg = BagOfModels([copy.deepcopy(models["hdemucs4"])], None, BAGS["mixbag"][2])
        bagged = in_process_separate(seg, audio_dir / "cut_b.flac", 0.25)
    log(f"  hdemucs4 on cut_b, own 1 s segment vs the bag's {BAGS['mixbag'][2]} s: "
        f"SNR {snr_db(own.numpy(), bagged.numpy()):.1f} dB")

    log("== forward dumps")
    with safe_open(str(FIXTURES / "debug" / "tiny4_layers.safetensors"), framework="pt") as f:
        wav = f.get_tensor("input")
    for name in MODELS:
        tensors, slices = dump_forward(models[name], wav, debug_dir / f"{name}_forward.safetensors",
                                       name, layers=(name == "hdemucs4"))
        log(f"  {name}: " + ", ".join(f"{k} {slices[k]['full_shape']}" for k in sorted(slices)))

    log("== branch check (hdemucs4, first second of cut_a)")
    branch_check(models["hdemucs4"], wav)
    for name in ("hd_old", "hd_spec"):
        log(f"== branch check ({name})")
        branch_check(models[name], wav)

    total = finish(out, tmp, opts.keep_tmp, skip_symlinks=True)
    log(f"== done: {total / 1e6:.3f} MB under {out} (the tiny4 symlink not counted)")


if __name__ == "__main__":
    main()
