#!/usr/bin/env python3
"""Build the Demucs v2 parity fixtures under Tests/Fixtures/v2/ from demucs 2.0.3 (PyPI).

Run by hand with the reference environment, from the repository root:

    ~/.cache/demucs-ref/bin/python tools/make_fixtures_v2.py [--demucs2 DIR] [--out DIR]

demucs 2.0.3 and diffq 0.2.4 are not installed in the reference venv (it holds demucs 4.1,
which fixturelib imports); they sit apart in a `pip install --target` folder, `--demucs2`
(default /root/.cache/demucs2). After fixturelib is imported, the script drops demucs 4.1
from `sys.modules`, puts that folder first on `sys.path` and imports demucs 2.0.3 from it
(checked by version and file path), so that everything below — the model classes, the
pickled class references in the packaged files, `apply_model`, `load_model`, `save_model`,
`save_state`, the quantizer — is v2's own code.

What it does, in order:
  1. builds four small randomly initialised v2 models (fixed seeds): two `demucs.model.Demucs`
     and two `demucs.tasnet.ConvTasNet`; perturbs their weights so that every branch matters
     (fixturelib.perturb_), scales the last layer so the stems peak around 0.2..0.6 and
     rounds every weight to float16 values (the models run in float32);
  2. saves them the way v2 saved models (models/):
       v2demucs_small-<sig>.th  bare state dict, v2's `save_state(get_state(model, None))`
                                (the format of v2's pretrained files NAME-SIG.th)
       v2demucs_q01.th          the same package with the state in diffq 0.1.0's layout (no
                                'meta', unpacked levels), as the 2021 demucs_quantized file
       v2demucs_q.th            packaged, v2's `save_model` with a DiffQuantizer
                                (`get_quantizer`: min_size=--q-min-size, group_size=8), the
                                bit widths per group of 8 weights set as training would have
                                moved them (2..14 bits, see Q_BITS)
       tasnet_small-<sig>.th    bare state dict (gLN, non-causal, relu mask)
       tasnet_cln.th            packaged, unquantised (cLN, causal, softmax mask, 0.5 s
                                segments, L=12)
     and checks that they load back as v2 loads them (bare: build + load_state_dict; packaged:
     v2's `utils.load_model`) into models with identical weights and outputs;
  3. computes the expected stems as v2's `separate.py` main() does (load_track's
     torchaudio fallback: convert_audio_channels + julius.resample_frac; normalisation by the
     mono mix's mean / std, without eps; `apply_model(shifts=0, split=True, overlap)`;
     de-normalisation), without the final int16 step (v2 divides by max(1.01 * peak, 1):
     a no-op here, every peak is checked < 0.99), and stores one stem per case (CASES) as
     24-bit FLAC rounded to the fewest bits that keep >= 80 dB (fixturelib.write_stem_flac)
     under expected/<case>/, plus expected/cases.json;
  4. dumps one forward pass of v2demucs_small, tasnet_small and tasnet_cln layer by layer
     into debug/v2_layers.safetensors;
  5. prints a branch check (the output with one part of the network zeroed against the full
     output) and the parameter counts of the full-size v2 architectures.

Deterministic: same torch / julius / demucs 2.0.3 / diffq versions, same bytes (the script
runs torch on one thread). It writes only under --out (default Tests/Fixtures/v2), whose
models/, expected/ and debug/ it deletes and rewrites.

Patches for demucs 2.0.3 under current torch (nothing installed is edited):
  - `torch.load` defaults to weights_only=True since torch 2.6, and v2's `load_model` /
    `set_state` call `th.load(path, 'cpu')` on pickles of classes (the model class, the
    training argparse.Namespace with pathlib paths, diffq's quantizer class): while v2 loads a
    file, `torch.load` is replaced by a wrapper that passes weights_only=False (`v2_torch_load`).
  - v2's `load_model` leaves the DiffQuantizer attached to the model it returns (training
    mode), and a forward then raises under diffq 0.2.4 (`setup_optimizer()` was not called):
    the quantizer is detached after loading, as demucs.pretrained does (`build_quantized_demucs`).
  - `demucs.separate` imports torchaudio at import time (broken in the reference venv: built
    for another CUDA) and would read audio with ffmpeg (not installed) or torchaudio: it is
    not imported; its main() and load_track() fallback are replicated in `separate_v2` /
    `load_track_v2` (soundfile decodes the FLAC to float32 exactly as torchaudio would).
"""
import argparse
import contextlib
import hashlib
import io
import json
import re
import sys
import zlib
from pathlib import Path

