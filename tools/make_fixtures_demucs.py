#!/usr/bin/env python3
"""Build the waveform-Demucs parity fixtures under Tests/Fixtures/demucs/ from PyTorch demucs.

Run by hand with the reference environment:

    ~/.cache/demucs-ref/bin/python tools/make_fixtures_demucs.py

What it does, in order:
  1. builds two small randomly initialised `demucs.demucs.Demucs` models (fixed seeds),
     perturbs their weights so that every branch matters (see `perturb_`) and rounds
     every weight to float16 (the stored dtype; demucs then runs the rounded weights in
     float32);
  2. writes them in the demucs >= 4.1 hub layout (<sig>.safetensors + <name>.yaml) under
     Tests/Fixtures/demucs/models/, and as <sig>.th in a temporary repo folder for
     demucs's own CLI;
  3. runs `python -m demucs.separate --repo TMP -n NAME --shifts 0 --float32
     --clip-mode none -d cpu` on the existing inputs Tests/Fixtures/audio/*.flac and
     stores the stems as 24-bit FLAC rounded to the fewest significant bits that keep
     >= 80 dB (as tools/make_fixtures.py does) under expected/<case>/, plus cases.json;
  4. dumps one forward pass of wav_attn layer by layer, and unit data for nn.LSTM,
     demucs's BLSTM (with and without max_steps framing) and LocalState, into
     debug/wav_layers.safetensors and debug/wav_units.safetensors (float32);
  5. prints a branch check: the output with one part of the network zeroed against the
     full output, so that every part is seen to matter.

It does not touch Tests/Fixtures/{models,audio,expected,debug} (tools/make_fixtures.py
owns those); it reads the inputs from Tests/Fixtures/audio/. Deterministic: same torch /
demucs versions, same bytes.
"""
import argparse
import inspect
import json
import math
import os
import shutil
import struct
import subprocess
import sys
import tempfile
from fractions import Fraction
from pathlib import Path

import numpy as np
import soundfile
import sphn
import torch
from safetensors.torch import save_file

import demucs
from demucs.apply import apply_model
from demucs.audio import convert_audio
from demucs.demucs import BLSTM, Demucs, LocalState
from demucs.hf import load_safetensors_model
from demucs.states import load_model

REPO_ROOT = Path(__file__).resolve().parent.parent
FIXTURES = REPO_ROOT / "Tests" / "Fixtures"
DEFAULT_OUT = FIXTURES / "demucs"
AUDIO = FIXTURES / "audio"

KLASS = "demucs.demucs.Demucs"
SOURCES2 = ["drums", "vocals"]
WEIGHT_DTYPE = torch.float16
MIN_STEM_SNR_DB = 80.0

# name -> (constructor overrides on top of the Demucs defaults, seed, signature, extra
# weight scales {state-dict prefix: factor} applied after the perturbation). Two sources
# each (the stems dominate the fixture size), widths 3 / 6 / 12 / 24.
MODELS = {
    # LSTM bottleneck (2 layers, scaled x4 so that it weighs in the output), GLU, GroupNorm
    # (3 groups) from layer 2, julius x2 resampling, input normalisation, DConv in the
    # encoder only (no attention / LSTM inside: thresholds 4 = depth), a fractional
    # dconv_comp (hidden = int(channels / 1.5)). 1 s segments: cut_b (1.25 s) runs as two
    # chunks, the second one partial and padded to valid_length with its neighbouring audio.
    "wav_lstm": (dict(sources=SOURCES2, audio_channels=2, channels=3, growth=2, depth=4,
                      lstm_layers=2, glu=True, norm_starts=2, norm_groups=3,
                      dconv_mode=1, dconv_comp=1.5, resample=True, normalize=True,
                      segment=Fraction(1, 1)),
                 3101, "d3a4e5b1", {"lstm.linear.": 4.0}),
    # DConv in encoder and decoder (dconv_mode 3) with LocalState attention from layer 2 and
    # BLSTMs (max_steps 200, so framed: 516 steps at layer 3 on cut_a) from layer 3, so
    # layer 2 has DConv blocks [conv, norm, gelu, attn, conv, ...] and layer 3
    # [conv, norm, gelu, lstm, attn, conv, ...]; a one-layer LSTM bottleneck; GroupNorm from
    # layer 3; normalize=False, as demucs's training config (conf/config.yaml) sets it for
    # the official waveform models. Segment 2 s (an int in the kwargs): cut_a (1.5 s) runs
    # as one chunk, zero-padded to valid_length.
    "wav_attn": (dict(sources=SOURCES2, audio_channels=2, channels=3, growth=2, depth=4,
                      lstm_layers=1, glu=True, norm_starts=3, norm_groups=3,
                      dconv_mode=3, dconv_comp=3, dconv_attn=2, dconv_lstm=3,
                      resample=True, normalize=False, context=1, segment=2),
                 3202, "a77e2c90", {}),
}

