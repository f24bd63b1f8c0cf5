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
import inspect
import json
import math
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
from fractions import Fraction
from importlib.metadata import version
from pathlib import Path

import numpy as np
import soundfile
import sphn
import torch
from safetensors.torch import save_file

import demucs
from demucs.apply import BagOfModels, apply_model
from demucs.audio import convert_audio
from demucs.hf import load_safetensors_model
from demucs.htdemucs import HTDemucs
from demucs.states import load_model

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

# dtype of the stored weights. demucs's own checkpoints are half precision
# (`demucs.states.serialize_model(..., half=True)`), and so are the hub files
# made from them. The script rounds every weight to float16 right after
# construction, so the models that demucs runs (in float32) hold exactly the
# stored values: storing them as F16 loses nothing and halves the model files.
WEIGHT_DTYPE = torch.float16

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

# Every stored stem keeps at least this SNR against demucs's float32 output
# (the tests' bar is 60 dB).
MIN_STEM_SNR_DB = 80.0


def log(*args):
    print(*args, flush=True)


def snr_db(ref, est):
    """10*log10(sum ref^2 / sum (ref-est)^2), the definition the Swift tests use."""
    ref = np.asarray(ref, dtype=np.float64)
    est = np.asarray(est, dtype=np.float64)
    noise = np.sum((ref - est) ** 2)
    if noise == 0:
        return math.inf
    return 10 * math.log10(np.sum(ref ** 2) / noise)


# ---------------------------------------------------------------------------
# Models

def full_kwargs(sources):
    """All HTDemucs constructor arguments, as a training run would pass them
    (demucs.train.get_model passes the whole model config as kwargs), so that the
    metadata looks like the official files: nulls, lists, floats, a fraction."""
    sig = inspect.signature(HTDemucs.__init__)
    kwargs = {"sources": list(sources)}
    for name, param in sig.parameters.items():
        if name in ("self", "sources"):
            continue
        default = param.default
        if isinstance(default, list):
            default = list(default)
        kwargs[name] = default
    kwargs.update(TINY_ARCH)
    return kwargs


# Parameters of normalisation layers: GroupNorm inside DConv (dconv.layers.N.1 and
# .4), the encoder / decoder norms, the transformer LayerNorms / GroupNorms.
NORM_PARAM = re.compile(r"(dconv\.layers\.\d+\.[14]\.|norm)")


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
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        state = model.state_dict()
        for name, tensor in state.items():
            if not tensor.is_floating_point():
                continue
            noise = torch.randn(tensor.shape, generator=gen)
            if name.endswith(".scale"):
                # LayerScale of DConv layers (dconv.layers.N.6.scale) and of the
                # transformer layers (gamma_1.scale / gamma_2.scale).
                tensor.copy_(0.2 + 0.6 * torch.rand(tensor.shape, generator=gen))
            elif tensor.numel() > 1 and float(tensor.std()) > 0:
                tensor.add_(0.02 * float(tensor.std()) * noise)
            else:
                # Constant tensors: GroupNorm / LayerNorm weight (1) and bias (0),
                # attention in_proj / out_proj biases (0).
                tensor.add_(0.1 * noise)
        for name, tensor in state.items():
            if (name.endswith(".bias") and not NORM_PARAM.search(name)
                    and not name.startswith("crosstransformer.")):
                tensor.mul_(0.1)
        state[f"decoder.{len(model.decoder) - 1}.conv_tr.weight"].mul_(4.0)


def build_model(sources, seed):
    torch.manual_seed(seed)
    kwargs = full_kwargs(sources)
    model = HTDemucs(**kwargs)
    perturb_(model, seed + 7919)
    with torch.no_grad():
        for tensor in model.state_dict().values():
            if tensor.is_floating_point():
                tensor.copy_(tensor.to(WEIGHT_DTYPE).to(tensor.dtype))
    model.eval()
    args, recorded = model._init_args_kwargs
    assert list(args) == [] and recorded == kwargs
    return model


def encode_json(value):
    """Inverse of demucs.hf._decode_json."""
    def default(obj):
        if isinstance(obj, Fraction):
            return {"_type": "fraction", "numerator": obj.numerator,
                    "denominator": obj.denominator}
        raise TypeError(f"cannot encode {obj!r}")
    return json.dumps(value, default=default)


def plain_state(model):
    """The state dict as stored: every tensor in WEIGHT_DTYPE (exact, see build_model)."""
    state = {}
    for k, v in model.state_dict().items():
        stored = v.detach().to(WEIGHT_DTYPE).contiguous().clone()
        assert torch.equal(stored.to(v.dtype), v), k
        state[k] = stored
    return state