import numpy as np
import soundfile
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fixturelib import (  # noqa: E402  (helpers shared by the fixture generators)
    case_entry, keep_output, log, perturb_, reset_dirs, round_weights_, snr_db,
    write_cases, write_safetensors, write_stem_flac)

REPO_ROOT = Path(__file__).resolve().parent.parent
FIXTURES = REPO_ROOT / "Tests" / "Fixtures"
DEFAULT_OUT = FIXTURES / "v2"
AUDIO = FIXTURES / "audio"
DEFAULT_DEMUCS2 = Path("/root/.cache/demucs2")

# v2's demucs.pretrained.SOURCES (and demucs.__main__'s).
SOURCES = ["drums", "bass", "other", "vocals"]

# Peak of the network output (normalised units) on the first second of cut_a that each
# model's last layer is scaled to: with v2's de-normalisation the stems peak around 0.2..0.6.
OUTPUT_PEAK = 3.0

# v2demucs_q: DiffQ penalty and --q-min-size (MB) of the training arguments. Parameters of
# more than min_size * 2**20 // 4 = 131 elements are quantised, the others stay float32.
DIFFQ_PENALTY = 0.0003
Q_MIN_SIZE = 0.0005
# Bit widths of the groups of 8 weights, per quantised parameter (cycled in the quantizer's
# order); a parameter with several widths gets a random one per group. [2] alone makes the
# stored bit widths all 0 (= min_bits 2), which bitpack stores on 0 bits. No 15: diffq 0.2.4's
# DiffQuantizer._bit_pack_param packs the levels of widths 1..14 only (`range(1, 15)`), so the
# groups of 15 bits are lost and restore as uninitialised memory (torch.empty).
Q_BITS = [[5, 7], [2], [8], [4, 9, 14], [6, 12], [3, 4]]

# case -> (model, input, flags, stored stems). v2 writes 4 stems a case; the stems dominate
# the fixture size (80 dB FLAC of random-model output: about 3.5 bytes per stereo frame, so
# ~150 KB per second per stem), so each case stores one stem (as the import fixtures keep
# only tinyq's vocals), every source at least once. A stem depends on every layer (for
# ConvTasNet's softmax mask, on every source's mask scores too): a subset still checks the
# whole path, and cases.json lists the stems stored.
CASES = [
    ("v2demucs_small_cut_a", "v2demucs_small", "cut_a.flac", [], ["vocals"]),
    ("v2demucs_small_mono48k", "v2demucs_small", "mono48k.flac", [], ["bass"]),
    ("v2demucs_q_cut_b", "v2demucs_q", "cut_b.flac", [], ["drums"]),
    ("tasnet_small_cut_b", "tasnet_small", "cut_b.flac", [], ["other"]),
    ("tasnet_cln_cut_a", "tasnet_cln", "cut_a.flac", ["--overlap", "0.5"], ["vocals"]),
]

# Debug dump: one forward pass on the first DEBUG_FRAMES of cut_a; the inputs are stored whole,
# every other tensor longer than DEBUG_WINDOW along time as its centred window of
# DEBUG_WINDOW steps (metadata `slices`, as in the other fixture folders' layer dumps).
DEBUG_FRAMES = 22050
DEBUG_WINDOW = 128


# ---------------------------------------------------------------------------
# demucs 2.0.3

def import_v2(folder):
    """Replace demucs 4.1 (imported by fixturelib) by demucs 2.0.3 from `folder`."""
    folder = Path(folder).resolve()
    for name in list(sys.modules):
        if name.split(".")[0] in ("demucs", "diffq"):
            del sys.modules[name]
    sys.path.insert(0, str(folder))
    import demucs
    import diffq
    if demucs.__version__ != "2.0.3" or Path(demucs.__file__).resolve().parent != folder / "demucs":
        raise SystemExit(f"expected demucs 2.0.3 from {folder}, got {demucs.__version__} "
                         f"from {demucs.__file__}")
    if Path(diffq.__file__).resolve().parent != folder / "diffq":
        raise SystemExit(f"expected diffq from {folder}, got {diffq.__file__}")
    import demucs.audio
    import demucs.model
    import demucs.parser
    import demucs.tasnet
    import demucs.utils
    import julius
    global V2, JULIUS
    V2, JULIUS = demucs, julius
    log(f"torch {torch.__version__}, demucs {demucs.__version__} from {demucs.__file__}, "
        f"diffq {diffq.__version__} from {diffq.__file__}")