CASES = [
    ("wav_lstm_cut_b", "wav_lstm", "cut_b.flac", []),
    ("wav_attn_cut_a", "wav_attn", "cut_a.flac", []),
]


def log(*args):
    print(*args, flush=True)


def snr_db(ref, est):
    ref = np.asarray(ref, dtype=np.float64)
    est = np.asarray(est, dtype=np.float64)
    noise = np.sum((ref - est) ** 2)
    if noise == 0:
        return math.inf
    return 10 * math.log10(np.sum(ref ** 2) / noise)


# ---------------------------------------------------------------------------
# Models

def full_kwargs(overrides):
    """Every Demucs constructor argument, as a training run passes them."""
    sig = inspect.signature(Demucs.__init__)
    kwargs = {}
    for name, param in sig.parameters.items():
        if name == "self":
            continue
        default = param.default
        kwargs[name] = list(default) if isinstance(default, list) else default
    kwargs.update(overrides)
    kwargs["sources"] = list(kwargs["sources"])
    return kwargs


def perturb_(model, seed):
    """Make every weight matter: LayerScales (init 1e-4) set to uniform 0.2..0.8; constant
    tensors (GroupNorm weight 1 / bias 0, LocalState query_decay bias -2) get N(0, 0.1)
    noise, every other tensor noise of 2% of its own std; the biases of the convolutions
    scaled by 0.1 (with rescale, the conv weights are small and their biases would
    otherwise dominate)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        state = model.state_dict()
        for name, tensor in state.items():
            if not tensor.is_floating_point():
                continue
            noise = torch.randn(tensor.shape, generator=gen)
            if name.endswith(".scale"):
                tensor.copy_(0.2 + 0.6 * torch.rand(tensor.shape, generator=gen))
            elif tensor.numel() > 1 and float(tensor.std()) > 0:
                tensor.add_(0.02 * float(tensor.std()) * noise)
            else:
                tensor.add_(0.1 * noise)
        for name, tensor in state.items():
            if name.endswith(".bias") and tensor.dim() == 1 and ".lstm." not in name \
                    and not is_norm(model, name):
                tensor.mul_(0.1)


def is_norm(model, name):
    module = model.get_submodule(name.rsplit(".", 1)[0])
    return isinstance(module, torch.nn.GroupNorm)


def round_(model):
    with torch.no_grad():
        for tensor in model.state_dict().values():
            if tensor.is_floating_point():
                tensor.copy_(tensor.to(WEIGHT_DTYPE).to(tensor.dtype))


# Peak of the network output (normalised units) on the first second of cut_a that the
# outermost transposed convolution is scaled to: the stems then peak around 0.2..0.6.
OUTPUT_PEAK = 3.0


def build_model(overrides, seed, scales):
    torch.manual_seed(seed)
    kwargs = full_kwargs(overrides)
    model = Demucs(**kwargs)
    perturb_(model, seed + 7919)
    with torch.no_grad():
        state = model.state_dict()
        for prefix, factor in scales.items():
            for k, v in state.items():
                if k.startswith(prefix):
                    v.mul_(factor)
        cut_a, _ = soundfile.read(str(AUDIO / "cut_a.flac"), dtype="float32", always_2d=True)
        wav = torch.from_numpy(np.ascontiguousarray(cut_a.T[:, :44100]))[None]
        wav = (wav - wav.mean()) / wav.std()
        model.eval()
        peak = float(model(wav).abs().max())
        last = model.decoder[-1][-1]
        assert isinstance(last, torch.nn.ConvTranspose1d)
        last.weight.mul_(OUTPUT_PEAK / peak)
        last.bias.mul_(OUTPUT_PEAK / peak)
    round_(model)
    model.eval()
    args, recorded = model._init_args_kwargs
    assert list(args) == [] and recorded == kwargs
    return model


def encode_json(value):
    def default(obj):
        if isinstance(obj, Fraction):
            return {"_type": "fraction", "numerator": obj.numerator,
                    "denominator": obj.denominator}
        raise TypeError(f"cannot encode {obj!r}")
    return json.dumps(value, default=default)


def plain_state(model):
    state = {}
    for k, v in model.state_dict().items():
        stored = v.detach().to(WEIGHT_DTYPE).contiguous().clone()
        assert torch.equal(stored.to(v.dtype), v), k
        state[k] = stored
    return state


def write_safetensors(path, tensors, metadata):
    """save_file, then the JSON header rewritten in a fixed key order (reproducible bytes)."""
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
    write_safetensors(path, plain_state(model), {
        "klass": KLASS, "args": encode_json(list(args)), "kwargs": encode_json(kwargs)})


def save_th(model, path):
    args, kwargs = model._init_args_kwargs
    torch.save({"klass": Demucs, "args": list(args), "kwargs": dict(kwargs),
                "state": plain_state(model)}, str(path))


def check_round_trip(name, model, st_path, th_path):
    gen = torch.Generator().manual_seed(77)
    x = 0.1 * torch.randn(1, 2, 20000, generator=gen)
    with torch.no_grad():
        ref = model(x)
        from_st = load_safetensors_model(st_path).eval()(x)
        from_th = load_model(th_path).eval()(x)
    same_st, same_th = torch.equal(ref, from_st), torch.equal(ref, from_th)
    log(f"  round trip {name}: safetensors identical={same_st}, .th identical={same_th}")
    if not (same_st and same_th):
        raise SystemExit(f"round trip failed for {name}")


# ---------------------------------------------------------------------------
# Expected outputs

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
    """24-bit FLAC rounded to the fewest significant bits keeping MIN_STEM_SNR_DB (the low
    bits are zero, which FLAC stores for free). Returns (bits, SNR of the file as read)."""
    exact = np.asarray(data, np.float64)
    for bits in range(16, 25):
        scale = float(2 ** (bits - 1))
        ints = np.round(exact * scale)
        if snr_db(exact, ints / scale) >= MIN_STEM_SNR_DB:
            break
    else:
        raise SystemExit(f"{path}: 24 bits give less than {MIN_STEM_SNR_DB} dB")
    assert np.max(np.abs(ints)) < scale
    ints32 = (ints.astype(np.int64) << (32 - bits)).astype(np.int32)
    soundfile.write(str(path), np.ascontiguousarray(ints32.T), rate, format="FLAC",
                    subtype="PCM_24", compression_level=1.0)
    back, back_rate = soundfile.read(str(path), dtype="float64", always_2d=True)
    assert back_rate == rate and np.array_equal(back.T, ints / scale), path
    return bits, snr_db(exact, back.T)


def in_process_separate(model, track):
    data, sr = sphn.read(str(track))
    wav = convert_audio(torch.from_numpy(np.asarray(data, np.float32)), int(sr),
                        model.samplerate, model.audio_channels)
    ref = wav.mean(0)
    mean = ref.mean()
    std = ref.std() + 1e-8
    out = apply_model(model, ((wav - mean) / std)[None], shifts=0, split=True,
                      overlap=0.25, device="cpu")
    return (out * std + mean)[0]


# ---------------------------------------------------------------------------
# Debug dumps

def dump_layers(model, wav, path):
    """One forward pass (raw input: the model normalises it itself) of `model` on `wav` [1, C, T], with hooks on the encoder and
    decoder layers and the LSTM. Tensors are cut to `SLICE` samples along time (metadata
    `slices` says which); `input` stays whole (float16-exact values, stored F16)."""
    captured = {}
    hooks = []

    def keep(name):
        def hook(module, inputs, output):
            captured[name] = output.detach().clone()
        return hook

    for i, layer in enumerate(model.encoder):
        hooks.append(layer.register_forward_hook(keep(f"enc{i}")))
    for i, layer in enumerate(model.decoder):
        hooks.append(layer.register_forward_hook(keep(f"dec{i}")))
    if model.lstm is not None:
        hooks.append(model.lstm.register_forward_hook(keep("lstm")))
    with torch.no_grad():
        out = model(wav)
        # The upsampled input, as forward computes it.
        x = wav
        if model.normalize:
            mono = x.mean(dim=1, keepdim=True)
            x = (x - mono.mean(dim=-1, keepdim=True)) / (1e-5 + mono.std(dim=-1, keepdim=True))
        delta = model.valid_length(wav.shape[-1]) - wav.shape[-1]
        x = torch.nn.functional.pad(x, (delta // 2, delta - delta // 2))
        import julius
        captured["upsampled"] = julius.resample_frac(x, 1, 2)
    for h in hooks:
        h.remove()
    captured["output"] = out
    tensors, slices = {}, {}
    for name, tensor in captured.items():
        length = tensor.shape[-1]
        start = 0 if name != "output" else 0
        stop = min(length, 128)
        slices[name] = {"dim": tensor.dim() - 1, "start": start, "stop": stop,
                        "full_shape": list(tensor.shape)}
        tensors[name] = tensor[..., start:stop].to(torch.float32).contiguous()
    # The input holds float16 values (see main), so F16 stores it exactly.
    assert torch.equal(wav.to(torch.float16).to(torch.float32), wav)
    tensors["input"] = wav.to(torch.float16).contiguous()
    write_safetensors(path, tensors, {
        "model": "wav_attn", "slices": json.dumps(slices, sort_keys=True),
        "torch": torch.__version__, "demucs": demucs.__version__})
    return tensors, slices


def dump_units(path):
    """Small modules with random weights and their outputs, for unit tests."""
    torch.manual_seed(4242)
    tensors = {}
    with torch.no_grad():
        # nn.LSTM, 2 layers, bidirectional, input 5, hidden 6: [T=9, N=3, 5] -> [9, 3, 12].
        lstm = torch.nn.LSTM(input_size=5, hidden_size=6, num_layers=2, bidirectional=True)
        x = torch.randn(9, 3, 5)
        tensors["lstm_in"] = x
        tensors["lstm_out"] = lstm(x)[0]
        for k, v in lstm.state_dict().items():
            tensors[f"lstm.{k}"] = v
        # demucs BLSTM(dim 6, 2 layers, max_steps 8, skip): framed on T=21 (6 frames of 8,
        # hop 4), and on T=7 (<= max_steps: one sequence).
        blstm = BLSTM(6, layers=2, max_steps=8, skip=True)
        for k, v in blstm.state_dict().items():
            tensors[f"blstm.{k}"] = v
        for name, t in (("blstm_long", 21), ("blstm_short", 7)):
            x = torch.randn(2, 6, t)
            tensors[f"{name}_in"] = x
            tensors[f"{name}_out"] = blstm(x)
        # LocalState(8 channels, 4 heads, ndecay 4) on [B=2, 8, T=30]; query_decay made to
        # vary so that the decay term differs between heads and positions.
        local = LocalState(8, heads=4, ndecay=4)
        local.query_decay.weight.normal_(0, 0.5)
        local.query_decay.bias.normal_(0, 1)
        for k, v in local.state_dict().items():
            tensors[f"local.{k}"] = v
        x = torch.randn(2, 8, 30)
        tensors["local_in"] = x
        tensors["local_out"] = local(x)
    tensors = {k: v.to(torch.float32).contiguous() for k, v in tensors.items()}
    write_safetensors(path, tensors, {"torch": torch.__version__, "demucs": demucs.__version__})
    return tensors


# ---------------------------------------------------------------------------
# Branch check

def branches(model):
    out = {
        "encoder DConv (layer scales = 0)":
            lambda k: k.startswith("encoder.") and k.endswith(".scale"),
        "decoder DConv (layer scales = 0)":
            lambda k: k.startswith("decoder.") and k.endswith(".scale"),
        "LSTM bottleneck (lstm.linear = 0)": lambda k: k.startswith("lstm.linear."),
        "DConv BLSTMs (their linear = 0, skip only)":
            lambda k: ".lstm.linear" not in k and k.startswith(("encoder.", "decoder."))
            and ".linear." in k,
        "LocalState (proj = 0, identity)": lambda k: ".proj." in k,
        "LocalState decay (query_decay = 0)": lambda k: ".query_decay." in k,
    }
    names = model.state_dict().keys()
    return {label: sel for label, sel in out.items() if any(sel(k) for k in names)}


def branch_check(model, wav):
    wav = (wav - wav.mean()) / wav.std()
    with torch.no_grad():
        ref = model(wav)
    results = {}
    for label, select in branches(model).items():
        state = {k: (torch.zeros_like(v) if select(k) else v)
                 for k, v in model.state_dict().items()}
        other = Demucs(**model._init_args_kwargs[1])
        other.load_state_dict(state)
        other.eval()
        with torch.no_grad():
            out = other(wav)
        results[label] = snr_db(ref.numpy(), out.numpy())
        log(f"    without {label:45s} SNR {results[label]:6.1f} dB")
    return results


# ---------------------------------------------------------------------------

def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--keep-tmp", action="store_true")
    opts = parser.parse_args()
    torch.set_num_threads(2)

    out = opts.out
    models_dir, expected_dir, debug_dir = out / "models", out / "expected", out / "debug"
    for d in (models_dir, expected_dir, debug_dir):
        if d.exists():
            shutil.rmtree(d)
        d.mkdir(parents=True)
    tmp = Path(tempfile.mkdtemp(prefix="demucs-wav-fixtures-"))
    th_repo, cli_out = tmp / "repo", tmp / "separated"
    th_repo.mkdir()
    log(f"torch {torch.__version__}, demucs {demucs.__version__}, temp folder {tmp}")

    log("== models")
    models = {}
    for name, (overrides, seed, sig, scales) in MODELS.items():
        model = build_model(overrides, seed, scales)
        models[name] = model
        st_path, th_path = models_dir / f"{sig}.safetensors", th_repo / f"{sig}.th"
        save_safetensors(model, st_path)
        save_th(model, th_path)
        for repo in (models_dir, th_repo):
            (repo / f"{name}.yaml").write_text(f"models: ['{sig}']\n")
        n_params = sum(p.numel() for p in model.parameters())
        log(f"  {name}: sig {sig}, seed {seed}, {n_params:,} parameters, "
            f"{len(model.state_dict())} tensors, {st_path.stat().st_size:,} bytes")
        check_round_trip(name, model, st_path, th_path)

    log("== expected outputs (demucs CLI)")
    cases_json = []
    for case, name, track_name, flags in CASES:
        track = AUDIO / track_name
        stem_dir, _ = run_cli(th_repo, name, track, cli_out, flags)
        model = models[name]
        in_proc = in_process_separate(model, track).numpy()
        case_dir = expected_dir / case
        case_dir.mkdir()
        peaks, snrs = {}, {}
        for k, stem in enumerate(model.sources):
            data, rate = soundfile.read(str(stem_dir / f"{stem}.wav"), dtype="float32",
                                        always_2d=True)
            data = data.T
            peak = float(np.max(np.abs(data)))
            if peak >= 0.999:
                raise SystemExit(f"{case}/{stem}: peak {peak:.4f}, the clamp may have acted")
            diff = float(np.max(np.abs(in_proc[k] - data)))
            flac = case_dir / f"{stem}.flac"
            bits, q_snr = write_stem_flac(flac, data, rate)
            peaks[stem], snrs[stem] = round(peak, 6), round(q_snr, 1)
            log(f"    {stem:7s} max|x| {peak:.4f}  {bits}-bit SNR {q_snr:6.1f} dB  "
                f"{flac.stat().st_size:7d} bytes  |CLI - in-process| {diff:.2e}")
        cases_json.append({
            "case": case, "model": name, "input": f"audio/{track_name}", "flags": flags,
            "stems": list(model.sources), "samplerate": 44100,
            "frames": int(in_proc.shape[-1]), "peak": peaks, "flac_snr_db": snrs,
            "command": ["python", "-m", "demucs.separate", "--repo", "REPO", "-n", name,
                        "-o", "OUT", "--shifts", "0", "--float32", "--clip-mode", "none",
                        "-d", "cpu", *flags, f"audio/{track_name}"],
        })
    (expected_dir / "cases.json").write_text(json.dumps(cases_json, indent=2) + "\n")

    log("== debug dumps")
    cut_a, _ = soundfile.read(str(AUDIO / "cut_a.flac"), dtype="float32", always_2d=True)
    # 8192 frames from 0.5 s on, rounded to float16 values (so the stored input is exact).
    seg = torch.from_numpy(np.ascontiguousarray(cut_a.T[:, 22050:22050 + 8192]))
    seg = seg.to(torch.float16).to(torch.float32)[None]
    tensors, slices = dump_layers(models["wav_attn"], seg, debug_dir / "wav_layers.safetensors")
    for name in sorted(tensors):
        log(f"  {name:10s} {list(tensors[name].shape)}"
            + (f" of {slices[name]['full_shape']}" if name in slices else ""))
    units = dump_units(debug_dir / "wav_units.safetensors")
    log(f"  units: {', '.join(sorted(units))}")

    log("== branch check (first second of cut_a, normalised)")
    seg1 = torch.from_numpy(np.ascontiguousarray(cut_a.T[:, :44100]))[None]
    for name, model in models.items():
        log(f"  {name}")
        branch_check(model, seg1)

    if opts.keep_tmp:
        log(f"kept {tmp}")
    else:
        shutil.rmtree(tmp)
    total = 0
    for p in sorted(out.rglob("*")):
        if p.is_file():
            p.chmod(0o644)
            total += p.stat().st_size
            log(f"  {p.stat().st_size:9d}  {p.relative_to(out)}")
    log(f"== done: {total / 1e6:.3f} MB under {out}")


if __name__ == "__main__":
    main()
