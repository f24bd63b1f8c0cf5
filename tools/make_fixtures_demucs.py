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
import json
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import soundfile
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fixturelib import (  # noqa: E402  (helpers shared by the fixture generators)
    bag_yaml, branch_check, case_entry, check_init_args, check_round_trip, finish, full_kwargs,
    in_process_separate, keep_output, log, make_tmp, perturb_, reset_dirs, round_weights_,
    run_cli, save_safetensors, save_th, store_stems, write_cases, write_safetensors)

import demucs  # noqa: E402
from demucs.demucs import BLSTM, Demucs, LocalState  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parent.parent
FIXTURES = REPO_ROOT / "Tests" / "Fixtures"
DEFAULT_OUT = FIXTURES / "demucs"
AUDIO = FIXTURES / "audio"

KLASS = "demucs.demucs.Demucs"
SOURCES2 = ["drums", "vocals"]

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


# ---------------------------------------------------------------------------
# Models

def scale_bias(model, name, tensor):
    """Which biases perturb_ scales by 0.1: those of the convolutions (with rescale, the conv
    weights are small and their biases would otherwise dominate), not the LSTMs' or the
    GroupNorms'. Everything else as in fixturelib.perturb_ (LayerScales 0.2..0.8, N(0, 0.1)
    on constant tensors such as LocalState's query_decay bias, 2% noise on the rest)."""
    return tensor.dim() == 1 and ".lstm." not in name and not is_norm(model, name)


def is_norm(model, name):
    module = model.get_submodule(name.rsplit(".", 1)[0])
    return isinstance(module, torch.nn.GroupNorm)


# Peak of the network output (normalised units) on the first second of cut_a that the
# outermost transposed convolution is scaled to: the stems then peak around 0.2..0.6.
OUTPUT_PEAK = 3.0


def build_model(overrides, seed, scales):
    torch.manual_seed(seed)
    kwargs = full_kwargs(Demucs, overrides["sources"], overrides)
    model = Demucs(**kwargs)
    perturb_(model, seed + 7919, scale_bias)
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
    round_weights_(model)
    model.eval()
    check_init_args(model, kwargs)
    return model


# ---------------------------------------------------------------------------
# Debug dumps

def dump_layers(model, wav, path):
    """One forward pass (raw input: the model normalises it itself) of `model` on `wav` [1, C, T], with hooks on the encoder and
    decoder layers and the LSTM. Tensors are cut to `SLICE` samples along time (metadata
    `slices` says which); `input` stays whole (float16-exact values, stored F16)."""
    captured = {}
    hooks = []
    keep = lambda name: keep_output(captured, name)  # noqa: E731

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


# ---------------------------------------------------------------------------

def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--keep-tmp", action="store_true")
    opts = parser.parse_args()
    torch.set_num_threads(2)

    out = opts.out
    models_dir, expected_dir, debug_dir = reset_dirs(out, ("models", "expected", "debug"))
    tmp, th_repo, cli_out = make_tmp("demucs-wav-fixtures-")

    log("== models")
    models = {}
    for name, (overrides, seed, sig, scales) in MODELS.items():
        model = build_model(overrides, seed, scales)
        models[name] = model
        st_path, th_path = models_dir / f"{sig}.safetensors", th_repo / f"{sig}.th"
        save_safetensors(model, st_path, KLASS)
        save_th(model, th_path)
        for repo in (models_dir, th_repo):
            (repo / f"{name}.yaml").write_text(bag_yaml([sig], None))
        n_params = sum(p.numel() for p in model.parameters())
        log(f"  {name}: sig {sig}, seed {seed}, {n_params:,} parameters, "
            f"{len(model.state_dict())} tensors, {st_path.stat().st_size:,} bytes")
        check_round_trip(name, model, st_path, th_path, 20000)

    log("== expected outputs (demucs CLI)")
    cases_json = []
    for case, name, track_name, flags in CASES:
        track = AUDIO / track_name
        stem_dir, _ = run_cli(th_repo, name, track, cli_out, flags)
        model = models[name]
        in_proc = in_process_separate(model, track, 0.25).numpy()
        case_dir = expected_dir / case
        case_dir.mkdir()
        info = store_stems(case, stem_dir, case_dir, model.sources, in_proc)
        cases_json.append(case_entry(case, name, track_name, flags, model.sources,
                                     in_proc.shape[-1], info))
    write_cases(expected_dir / "cases.json", cases_json)

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
        branch_check(model, seg1, branches(model), 45, indent="    ")

    total = finish(out, tmp, opts.keep_tmp)
    log(f"== done: {total / 1e6:.3f} MB under {out}")


if __name__ == "__main__":
    main()