def write_safetensors(path, tensors, metadata):
    """safetensors.torch.save_file, then rewrite the JSON header in a fixed order:
    the library keeps `__metadata__` in a hash map, so its key order (and hence
    the file bytes) changes from run to run otherwise."""
    save_file(tensors, str(path), metadata=metadata)
    raw = Path(path).read_bytes()
    (size,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + size])
    data = raw[8 + size:]
    ordered = {"__metadata__": dict(sorted(header.pop("__metadata__").items()))}
    ordered.update(sorted(header.items()))
    text = json.dumps(ordered, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    Path(path).write_bytes(struct.pack("<Q", len(text)) + text + data)


def save_safetensors(model, path):
    args, kwargs = model._init_args_kwargs
    metadata = {
        "klass": KLASS,
        "args": encode_json(list(args)),
        "kwargs": encode_json(kwargs),
    }
    write_safetensors(path, plain_state(model), metadata)


def save_th(model, path):
    args, kwargs = model._init_args_kwargs
    package = {"klass": HTDemucs, "args": list(args), "kwargs": dict(kwargs),
               "state": plain_state(model)}
    torch.save(package, str(path))


def bag_yaml(sigs, weights):
    # Signatures are quoted: an unquoted all-digit or digits-e-digits signature
    # would be read back by YAML as a number.
    lines = ["models: [" + ", ".join(f"'{s}'" for s in sigs) + "]"]
    if weights is not None:
        lines.append("weights: [")
        for row in weights:
            lines.append("  [" + ", ".join(repr(float(w)) for w in row) + "],")
        lines.append("]")
    return "\n".join(lines) + "\n"


def check_round_trip(name, model, st_path, th_path):
    gen = torch.Generator().manual_seed(77)
    x = 0.1 * torch.randn(1, 2, 22050, generator=gen)   # 0.5 s, padded to 1 s inside
    with torch.no_grad():
        ref = model(x)
        from_st = load_safetensors_model(st_path).eval()(x)
        from_th = load_model(th_path).eval()(x)
    same_st = torch.equal(ref, from_st)
    same_th = torch.equal(ref, from_th)
    log(f"  round trip {name}: safetensors identical={same_st}, .th identical={same_th}")
    if not (same_st and same_th):
        raise SystemExit(f"round trip failed for {name}")


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
# Expected outputs from demucs's CLI

def run_cli(repo, name, track, out_dir, flags):
    cmd = [sys.executable, "-m", "demucs.separate", "--repo", str(repo), "-n", name,
           "-o", str(out_dir), "--shifts", "0", "--float32", "--clip-mode", "none",
           "-d", "cpu", *flags, str(track)]
    log("  $ " + " ".join(cmd))
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", "2")
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout + proc.stderr)
        raise SystemExit(f"demucs.separate failed with status {proc.returncode}")
    return out_dir / name / track.stem, cmd


def write_stem_flac(path, data, rate):
    """Store `data` [C, T] (float32) as a 24-bit FLAC, rounded to the fewest
    significant bits (16..24, counting the sign) that keep MIN_STEM_SNR_DB
    against `data`. The unused low bits are zero: libFLAC detects them ("wasted
    bits") and does not store them, and any 24-bit FLAC reader returns the
    values unchanged, so no scale factor is needed. Returns (bits, SNR in dB of
    the file as read back)."""
    exact = np.asarray(data, np.float64)
    for bits in range(16, 25):
        scale = float(2 ** (bits - 1))
        ints = np.round(exact * scale)
        if snr_db(exact, ints / scale) >= MIN_STEM_SNR_DB:
            break
    else:
        raise SystemExit(f"{path}: 24 bits give less than {MIN_STEM_SNR_DB} dB")
    assert np.max(np.abs(ints)) < scale
    # libsndfile writes the top 24 bits of int32 samples.
    ints32 = (ints.astype(np.int64) << (32 - bits)).astype(np.int32)
    soundfile.write(str(path), np.ascontiguousarray(ints32.T), rate, format="FLAC",
                    subtype="PCM_24", compression_level=1.0)
    back, back_rate = soundfile.read(str(path), dtype="float64", always_2d=True)
    assert back_rate == rate and np.array_equal(back.T, ints / scale), path
    return bits, snr_db(exact, back.T)


def in_process_separate(model, track, overlap):
    """Same steps as demucs.api.Separator.separate_audio_file, with the in-memory
    model: a check that the CLI really ran the weights we saved."""
    data, sr = sphn.read(str(track))
    wav = convert_audio(torch.from_numpy(np.asarray(data, np.float32)), int(sr),
                        model.samplerate, model.audio_channels)
    ref = wav.mean(0)
    mean = ref.mean()
    std = ref.std() + 1e-8
    out = apply_model(model, ((wav - mean) / std)[None], shifts=0, split=True,
                      overlap=overlap, device="cpu")
    return (out * std + mean)[0]