@contextlib.contextmanager
def v2_torch_load():
    """torch.load as torch < 2.6 did it (weights_only=False), for v2's loaders."""
    original = torch.load

    def load(*args, **kwargs):
        kwargs.setdefault("weights_only", False)
        return original(*args, **kwargs)
    torch.load = load
    try:
        yield
    finally:
        torch.load = original


def training_args(argv):
    """The argparse.Namespace v2's training (`python -m demucs ...`) pickles into a packaged
    model, from v2's own parser. The dataset paths, which default to environment variables,
    are fixed to None so that the file does not depend on the environment."""
    args = V2.parser.get_parser().parse_args(argv)
    args.raw = None
    args.musdb = None
    return args


def main_demucs(args):
    """The model `python -m demucs` builds from its arguments (demucs/__main__.py)."""
    return V2.model.Demucs(
        audio_channels=args.audio_channels, channels=args.channels, context=args.context,
        depth=args.depth, glu=args.glu, growth=args.growth, kernel_size=args.kernel_size,
        lstm_layers=args.lstm_layers, rescale=args.rescale, rewrite=args.rewrite,
        stride=args.conv_stride, resample=args.resample, normalize=args.normalize,
        samplerate=args.samplerate, segment_length=4 * args.samples, sources=SOURCES)


def load_track_v2(path, audio_channels, samplerate):
    """demucs/separate.py load_track's torchaudio fallback: decode (float32, as torchaudio
    does for 16-bit files), convert_audio_channels, julius.resample_frac."""
    data, sr = soundfile.read(str(path), dtype="float32", always_2d=True)
    wav = torch.from_numpy(np.ascontiguousarray(data.T))
    wav = V2.audio.convert_audio_channels(wav, audio_channels)
    return JULIUS.resample_frac(wav, sr, samplerate)


def separate_v2(model, wav, overlap):
    """demucs/separate.py main() from the loaded track to the stems, before the output
    scaling / int16 step: [S, C, T] float32."""
    ref = wav.mean(0)
    wav = (wav - ref.mean()) / ref.std()
    sources = V2.utils.apply_model(model, wav, shifts=0, split=True, overlap=overlap)
    return sources * ref.std() + ref.mean()


def v2_command(model, track_name, flags):
    """The v2 CLI call equivalent to a case (v2 loads packaged files with --models DIR -n
    NAME; bare state dicts are its pretrained format, loaded by demucs.pretrained)."""
    return ["python", "-m", "demucs.separate", "--models", "MODELS", "-n", model, "-o", "OUT",
            "--shifts", "0", "--float32", *flags, f"audio/{track_name}"]


# ---------------------------------------------------------------------------
# Models

def scale_bias(model, name, tensor):
    """perturb_ scales the convolution biases by 0.1 (v2 Demucs' rescale leaves the conv
    weights small; ConvTasNet has no biases)."""
    module = model.get_submodule(name.rsplit(".", 1)[0])
    return isinstance(module, (torch.nn.Conv1d, torch.nn.ConvTranspose1d))


def first_second():
    cut_a, _ = soundfile.read(str(AUDIO / "cut_a.flac"), dtype="float32", always_2d=True)
    wav = torch.from_numpy(np.ascontiguousarray(cut_a.T[:, :44100]))
    return (wav - wav.mean()) / wav.std()


def finish_weights(model, seed, last, scales=None):
    """perturb_, optional extra scales {state-dict prefix: factor}, scale `last` (a weight /
    bias owner) so the output peaks at OUTPUT_PEAK on the first second of cut_a, round to
    float16 values."""
    perturb_(model, seed + 7919, scale_bias)
    with torch.no_grad():
        state = model.state_dict()
        for prefix, factor in (scales or {}).items():
            for k, v in state.items():
                if k.startswith(prefix):
                    v.mul_(factor)
        out = V2.utils.apply_model(model, first_second(), shifts=0, split=False)
        factor = OUTPUT_PEAK / float(out.abs().max())
        last.weight.mul_(factor)
        if last.bias is not None:
            last.bias.mul_(factor)
    round_weights_(model)


