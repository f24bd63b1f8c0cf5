"""Helpers shared by the parity-fixture generators (tools/make_fixtures*.py).

The generators build different demucs models but store them, run demucs's CLI on them and
write the expected stems the same way; keeping that code in one place keeps the fixture
formats (hub layout, float16 weights, reduced-bit FLAC, byte-stable safetensors headers,
cases.json) the same across model families. Import it after putting tools/ on sys.path:

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import fixturelib
"""
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
from pathlib import Path

import numpy as np
import soundfile
import sphn
import torch
from safetensors.torch import save_file

import demucs
from demucs.apply import apply_model
from demucs.audio import convert_audio
from demucs.hf import load_safetensors_model
from demucs.states import load_model

# dtype of the stored weights. demucs's own checkpoints are half precision
# (`demucs.states.serialize_model(..., half=True)`), and so are the hub files made from
# them. The generators round every weight to float16 right after construction, so the
# models that demucs runs (in float32) hold exactly the stored values: storing them as F16
# loses nothing and halves the model files.
WEIGHT_DTYPE = torch.float16

# Every stored stem keeps at least this SNR against demucs's float32 output (the tests'
# bar is 60 dB).
MIN_STEM_SNR_DB = 80.0

# Parameters of normalisation layers: GroupNorm inside DConv (dconv.layers.N.1 and .4),
# the encoder / decoder norms, the transformer LayerNorms / GroupNorms.
NORM_PARAM = re.compile(r"(dconv\.layers\.\d+\.[14]\.|norm)")


def log(*args):
    """print, flushed, so the progress shows up in order with the CLI's own output."""
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

def full_kwargs(cls, sources, overrides):
    """Every constructor argument of `cls`, as a training run passes them
    (demucs.train.get_model passes the whole model config as kwargs), so that the metadata
    looks like the official files: nulls, lists, floats, a fraction. `sources` comes first,
    as in the constructors' signatures."""
    kwargs = {"sources": list(sources)}
    for name, param in inspect.signature(cls.__init__).parameters.items():
        if name in ("self", "sources"):
            continue
        default = param.default
        kwargs[name] = list(default) if isinstance(default, list) else default
    kwargs.update(overrides)
    kwargs["sources"] = list(kwargs["sources"])
    return kwargs


def perturb_(model, seed, scale_bias):
    """Make every weight matter.

    Random init leaves LayerScale at 1e-3 / 1e-4, norm weights at exactly 1 and biases at 0,
    which would hide whole branches or let a port that forgets an affine term pass anyway;
    and with the init's weight rescaling the conv biases dominate the small activations. So:
      - every LayerScale (`.scale`) is set to uniform 0.2..0.8;
      - constant tensors (norm weight / bias, attention biases) get N(0, 0.1) noise, every
        other float tensor gets noise of 2% of its own std;
      - the biases for which `scale_bias(model, name, tensor)` holds are scaled by 0.1 (the
        convolutions' biases; each model family says which those are)."""
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
            if name.endswith(".bias") and scale_bias(model, name, tensor):
                tensor.mul_(0.1)


def round_weights_(model):
    """Round every float tensor to WEIGHT_DTYPE in place, so the stored file is exact."""
    with torch.no_grad():
        for tensor in model.state_dict().values():
            if tensor.is_floating_point():
                tensor.copy_(tensor.to(WEIGHT_DTYPE).to(tensor.dtype))


def check_init_args(model, kwargs):
    """The model must record exactly the kwargs it was built with (they go into its files)."""
    args, recorded = model._init_args_kwargs
    assert list(args) == [] and recorded == kwargs


def encode_json(value):
    """Inverse of demucs.hf._decode_json."""
    def default(obj):
        if isinstance(obj, Fraction):
            return {"_type": "fraction", "numerator": obj.numerator,
                    "denominator": obj.denominator}
        raise TypeError(f"cannot encode {obj!r}")
    return json.dumps(value, default=default)


def plain_state(model):
    """The state dict as stored: every tensor in WEIGHT_DTYPE (exact, see round_weights_)."""
    state = {}
    for k, v in model.state_dict().items():
        stored = v.detach().to(WEIGHT_DTYPE).contiguous().clone()
        assert torch.equal(stored.to(v.dtype), v), k
        state[k] = stored
    return state