# ---------------------------------------------------------------------------
# Layer dump

def dump_layers(model, wav, path):
    """One forward pass of `model` on `wav` [1, C, T] (T = one segment), with
    hooks on every encoder / decoder layer and on the cross transformer.

    Large tensors are stored as a slice along one axis; metadata["slices"]
    says which (JSON: name -> {"dim", "start", "stop", "full_shape"})."""
    captured = {}
    hooks = []

    def keep(name):
        def hook(module, inputs, output):
            if isinstance(output, tuple):
                output = output[0]
            captured[name] = output.detach().clone()
        return hook

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
    """SNR of the model output with one group of weights zeroed against the full
    output: shows that each part of the network reaches the output."""
    wav = (wav - wav.mean()) / wav.std()
    with torch.no_grad():
        ref = model(wav)
    results = {}
    for label, select in BRANCHES.items():
        state = {k: (torch.zeros_like(v) if select(k) else v)
                 for k, v in model.state_dict().items()}
        other = HTDemucs(**model._init_args_kwargs[1])
        other.load_state_dict(state)
        other.eval()
        with torch.no_grad():
            out = other(wav)
        results[label] = snr_db(ref.numpy(), out.numpy())
        log(f"  without {label:50s} SNR {results[label]:6.1f} dB")
    return results


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
    models_dir = out / "models"
    audio_dir = out / "audio"
    expected_dir = out / "expected"
    debug_dir = out / "debug"
    for d in (models_dir, audio_dir, expected_dir, debug_dir):
        if d.exists():
            shutil.rmtree(d)
        d.mkdir(parents=True)

    tmp = Path(tempfile.mkdtemp(prefix="demucs-fixtures-"))
    th_repo = tmp / "repo"
    cli_out = tmp / "separated"
    th_repo.mkdir()
    log(f"torch {torch.__version__}, demucs {demucs.__version__}, temp folder {tmp}")

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
        save_safetensors(model, st_path)
        save_th(model, th_path)
        log(f"  {name}: sig {sig}, seed {seed}, {n_params:,} parameters, "
            f"{len(model.state_dict())} tensors")
        check_round_trip(name, model, st_path, th_path)
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
        case_info = {"stems": {}}
        for k, stem in enumerate(sources):
            data, rate = soundfile.read(str(stem_dir / f"{stem}.wav"), dtype="float32",
                                        always_2d=True)
            data = data.T                                   # [C, T]
            peak = float(np.max(np.abs(data)))
            if peak >= 0.999:
                raise SystemExit(f"{case}/{stem}: peak {peak:.4f}, the CLI's clamp to "
                                 "[-1, 1] may have changed the output")
            diff_in_proc = float(np.max(np.abs(in_proc[k] - data)))
            flac = case_dir / f"{stem}.flac"
            bits, q_snr = write_stem_flac(flac, data, rate)
            case_info["stems"][stem] = {"peak": peak, "quantisation_snr_db": q_snr,
                                        "bits": bits,
                                        "max_abs_diff_in_process": diff_in_proc,
                                        "frames": int(data.shape[1])}
            log(f"    {stem:7s} max|x| {peak:.4f}  {bits}-bit SNR {q_snr:6.1f} dB  "
                f"{flac.stat().st_size:7d} bytes  |CLI - in-process| {diff_in_proc:.2e}")
        summary["cases"][case] = case_info
        cases_json.append({
            "case": case,
            "model": bag,
            "input": f"audio/{track_name}",
            "flags": flags,
            "stems": list(sources),
            "samplerate": 44100,
            "frames": int(in_proc.shape[-1]),
            "peak": {s: round(v["peak"], 6) for s, v in case_info["stems"].items()},
            "flac_snr_db": {s: round(v["quantisation_snr_db"], 1)
                            for s, v in case_info["stems"].items()},
            "command": ["python", "-m", "demucs.separate", "--repo", "REPO", "-n", bag,
                        "-o", "OUT", "--shifts", "0", "--float32", "--clip-mode", "none",
                        "-d", "cpu", *flags, f"audio/{track_name}"],
        })
    (expected_dir / "cases.json").write_text(json.dumps(cases_json, indent=2) + "\n")

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
    if opts.keep_tmp:
        log(f"kept {tmp}")
    else:
        shutil.rmtree(tmp)
    for p in sorted(out.rglob("*")):
        if p.is_file():
            p.chmod(0o644)
            log(f"  {p.stat().st_size:9d}  {p.relative_to(out)}")
    total = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    log(f"== done: {total / 1e6:.2f} MB under {out}")
    return summary


if __name__ == "__main__":
    main()