def same_weights(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    return list(sa) == list(sb) and all(torch.equal(sa[k], sb[k]) for k in sa)


def same_output(a, b):
    x = first_second()
    with torch.no_grad():
        return torch.equal(V2.utils.apply_model(a, x, shifts=0, split=False),
                           V2.utils.apply_model(b, x, shifts=0, split=False))


def save_bare(model, models_dir, name):
    """v2's `save_state(get_state(model, None), models/NAME.th)`: a plain dict of float32
    tensors, written as NAME-<first 8 hex digits of its sha256>.th."""
    state = V2.utils.get_state(model, None)
    V2.utils.save_state(state, models_dir / f"{name}.th")
    [path] = models_dir.glob(f"{name}-*.th")
    sig = hashlib.sha256(path.read_bytes()).hexdigest()[:8]
    assert path.name == f"{name}-{sig}.th"
    return path


def load_bare(cls, kwargs, path):
    """How v2 loads a bare state dict (demucs.pretrained: build, load_state_dict)."""
    model = cls(**kwargs)
    model.load_state_dict(torch.load(str(path), map_location="cpu"))
    return model


def load_packaged(path):
    """v2's `utils.load_model`; returns (model, quantizer still attached or None)."""
    with v2_torch_load():
        model = V2.utils.load_model(path)
    owners = {id(h.__self__): h.__self__ for h in model._forward_pre_hooks.values()
              if hasattr(h, "__self__")}
    assert len(owners) <= 1
    return model, next(iter(owners.values()), None)


def describe(name, model, path):
    n = sum(p.numel() for p in model.parameters())
    log(f"  {name}: {n:,} parameters, {len(model.state_dict())} tensors, "
        f"{path.name} {path.stat().st_size:,} bytes")


# Extra weight scales for the Demucs models, after the perturbation. With v2's rescale the
# inner decoder layers have a small gain, so that the LSTM's output only reaches the stems at
# -60 dB (a broken LSTM would pass a 60 dB parity test): the LSTM's output layer is scaled x4
# and the three inner decoder layers x2 (the LSTM then weighs in at about -24 dB, see the
# branch check).
DEMUCS_SCALES = {"lstm.linear.": 4.0, "decoder.0.": 2.0, "decoder.1.": 2.0, "decoder.2.": 2.0}


def build_small_demucs(models_dir):
    """Bare: Demucs(sources, channels=3, depth=4, lstm_layers=2), everything else at v2's
    defaults (rewrite, GLU, context 3, kernel 8, stride 4, growth 2, resample, no normalize,
    40 s segments: every input here is one chunk). DEMUCS_SCALES make the bottleneck weigh in
    the output."""
    kwargs = dict(sources=SOURCES, channels=3, depth=4, lstm_layers=2)
    torch.manual_seed(2001)
    model = V2.model.Demucs(**kwargs)
    finish_weights(model, 2001, model.decoder[-1][-1], DEMUCS_SCALES)
    path = save_bare(model, models_dir, "v2demucs_small")
    loaded = load_bare(V2.model.Demucs, kwargs, path)
    assert same_weights(model, loaded) and same_output(model, loaded), "v2demucs_small"
    describe("v2demucs_small", loaded, path)
    return loaded, path


def build_quantized_demucs(models_dir):
    """Packaged + DiffQ: the model and training arguments of `python -m demucs --channels 3
    --depth 4 --lstm_layers 1 --context 3 --normalize --samples 11025 --diffq P --q-min-size M
    --save_model` (segment_length = 4 * samples = 1 s: cut_b runs as two chunks, the second
    one shorter), saved by v2's save_model with get_quantizer's DiffQuantizer."""
    args = training_args(["--channels", "3", "--depth", "4", "--lstm_layers", "1",
                          "--context", "3", "--normalize", "--samples", "11025",
                          "--diffq", str(DIFFQ_PENALTY), "--q-min-size", str(Q_MIN_SIZE),
                          "--save_model"])
    torch.manual_seed(2002)
    model = main_demucs(args)
    finish_weights(model, 2002, model.decoder[-1][-1], DEMUCS_SCALES)
    quantizer = V2.utils.get_quantizer(model, args)
    gen = torch.Generator().manual_seed(2003)
    widths_used = []
    for index, qp in enumerate(quantizer._qparams):
        widths = torch.tensor(Q_BITS[index % len(Q_BITS)], dtype=torch.float32)
        pick = widths[torch.randint(len(widths), qp.logit.shape, generator=gen)]
        t = ((pick - quantizer.min_bits) / (quantizer.max_bits - quantizer.min_bits))
        t = t.clamp(0.001, 0.999)
        qp.logit.data[:] = torch.log(t / (1 - t))
        bits = quantizer._get_bits(qp.logit).round()
        assert torch.equal(bits, pick)
        widths_used.append(sorted({int(b) for b in bits}))
    path = models_dir / "v2demucs_q.th"
    V2.utils.save_model(model, quantizer, args, path)
    # The model as restored from the file's quantized state (what load_model gives).
    with v2_torch_load():
        package = torch.load(str(path), map_location="cpu")
        V2.utils.set_state(model, quantizer, package["state"])
    quantizer.detach()
    loaded, lq = load_packaged(path)
    assert lq is not None and isinstance(lq, type(quantizer))
    # v2's load_model leaves the quantizer attached, the model in training mode: a forward
    # then fails under diffq 0.2.4 (training-mode noise needs setup_optimizer); in eval mode
    # it re-quantizes the weights with the bit widths of its fresh logits (8 bits) around each
    # forward. demucs.pretrained detaches the quantizer after restoring: so do we.
    x = first_second()
    try:
        V2.utils.apply_model(loaded, x, shifts=0, split=False)
        train_mode = "runs"
    except RuntimeError as err:
        train_mode = f"raises RuntimeError({str(err)[:60]!r}...)"
    loaded.eval()
    with torch.no_grad():
        requant = V2.utils.apply_model(loaded, x, shifts=0, split=False)
    loaded.train()
    lq.detach()
    with torch.no_grad():
        restored = V2.utils.apply_model(loaded, x, shifts=0, split=False)
    assert same_weights(model, loaded) and same_output(model, loaded), "v2demucs_q"
    state = torch.load(io.BytesIO(zlib.decompress(package["state"]["compressed"])),
                       weights_only=False)
    qnames = [f"{n}" for n, p in model.named_parameters()
              if any(p is qp.param for qp in quantizer._qparams)]
    write_diffq01_variant(package, state, quantizer, models_dir / "v2demucs_q01.th")
    describe("v2demucs_q", loaded, path)
    log(f"    {len(state['quantized'])} quantised parameters ({', '.join(qnames)}), "
        f"{len(state['others'])} float32 'others', {len(state['float16'])} float16")
    log(f"    bit widths per parameter: {widths_used}")
    log(f"    load_model's model as returned: a forward {train_mode}; in eval mode with the "
        f"quantizer attached (8-bit re-quantisation) SNR {snr_db(restored, requant):.1f} dB "
        f"vs the restored weights")
    return loaded, path


def write_diffq01_variant(package, state, quantizer, path):
    """v2demucs_q01.th: the same package with its state in diffq 0.1.0's layout, the version
    demucs's 2021 `demucs_quantized` file was written with: no 'meta' entry and unpacked entries
    (levels [groups, group_size] as uint8, or int16 past 8 bits, (min, max), bits [groups, 1]
    uint8), as diffq 0.1.0's DiffQuantizer._quantize_param returns them. Its weights restore to
    exactly v2demucs_q's (the Swift test compares the two conversions)."""
    from diffq import bitpack
    qparams = [qp for qp in quantizer._qparams if qp.other is None]
    assert len(qparams) == len(state["quantized"])
    entries = []
    for qp, packed in zip(qparams, state["quantized"]):
        levels, scales, bits = quantizer._bit_unpack_param(qp, packed, bitpack.unpack)
        levels = levels.byte() if (bits <= 8).all() else levels.short()
        entries.append((levels, scales, bits[:, None].byte()))
    old_state = {"quantized": entries, "float16": state["float16"], "others": state["others"]}
    buf = io.BytesIO()
    torch.save(old_state, buf)
    variant = dict(package)
    variant["state"] = {"compressed": zlib.compress(buf.getvalue())}
    torch.save(variant, str(path))


TASNET_SMALL = dict(sources=SOURCES, N=16, L=20, B=8, H=16, P=3, X=3, R=2)


def build_small_tasnet(models_dir):
    """Bare: ConvTasNet(sources, N=16, L=20, B=8, H=16, P=3, X=3, R=2), gLN, non-causal, relu
    mask, 8 s segments (inputs here are one chunk)."""
    torch.manual_seed(2004)
    model = V2.tasnet.ConvTasNet(**TASNET_SMALL)
    finish_weights(model, 2004, model.decoder.basis_signals)
    path = save_bare(model, models_dir, "tasnet_small")
    loaded = load_bare(V2.tasnet.ConvTasNet, TASNET_SMALL, path)
    assert same_weights(model, loaded) and same_output(model, loaded), "tasnet_small"
    describe("tasnet_small", loaded, path)
    return loaded, path


def build_cln_tasnet(models_dir):
    """Packaged, unquantised: ConvTasNet(N=16, L=12, B=8, H=16, P=3, X=3, R=2, cLN, causal,
    softmax mask, segment_length=22050) with the kwargs __main__ passes (audio_channels,
    samplerate, X, segment_length, sources) plus the other sizes; training arguments of
    `python -m demucs --tasnet --X 3 --split_valid --save_model` (diffq 0, qat None)."""
    args = training_args(["--tasnet", "--X", "3", "--split_valid", "--save_model"])
    assert args.diffq == 0 and args.qat is None and args.q_min_size == 1
    torch.manual_seed(2005)
    model = V2.tasnet.ConvTasNet(audio_channels=args.audio_channels, samplerate=args.samplerate,
                                 X=args.X, segment_length=22050, sources=SOURCES, N=16, L=12,
                                 B=8, H=16, P=3, R=2, norm_type="cLN", causal=True,
                                 mask_nonlinear="softmax")
    finish_weights(model, 2005, model.decoder.basis_signals)
    path = models_dir / "tasnet_cln.th"
    V2.utils.save_model(model, None, args, path)
    loaded, lq = load_packaged(path)
    assert lq is None
    assert same_weights(model, loaded) and same_output(model, loaded), "tasnet_cln"
    describe("tasnet_cln", loaded, path)
    return loaded, path


def model_name(path):
    """The name `-n` takes after the Swift import: NAME-<hex>.th -> NAME, NAME.th -> NAME."""
    stem = path.stem
    head, sep, tail = stem.rpartition("-")
    return head if sep and all(c in "0123456789abcdef" for c in tail) else stem


# ---------------------------------------------------------------------------
# Expected outputs

def expected_case(case, model, track_name, flags, kept, expected_dir):
    overlap = float(flags[flags.index("--overlap") + 1]) if "--overlap" in flags else 0.25
    wav = load_track_v2(AUDIO / track_name, model.audio_channels, model.samplerate)
    out = separate_v2(model, wav, overlap).numpy()
    case_dir = expected_dir / case
    case_dir.mkdir()
    info = {}
    for k, stem in enumerate(model.sources):
        data = out[k]
        peak = float(np.max(np.abs(data)))
        # v2 writes source / max(1.01 * peak, 1): the identity below 1 / 1.01.
        if peak >= 0.99:
            raise SystemExit(f"{case}/{stem}: peak {peak:.4f}, v2 would rescale the stem")
        if stem not in kept:
            log(f"    {stem:6s} max|x| {peak:.4f}  (not stored)")
            continue
        flac = case_dir / f"{stem}.flac"
        bits, q_snr = write_stem_flac(flac, data, model.samplerate)
        info[stem] = {"peak": peak, "bits": bits, "snr": q_snr}
        log(f"    {stem:6s} max|x| {peak:.4f}  {bits}-bit SNR {q_snr:6.1f} dB  "
            f"{flac.stat().st_size:7d} bytes")
    entry = case_entry(case, None, track_name, flags, kept, out.shape[-1], info)
    entry["overlap"] = overlap
    return entry, out


# ---------------------------------------------------------------------------
# Debug dump

@contextlib.contextmanager
def capture_resample(captured, name):
    """Record the output of the first julius.resample_frac call (Demucs' x2 upsampling)."""
    original = JULIUS.resample_frac

    def wrapper(*args, **kwargs):
        out = original(*args, **kwargs)
        captured.setdefault(name, out.detach().clone())
        return out
    JULIUS.resample_frac = wrapper
    try:
        yield
    finally:
        JULIUS.resample_frac = original


def debug_input():
    """The first DEBUG_FRAMES of cut_a, normalised as separate.py does (by the segment's own
    mono mean / std), then rounded to float16 values so that the stored input is exact."""
    cut_a, _ = soundfile.read(str(AUDIO / "cut_a.flac"), dtype="float32", always_2d=True)
    wav = torch.from_numpy(np.ascontiguousarray(cut_a.T[:, :DEBUG_FRAMES]))
    ref = wav.mean(0)
    wav = (wav - ref.mean()) / ref.std()
    return wav.to(torch.float16).to(torch.float32)


def dump_demucs(model, wav, captured):
    hooks = []
    for i, layer in enumerate(model.encoder):
        hooks.append(layer.register_forward_hook(keep_output(captured, f"demucs.enc{i}")))
    hooks.append(model.lstm.register_forward_hook(keep_output(captured, "demucs.lstm")))
    for i, layer in enumerate(model.decoder):
        hooks.append(layer.register_forward_hook(keep_output(captured, f"demucs.dec{i}")))
    # As apply_model without split: padded to valid_length with zeros (the segment is the
    # whole track), delta // 2 on the left.
    padded = V2.utils.TensorChunk(wav).padded(model.valid_length(wav.shape[-1]))
    captured["demucs.input"] = padded
    with torch.no_grad(), capture_resample(captured, "demucs.upsampled"):
        captured["demucs.output"] = model(padded[None])[0]
    for h in hooks:
        h.remove()


def dump_tasnet(model, wav, prefix, captured):
    net = model.separator.network
    hooks = [model.encoder.register_forward_hook(keep_output(captured, f"{prefix}.encoder")),
             net[0].register_forward_hook(keep_output(captured, f"{prefix}.lnorm")),
             net[1].register_forward_hook(keep_output(captured, f"{prefix}.bottleneck")),
             net[2][0][0].register_forward_hook(keep_output(captured, f"{prefix}.block0")),
             model.separator.register_forward_hook(keep_output(captured, f"{prefix}.mask"))]
    for r, repeat in enumerate(net[2]):
        hooks.append(repeat.register_forward_hook(keep_output(captured, f"{prefix}.repeat{r}")))
    assert model.valid_length(wav.shape[-1]) == wav.shape[-1]
    captured[f"{prefix}.input"] = wav[None]
    with torch.no_grad():
        captured[f"{prefix}.output"] = model(wav[None])
    for h in hooks:
        h.remove()


def dump_layers(models, path):
    wav = debug_input()
    captured = {}
    dump_demucs(models["v2demucs_small"], wav, captured)
    dump_tasnet(models["tasnet_small"], wav, "tasnet", captured)
    dump_tasnet(models["tasnet_cln"], wav, "tasnetc", captured)
    tensors, slices = {}, {}
    for name, tensor in sorted(captured.items()):
        if name.endswith(".input"):
            # float16 values (debug_input): stored whole and exact as F16.
            assert torch.equal(tensor.to(torch.float16).to(torch.float32), tensor)
            tensors[name] = tensor.to(torch.float16).contiguous()
            continue
        length = tensor.shape[-1]
        start = max(0, (length - DEBUG_WINDOW) // 2)
        stop = min(length, start + DEBUG_WINDOW)
        slices[name] = {"dim": tensor.dim() - 1, "start": start, "stop": stop,
                        "full_shape": list(tensor.shape)}
        tensors[name] = tensor[..., start:stop].to(torch.float32).contiguous()
    write_safetensors(path, tensors, {
        "models": "demucs.*: v2demucs_small, tasnet.*: tasnet_small, tasnetc.*: tasnet_cln",
        "frames": str(DEBUG_FRAMES), "slices": json.dumps(slices, sort_keys=True),
        "torch": torch.__version__, "demucs": V2.__version__})
    for name in sorted(tensors):
        full = slices[name]["full_shape"] if name in slices else list(tensors[name].shape)
        log(f"  {name:20s} {str(list(tensors[name].shape)):16s} of {full}")


# ---------------------------------------------------------------------------
# Branch check

def branch_check(model, groups, width=44):
    """SNR of the output with one group of weights zeroed against the full output, on the
    first second of cut_a (padded to valid_length as apply_model does)."""
    x = first_second()
    with torch.no_grad():
        ref = V2.utils.apply_model(model, x, shifts=0, split=False)
    results = {}
    for label, select in groups.items():
        state = model.state_dict()
        assert any(select(k) for k in state), label
        state = {k: (torch.zeros_like(v) if select(k) else v) for k, v in state.items()}
        other = type(model)(*model._init_args_kwargs[0], **model._init_args_kwargs[1])
        other.load_state_dict(state)
        with torch.no_grad():
            out = V2.utils.apply_model(other, x, shifts=0, split=False)
        results[label] = snr_db(ref.numpy(), out.numpy())
        log(f"    without {label:{width}s} SNR {results[label]:6.1f} dB")
    return results


DEMUCS_BRANCHES = {
    "the LSTM (lstm.linear = 0)": lambda k: k.startswith("lstm.linear."),
    "the LSTM's 2nd layer (its weights = 0)": lambda k: k.startswith("lstm.lstm.") and "_l1" in k,
    "the encoder rewrites (encoder.*.2 = 0)": lambda k: re.match(r"encoder\.\d+\.2\.", k),
    "the decoder context convs (decoder.*.0 = 0)": lambda k: re.match(r"decoder\.\d+\.0\.", k),
}
TASNET_BRANCHES = {
    "TemporalBlock 0 (its weights = 0: identity)":
        lambda k: k.startswith("separator.network.2.0.0."),
    "the last TemporalBlock (weights = 0)": lambda k: k.startswith("separator.network.2.1.2."),
    "repeat 1 (weights = 0)": lambda k: k.startswith("separator.network.2.1."),
    "the input layer norm's gamma": lambda k: k == "separator.network.0.gamma",
    "the blocks' first PReLU slopes (= 0)": lambda k: re.search(r"\.\d+\.net\.1\.weight$", k),
}


# ---------------------------------------------------------------------------

def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--demucs2", type=Path, default=DEFAULT_DEMUCS2,
                        help="pip --target folder holding demucs 2.0.3 and diffq 0.2.4")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    opts = parser.parse_args()
    torch.set_num_threads(1)
    import_v2(opts.demucs2)

    out = opts.out
    models_dir, expected_dir, debug_dir = reset_dirs(out, ("models", "expected", "debug"))

    log("== models")
    models, paths = {}, {}
    for build in (build_small_demucs, build_quantized_demucs, build_small_tasnet,
                  build_cln_tasnet):
        model, path = build(models_dir)
        name = model_name(path)
        models[name], paths[name] = model, path

    log("== expected outputs (v2 separate.py, in process)")
    entries = []
    for case, name, track_name, flags, kept in CASES:
        log(f"  {case}: {name} on {track_name} {' '.join(flags)}")
        entry, _ = expected_case(case, models[name], track_name, flags, kept, expected_dir)
        entry["model"] = name
        entry["model_file"] = f"models/{paths[name].name}"
        entry["command"] = v2_command(name, track_name, flags)
        entries.append(entry)
    write_cases(expected_dir / "cases.json", entries)

    log("== debug dump (first 22050 frames of cut_a)")
    dump_layers(models, debug_dir / "v2_layers.safetensors")

    log("== branch check (first second of cut_a, normalised)")
    for name, groups in (("v2demucs_small", DEMUCS_BRANCHES), ("v2demucs_q", DEMUCS_BRANCHES),
                         ("tasnet_small", TASNET_BRANCHES), ("tasnet_cln", TASNET_BRANCHES)):
        log(f"  {name}")
        model = models[name]
        branch_check(model, {k: v for k, v in groups.items()
                             if any(v(s) for s in model.state_dict())})

    log("== full-size v2 architectures (parameter counts, built on the meta device)")
    with torch.device("meta"):
        full = {"Demucs(sources=SOURCES)": V2.model.Demucs(sources=SOURCES),
                "ConvTasNet(X=10, sources=SOURCES)": V2.tasnet.ConvTasNet(X=10, sources=SOURCES)}
    for label, model in full.items():
        log(f"  {label}: {sum(p.numel() for p in model.parameters()):,} parameters")

    total = 0
    for p in sorted(out.rglob("*")):
        if p.is_file():
            p.chmod(0o644)
            total += p.stat().st_size
            log(f"  {p.stat().st_size:9d}  {p.relative_to(out)}")
    log(f"== done: {total / 1e6:.3f} MB under {out}")


if __name__ == "__main__":
    main()