def write_safetensors(path, tensors, metadata):
    """safetensors.torch.save_file, then rewrite the JSON header in a fixed order: the
    library keeps `__metadata__` in a hash map, so its key order (and hence the file bytes)
    changes from run to run otherwise."""
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


def save_safetensors(model, path, klass):
    """The demucs >= 4.1 hub file: weights plus `klass` / `args` / `kwargs` metadata."""
    args, kwargs = model._init_args_kwargs
    metadata = {"klass": klass, "args": encode_json(list(args)), "kwargs": encode_json(kwargs)}
    write_safetensors(path, plain_state(model), metadata)


def save_th(model, path):
    """The legacy .th package that demucs's CLI loads with `--repo DIR -n NAME`."""
    args, kwargs = model._init_args_kwargs
    torch.save({"klass": type(model), "args": list(args), "kwargs": dict(kwargs),
                "state": plain_state(model)}, str(path))


def bag_yaml(sigs, weights):
    """A hub bag file. Signatures are quoted: an unquoted all-digit or digits-e-digits
    signature would be read back by YAML as a number."""
    lines = ["models: [" + ", ".join(f"'{s}'" for s in sigs) + "]"]
    if weights is not None:
        lines.append("weights: [")
        for row in weights:
            lines.append("  [" + ", ".join(repr(float(w)) for w in row) + "],")
        lines.append("]")
    return "\n".join(lines) + "\n"


def check_round_trip(name, model, st_path, th_path, frames):
    """Both stored files must load back (through demucs's own loaders) into a model with
    bit-identical output on a random input of `frames` samples."""
    gen = torch.Generator().manual_seed(77)
    x = 0.1 * torch.randn(1, model.audio_channels, frames, generator=gen)
    with torch.no_grad():
        ref = model(x)
        from_st = load_safetensors_model(st_path).eval()(x)
        from_th = load_model(th_path).eval()(x)
    same_st, same_th = torch.equal(ref, from_st), torch.equal(ref, from_th)
    log(f"  round trip {name}: safetensors identical={same_st}, .th identical={same_th}")
    if not (same_st and same_th):
        raise SystemExit(f"round trip failed for {name}")


# ---------------------------------------------------------------------------
# Folders

def reset_dirs(out, names):
    """Delete and recreate the subfolders `names` of `out`: a run rewrites them whole."""
    dirs = []
    for name in names:
        d = out / name
        if d.exists():
            shutil.rmtree(d)
        d.mkdir(parents=True)
        dirs.append(d)
    return dirs


def make_tmp(prefix):
    """A temporary folder with `repo/` (the .th models for the CLI) and `separated/` (its
    outputs). Returns (tmp, th_repo, cli_out)."""
    tmp = Path(tempfile.mkdtemp(prefix=prefix))
    th_repo, cli_out = tmp / "repo", tmp / "separated"
    th_repo.mkdir()
    log(f"torch {torch.__version__}, demucs {demucs.__version__}, temp folder {tmp}")
    return tmp, th_repo, cli_out


def finish(out, tmp, keep_tmp, skip_symlinks=False):
    """Remove (or keep) the temporary folder, make the outputs world-readable (the bytes
    are what the tests compare; modes only show up in git) and list them. Returns the total
    size in bytes."""
    if keep_tmp:
        log(f"kept {tmp}")
    else:
        shutil.rmtree(tmp)
    total = 0
    for p in sorted(out.rglob("*")):
        if p.is_file() and not (skip_symlinks and p.is_symlink()):
            p.chmod(0o644)
            total += p.stat().st_size
            log(f"  {p.stat().st_size:9d}  {p.relative_to(out)}")
    return total


# ---------------------------------------------------------------------------
# Expected outputs from demucs's CLI

