#!/usr/bin/env python3
"""Build the checkpoint-import fixtures under Tests/Fixtures/import/ from PyTorch demucs and diffq.

Run by hand with the reference environment (plus `pip install diffq`, 0.2.4):

    ~/.cache/demucs-ref/bin/python tools/make_fixtures_import.py

It needs demucs 4.1.0's `tools/export_hf.py`, which is not installed with the wheel: pass the
unpacked sdist with `--demucs-sdist DIR` (default /tmp/dsdist/demucs-4.1.0; get it with
`pip download demucs==4.1.0 --no-deps --no-binary :all:` and unpack it).

What it writes (see Tests/Fixtures/import/README.md for the details):
  th/7e1a4c02-<sha8>.th   tiny4 (Tests/Fixtures/models/7e1a4c02.safetensors) as demucs's
                          `serialize_model(half=True)` + `save_with_checksum` write it
  th/uqwave.th            a small waveform Demucs (with a BLSTM) quantised with diffq's UniformQuantizer
  hub/                    `tinyq`: tiny4 quantised with DiffQuantizer, in the 4.1 hub layout
                          (`structure` metadata) as demucs's tools/export_hf.py writes it
  exported.json           what tools/export_hf.py makes of the two .th files (metadata, tensor hashes)
  expected/tinyq_cut_b/   demucs's CLI on audio/cut_b.flac with tinyq (the vocals stem)
  views.th                non-contiguous / offset / shared-storage tensors
  hostile/                files that must be refused
  layouts.json            parameter order of many model configurations (name, shape hashes)
  dequantized.json        hashes of the float32 weights diffq restores for the quantised models
"""
import argparse
import importlib.util
import io
import json
import shutil
import struct
import sys
import tempfile
import zipfile
from fractions import Fraction
from pathlib import Path

import numpy as np
import soundfile
import torch

from demucs.hf import load_safetensors_model
from demucs.htdemucs import HTDemucs
from demucs.hdemucs import HDemucs
from demucs.demucs import Demucs
from demucs.states import get_state, load_model, save_with_checksum

REPO_ROOT = Path(__file__).resolve().parent.parent
FIXTURES = REPO_ROOT / "Tests" / "Fixtures"
OUT = FIXTURES / "import"
TINY4 = FIXTURES / "models" / "7e1a4c02.safetensors"

sys.path.insert(0, str(Path(__file__).resolve().parent))
import fixturelib as fl  # noqa: E402  (shared with the other fixture generators)

TINYQ_SIG = "9d1f0c7a"
# Only the vocals of tinyq are kept (0.18 MB a stem); its weights are checked exactly by
# dequantized.json, the stem checks the whole path.
KEPT_STEMS = ["vocals"]
TRAINING_ARGS = {  # what OmegaConf.to_container gives: nested plain data
    "dset": {"name": "musdb", "segment": 11, "shift": 1, "samplerate": 44100, "sources": None},
    "optim": {"lr": 0.0003, "momentum": 0.9, "beta2": 0.999, "loss": "l1", "clip_grad": 0.0},
    "quant": {"diffq": None, "qat": None, "min_size": 0.2, "group_size": 8},
    "epochs": 360, "seed": 42, "weights": [1.0, 1.0, 1.0, 1.0], "misc": {"show": False, "verbose": True},
    "test": {"shifts": 1, "overlap": 0.25, "sdr": True, "metric": "loss", "nonhq": None},
    "svd": {"penalty": 0, "min_size": 0.1, "dim": 1, "niters": 2, "powm": False, "convtr": False, "bs": 1},
    "unicode": "caf\u00e9 \u266b",
}
METRICS = ({"loss": 0.123, "reco": 0.2, "sdr": 7.5}, {"sdr": 8.25, "nsdr": 8.0, "sdr_drums": float("nan")})

MICRO_KWARGS = dict(
    sources=["drums", "vocals"], audio_channels=2, channels=4, growth=2, nfft=4096, depth=2,
    t_layers=2, t_heads=2, t_hidden_scale=2.0, dconv_comp=2, dconv_depth=1, segment=Fraction(1, 1),
)
# A small waveform Demucs with a BLSTM (LSTM parameter order) for the UniformQuantizer.
WAVE_KWARGS = dict(sources=["drums", "bass"], audio_channels=2, channels=8, depth=2, lstm_layers=1,
                   dconv_depth=1, samplerate=44100, segment=4)
# The smallest waveform Demucs: four tensors.
NANO_KWARGS = dict(sources=["vocals"], audio_channels=1, channels=1, depth=1, rewrite=False, dconv_mode=0)