def run_cli(repo, name, track, out_dir, flags):
    """`python -m demucs.separate` in float32 without clamping, as the Swift engine is
    compared against it. Returns (folder of the stems, command)."""
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
    """Store `data` [C, T] (float32) as a 24-bit FLAC, rounded to the fewest significant
    bits (16..24, counting the sign) that keep MIN_STEM_SNR_DB against `data`. The unused low
    bits are zero: libFLAC detects them ("wasted bits") and does not store them, and any
    24-bit FLAC reader returns the values unchanged, so no scale factor is needed. Returns
    (bits, SNR in dB of the file as read back)."""
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
    """Same steps as demucs.api.Separator.separate_audio_file, with the in-memory model: a
    check that the CLI really ran the weights we saved."""
    data, sr = sphn.read(str(track))
    wav = convert_audio(torch.from_numpy(np.asarray(data, np.float32)), int(sr),
                        model.samplerate, model.audio_channels)
    ref = wav.mean(0)
    mean = ref.mean()
    std = ref.std() + 1e-8
    out = apply_model(model, ((wav - mean) / std)[None], shifts=0, split=True,
                      overlap=overlap, device="cpu")
    return (out * std + mean)[0]


def store_stems(case, stem_dir, case_dir, sources, in_proc, stem_width=7, max_diff=None):
    """Read the CLI's float32 stems, check them (no clamping happened; with `max_diff`, the
    in-memory model agrees) and store each as case_dir/<stem>.flac (write_stem_flac).
    Returns stem -> {"peak", "bits", "snr", "diff", "frames"}."""
    info = {}
    for k, stem in enumerate(sources):
        data, rate = soundfile.read(str(stem_dir / f"{stem}.wav"), dtype="float32",
                                    always_2d=True)
        data = data.T                                   # [C, T]
        peak = float(np.max(np.abs(data)))
        if peak >= 0.999:
            raise SystemExit(f"{case}/{stem}: peak {peak:.4f}, the CLI's clamp to "
                             "[-1, 1] may have changed the output")
        diff = float(np.max(np.abs(in_proc[k] - data)))
        flac = case_dir / f"{stem}.flac"
        bits, q_snr = write_stem_flac(flac, data, rate)
        info[stem] = {"peak": peak, "bits": bits, "snr": q_snr, "diff": diff,
                      "frames": int(data.shape[1])}
        log(f"    {stem:{stem_width}s} max|x| {peak:.4f}  {bits}-bit SNR {q_snr:6.1f} dB  "
            f"{flac.stat().st_size:7d} bytes  |CLI - in-process| {diff:.2e}")
        if max_diff is not None and diff > max_diff:
            raise SystemExit(f"{case}/{stem}: the CLI and the in-memory model differ ({diff})")
    return info


def case_entry(case, model, track_name, flags, stems, frames, info):
    """One cases.json record; `command` is the CLI call with placeholder paths."""
    return {
        "case": case,
        "model": model,
        "input": f"audio/{track_name}",
        "flags": flags,
        "stems": list(stems),
        "samplerate": 44100,
        "frames": int(frames),
        "peak": {s: round(v["peak"], 6) for s, v in info.items()},
        "flac_snr_db": {s: round(v["snr"], 1) for s, v in info.items()},
        "command": ["python", "-m", "demucs.separate", "--repo", "REPO", "-n", model,
                    "-o", "OUT", "--shifts", "0", "--float32", "--clip-mode", "none",
                    "-d", "cpu", *flags, f"audio/{track_name}"],
    }


def write_cases(path, entries):
    """cases.json: indented, with a final newline, so diffs of it stay readable."""
    path.write_text(json.dumps(entries, indent=2) + "\n")


# ---------------------------------------------------------------------------
# Layer dumps and branch checks

def keep_output(captured, name):
    """A forward hook storing a copy of the module's output (the first one of a tuple)."""
    def hook(module, inputs, output):
        if isinstance(output, tuple):
            output = output[0]
        captured[name] = output.detach().clone()
    return hook


def branch_check(model, wav, groups, width, indent="  "):
    """SNR of the model output with one group of weights zeroed against the full output:
    shows that each part of the network reaches the output. `groups` maps a label to a
    predicate on state-dict keys; groups that select nothing are skipped."""
    wav = (wav - wav.mean()) / wav.std()
    with torch.no_grad():
        ref = model(wav)
    results = {}
    for label, select in groups.items():
        state = model.state_dict()
        if not any(select(k) for k in state):
            continue
        state = {k: (torch.zeros_like(v) if select(k) else v) for k, v in state.items()}
        other = type(model)(**model._init_args_kwargs[1])
        other.load_state_dict(state)
        other.eval()
        with torch.no_grad():
            out = other(wav)
        results[label] = snr_db(ref.numpy(), out.numpy())
        log(f"{indent}without {label:{width}s} SNR {results[label]:6.1f} dB")
    return results