def log(*args):
    print(*args, flush=True)


def fnv64(data: bytes) -> str:
    h = 0xCBF29CE484222325
    for b in data:
        h ^= b
        h = (h * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return f"{h:016x}"


def package(model, state, extra=True):
    """demucs.states.serialize_model without the omegaconf import: the same dict."""
    args, kwargs = model._init_args_kwargs
    pkg = {"klass": model.__class__, "args": args, "kwargs": kwargs, "state": state}
    if extra:
        pkg["training_args"] = TRAINING_ARGS
        pkg["metrics"] = METRICS
    return pkg


def load_export_hf(sdist):
    path = Path(sdist) / "tools" / "export_hf.py"
    if not path.exists():
        raise SystemExit(f"{path} not found; pass --demucs-sdist (see the docstring)")
    spec = importlib.util.spec_from_file_location("export_hf", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def export(export_hf, th_path, sig, out_dir):
    """tools/export_hf.py's conversion and check; the json sidecar is not kept."""
    export_hf.convert_checkpoint(th_path, sig, out_dir)
    export_hf.check_conversion(th_path, sig, out_dir)
    (out_dir / f"{sig}.json").unlink()
    path = out_dir / f"{sig}.safetensors"
    normalise_header(path)
    export_hf.check_conversion(th_path, sig, out_dir)
    return path


def normalise_header(path):
    """safetensors keeps the metadata in a hash map, so its order (and the file bytes) changes
    from run to run: write the header JSON with sorted keys (the tensor bytes do not move)."""
    raw = Path(path).read_bytes()
    (size,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + size])
    ordered = {"__metadata__": dict(sorted(header.pop("__metadata__").items()))}
    ordered.update(sorted(header.items()))
    text = json.dumps(ordered, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    Path(path).write_bytes(struct.pack("<Q", len(text)) + text + raw[8 + size:])


def summary(path):
    """What a converted file holds: the metadata strings and, per tensor, dtype, shape and the
    FNV-1a 64 hash of its bytes (so the fixture need not keep a second copy of the weights)."""
    from safetensors import safe_open
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
        tensors = {k: [str(f.get_tensor(k).dtype).replace("torch.", ""), list(f.get_tensor(k).shape),
                       fnv64(f.get_tensor(k).contiguous().view(torch.uint8).numpy().tobytes()) if f.get_tensor(k).numel() else fnv64(b"")]
                   for k in f.keys()}
    return {"metadata": meta, "tensors": tensors}


def weight_hashes(model, quantized_names):
    """FNV-1a 64 of the float32 bytes: of every tensor, concatenated in sorted name order
    ("all"), and of each quantised parameter on its own."""
    state = {k: v.detach().float().contiguous().numpy().tobytes() for k, v in model.state_dict().items()}
    return {"all": fnv64(b"".join(state[k] for k in sorted(state))),
            "quantized": {k: fnv64(state[k]) for k in quantized_names}}


def quantized_names(quantizer):
    names = {id(p): n for n, p in quantizer.model.named_parameters()}
    return [names[id(qp.param)] for qp in quantizer._qparams]


def same_output(a, b, seed=5):
    x = 0.1 * torch.randn(1, 2, 44100, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        return torch.equal(a.eval()(x), b.eval()(x))


# ---------------------------------------------------------------------------
# Models

def micro_model(seed):
    torch.manual_seed(seed)
    return HTDemucs(**MICRO_KWARGS).eval()


def tiny4_th(th_dir):
    model = load_safetensors_model(TINY4).eval()
    pkg = package(model, get_state(model, None, half=True))
    save_with_checksum(pkg, th_dir / "7e1a4c02.th")
    [path] = th_dir.glob("7e1a4c02-*.th")
    assert same_output(model, load_model(str(path))), "tiny4 .th round trip"
    log(f"  {path.name}: {path.stat().st_size} bytes")
    return path


def uniform_th(th_dir, tmp, export_hf, hashes, exported):
    from diffq import UniformQuantizer
    torch.manual_seed(4343)
    model = Demucs(**WAVE_KWARGS)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn(p.shape))
    quantizer = UniformQuantizer(model, bits=6, min_size=0.001)
    qnames = quantized_names(quantizer)
    state = get_state(model, quantizer)
    quantizer.detach()
    path = th_dir / "uqwave.th"
    torch.save(package(model, state, extra=False), path)
    restored = load_model(str(path))
    exported["uqwave"] = summary(export(export_hf, path, "uqwave", tmp))
    hashes["uqwave"] = weight_hashes(restored, qnames)
    log(f"  {path.name}: {path.stat().st_size} bytes, {len(state['quantized'])} quantised parameters, "
        f"{len(state['others'])} others")


def tinyq(hub_dir, export_hf, hashes, tmp):
    """tiny4 quantised with DiffQuantizer: a few bit widths per parameter (the logits are set as
    training would have moved them), group size 8, min_size 0.002 MB (parameters of more than
    524 elements are quantised, the others kept in float32)."""
    from diffq import DiffQuantizer
    model = load_safetensors_model(TINY4).eval()
    quantizer = DiffQuantizer(model, min_size=0.002, group_size=8, float16=True)
    gen = torch.Generator().manual_seed(99)
    choices = [[3], [2, 4], [3], [4, 8], [3]]
    for index, qp in enumerate(quantizer._qparams):
        widths = torch.tensor(choices[index % len(choices)], dtype=torch.float32)
        pick = widths[torch.randint(len(widths), qp.logit.shape, generator=gen)]
        t = (pick - quantizer.min_bits) / (quantizer.max_bits - quantizer.min_bits)
        qp.logit.data[:] = torch.log(t / (1 - t))
    qnames = quantized_names(quantizer)
    state = get_state(model, quantizer)
    quantizer.detach()
    repo = tmp / "repo"
    repo.mkdir()
    th = repo / f"{TINYQ_SIG}.th"
    torch.save(package(model, state), th)
    (repo / "tinyq.yaml").write_text(f"models: ['{TINYQ_SIG}']\n")
    restored = load_model(str(th)).eval()
    st = export(export_hf, th, TINYQ_SIG, hub_dir)
    shutil.copy(repo / "tinyq.yaml", hub_dir / "tinyq.yaml")
    assert same_output(restored, load_safetensors_model(st))
    hashes["tinyq"] = weight_hashes(restored, qnames)
    log(f"  {st.name}: {st.stat().st_size} bytes, {len(state['quantized'])} quantised / "
        f"{len(state['float16'])} float16 parameters")
    return repo, th


def expected_tinyq(repo, out_dir, tmp):
    track = FIXTURES / "audio" / "cut_b.flac"
    stem_dir, cmd = fl.run_cli(repo, "tinyq", track, tmp / "sep", [])
    case_dir = out_dir / "tinyq_cut_b"
    case_dir.mkdir(parents=True)
    command = " ".join(str(c) for c in cmd[1:]).replace(str(repo), "REPO").replace(str(tmp / "sep"), "OUT")
    command = command.replace(str(REPO_ROOT) + "/", "")
    info = {"case": "tinyq_cut_b", "model": "tinyq", "input": "Tests/Fixtures/audio/cut_b.flac",
            "flags": [], "command": command, "stems": {}}
    for stem in ["drums", "bass", "other", "vocals"]:
        data, rate = soundfile.read(str(stem_dir / f"{stem}.wav"), dtype="float32", always_2d=True)
        log(f"  {stem}: peak {np.abs(data).max():.3f}")
        assert np.abs(data).max() < 1, "the float32 WAV writer would clamp"
        if stem not in KEPT_STEMS:
            continue
        bits, snr = fl.write_stem_flac(case_dir / f"{stem}.flac", data.T, rate)
        info["stems"][stem] = {"bits": bits, "flac_snr_db": round(snr, 2), "peak": round(float(np.abs(data).max()), 3)}
        log(f"  {stem}: {bits} bits, {snr:.1f} dB, {(case_dir / f'{stem}.flac').stat().st_size} bytes")
    (case_dir / "case.json").write_text(json.dumps(info, indent=1) + "\n")


# ---------------------------------------------------------------------------
# Views and hostile files

def views(out):
    base = torch.arange(24, dtype=torch.float32)
    state = {
        "transposed": base[:12].reshape(3, 4).t(),             # stride (1, 4)
        "offset": base[5:9],                                   # offset 5 in a 24-element storage
        "strided": base.reshape(4, 6)[1:, ::2],                # offset 6, stride (6, 2)
        "half_t": torch.arange(6, dtype=torch.float16).reshape(2, 3).t(),
        "long": torch.arange(-3, 3, dtype=torch.int64),
        "scalar": torch.tensor(2.5),
        "empty": torch.zeros(0, 3),
    }
    torch.manual_seed(3)
    # A module's state_dict(): an OrderedDict with a `_metadata` attribute (a BUILD opcode).
    state["state_dict"] = torch.nn.Linear(3, 2).state_dict()
    torch.save(state, out / "views.th")


def zip_with(path, root, records):
    """A zip laid out as torch.save does (stored entries) with the given records."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as z:
        for name, data in records:
            info = zipfile.ZipInfo(name if name.startswith("../") or name.startswith("/") else f"{root}/{name}",
                                   date_time=(1980, 1, 1, 0, 0, 0))
            z.writestr(info, data)


def hostile(out):
    torch.manual_seed(1)
    nano = Demucs(**NANO_KWARGS)
    out.mkdir()
    # 1. A pickle that asks for os.system (what a malicious checkpoint does to torch.load).
    evil = b"\x80\x02cos\nsystem\nq\x00X\x0b\x00\x00\x00echo pwned!q\x01\x85q\x02Rq\x03."
    zip_with(out / "os_system.th", "os_system", [("data.pkl", evil), ("version", b"3\n")])
    # 2. A pickle that calls a model class (constructing it would run its __init__).
    construct = b"\x80\x02cdemucs.htdemucs\nHTDemucs\n]\x85R."
    zip_with(out / "construct.th", "construct", [("data.pkl", construct), ("version", b"3\n")])
    # 3. A zip entry outside the archive's folder (zip slip).
    buf = io.BytesIO()
    torch.save({"w": torch.ones(2)}, buf)
    src = zipfile.ZipFile(buf)
    records = [(i.filename.split("/", 1)[1], src.read(i)) for i in src.infolist()]
    zip_with(out / "zip_slip.th", "archive", records + [("../evil", b"gotcha\n")])
    # 4. A storage shorter than the pickle says.
    buf = io.BytesIO()
    torch.save(package(nano, get_state(nano, None, half=False), extra=False), buf)
    src = zipfile.ZipFile(buf)
    records = []
    for i in src.infolist():
        data = src.read(i)
        name = i.filename.split("/", 1)[1]
        if name == "data/0":
            data = data[: len(data) - 6]
        records.append((name, data))
    zip_with(out / "truncated_storage.th", "archive", records)
    # 5. A tensor whose shape does not fit the architecture in klass / kwargs.
    state = get_state(nano, None, half=False)
    w = state["encoder.0.0.weight"]
    state["encoder.0.0.weight"] = torch.zeros(w.shape[0], w.shape[1], w.shape[2] + 1)
    torch.save(package(nano, state, extra=False), out / "shape_mismatch.th")
    # 6. The legacy (pre-1.6, non-zip) torch serialization.
    # (No tensors in it: legacy storage keys are memory addresses, which would change every run.)
    torch.save({"state": {}, "epochs": 3}, out / "legacy.th", _use_new_zipfile_serialization=False)
    # 7. A hub file whose structure names a class that is not a diffq quantizer.
    structure = {"_dict": [["__quantized", True],
                           ["meta", {"_dict": [["klass", {"_class": "os.system"}]]}]]}
    args, kwargs = micro_model(1)._init_args_kwargs
    meta = {"klass": "demucs.htdemucs.HTDemucs", "args": "[]",
            "kwargs": json.dumps(kwargs, default=lambda f: {"_type": "fraction", "numerator": f.numerator, "denominator": f.denominator}),
            "structure": json.dumps(structure)}
    fl.write_safetensors(out / "evil_class.safetensors", {"state.x": torch.zeros(1)}, meta)


# ---------------------------------------------------------------------------
# Parameter layouts

S4 = ["drums", "bass", "other", "vocals"]
LAYOUT_CONFIGS = [
    (HTDemucs, {"sources": S4}),
    (HTDemucs, {"sources": S4 + ["guitar", "piano"]}),
    (HTDemucs, {"sources": S4, "bottom_channels": 512}),
    (HTDemucs, {"sources": S4, "channels": 8, "t_cross_first": True, "t_layers": 4, "t_norm_out": False,
                "t_layer_scale": False, "dconv_mode": 3, "context_enc": 1, "context": 0, "channels_time": 16,
                "t_heads": 4}),
    (HTDemucs, {"sources": S4, "channels": 8, "rewrite": False, "t_emb": "scaled", "t_norm_in": False,
                "t_norm_in_group": True, "t_group_norm": 1, "t_max_positions": 100, "t_heads": 4}),
    (HTDemucs, {"sources": S4, "channels": 8, "multi_freqs": [0.25, 0.5], "multi_freqs_depth": 2, "t_heads": 4}),
    (HTDemucs, {"sources": S4, "channels": 8, "depth": 6, "cac": False, "growth": 2, "t_heads": 4,
                "bottom_channels": 16, "freq_emb": 0, "norm_starts": 10}),
    (HTDemucs, {"sources": S4, "channels": 8, "t_sparse_self_attn": True, "t_sparse_cross_attn": True, "t_heads": 4}),
    (HDemucs, {"sources": S4}),
    (HDemucs, {"sources": S4, "channels": 8, "hybrid": False, "depth": 5, "dconv_mode": 3, "dconv_attn": 2,
               "dconv_lstm": 3, "dconv_depth": -2, "norm_starts": 2, "cac": False}),
    (HDemucs, {"sources": S4, "channels": 8, "multi_freqs": [0.3], "multi_freqs_depth": 1, "norm_starts": 2,
               "emb_smooth": False, "freq_emb": 0}),
    (HDemucs, {"sources": S4, "channels": 8, "channels_time": 12, "context_enc": 1, "rewrite": False,
               "growth": 1.5, "hybrid_old": True, "dconv_comp": 2, "norm_starts": 10,
               "dconv_attn": 10, "dconv_lstm": 10}),
    (Demucs, {"sources": S4}),
    (Demucs, {"sources": S4, "channels": 16, "lstm_layers": 2, "glu": False, "dconv_mode": 3, "dconv_attn": 1,
              "dconv_lstm": 2, "norm_starts": 2, "depth": 4, "growth": 2.0, "context": 0}),
    (Demucs, {"sources": S4, "channels": 8, "rewrite": False, "dconv_mode": 2, "gelu": False, "depth": 3,
              "dconv_depth": 3, "norm_groups": 2}),
]


def layout_text(model):
    return "".join(f"{k}:{','.join(str(d) for d in v.shape)}\n" for k, v in model.named_parameters())


def layouts(out):
    cases = []
    micro = micro_model(1)
    tiny4 = load_safetensors_model(TINY4)
    for model in [tiny4, micro]:
        _, kwargs = model._init_args_kwargs
        cases.append((model, kwargs))
    for klass, kwargs in LAYOUT_CONFIGS:
        torch.manual_seed(0)
        cases.append((klass(**kwargs), kwargs))
    rows = []
    for model, kwargs in cases:
        assert [k for k, _ in model.named_parameters()] == [k for k in model.state_dict()], "order"
        text = layout_text(model)
        klass = f"{model.__class__.__module__}.{model.__class__.__qualname__}"
        rows.append({"klass": klass,
                     "kwargs": json.dumps(kwargs, default=lambda f: {"_type": "fraction", "numerator": f.numerator, "denominator": f.denominator}),
                     "count": text.count("\n"), "fnv64": fnv64(text.encode())})
        log(f"  {klass} {rows[-1]['count']} parameters")
    (out / "layouts.json").write_text(json.dumps(rows, indent=1) + "\n")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--demucs-sdist", default="/tmp/dsdist/demucs-4.1.0")
    args = parser.parse_args()
    export_hf = load_export_hf(args.demucs_sdist)
    if OUT.exists():
        for child in OUT.iterdir():
            if child.name != "README.md":
                shutil.rmtree(child) if child.is_dir() else child.unlink()
    OUT.mkdir(exist_ok=True)
    th_dir, hub_dir = OUT / "th", OUT / "hub"
    th_dir.mkdir()
    hub_dir.mkdir()
    hashes, exported = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        log("tiny4 as .th")
        tiny4_path = tiny4_th(th_dir)
        # Its tensors are compared with models/7e1a4c02.safetensors; keep the metadata only.
        exported["7e1a4c02"] = {"metadata": summary(export(export_hf, tiny4_path, "7e1a4c02", tmp))["metadata"]}
        log("small Demucs, UniformQuantizer")
        uniform_th(th_dir, tmp, export_hf, hashes, exported)
        log("tinyq (DiffQuantizer)")
        repo, _ = tinyq(hub_dir, export_hf, hashes, tmp)
        log("expected stems of tinyq")
        expected_tinyq(repo, OUT / "expected", tmp)
        log("views, hostile files, layouts")
        views(OUT)
        hostile(OUT / "hostile")
        layouts(OUT)
    (OUT / "dequantized.json").write_text(json.dumps(hashes, indent=0, sort_keys=True) + "\n")
    (OUT / "exported.json").write_text(json.dumps(exported, indent=0, sort_keys=True) + "\n")
    for f in OUT.rglob("*"):
        if f.is_file():
            f.chmod(0o644)
    total = sum(f.stat().st_size for f in OUT.rglob("*") if f.is_file())
    log(f"total {total} bytes")


if __name__ == "__main__":
    main()
