#!/usr/bin/env python3
"""Build the RoFormer parity fixtures under Tests/Fixtures/roformer/ from the reference code.

Run by hand with the reference environment (docs/ROFORMER.md says how to install it), from
the repository root:

    PYTHONPATH=~/.cache/roformer-ref ~/.cache/demucs-ref/bin/python tools/make_fixtures_roformer.py

The reference is audio-separator 0.47.1's `uvr_lib_v5/roformer` (BSRoformer, MelBandRoformer);
the script checks the version it imports. What it does, in order:

  1. builds small randomly initialised models (fixed seeds, MODELS below): BS-RoFormer with the
     published 62-band split at n_fft 2048 / hop 441, one stem; BS-RoFormer with two stems, a
     linear-attention layer and its own STFT and bands; Mel-Band RoFormer, one stem, n_fft 1024 (its overlapping bands make
     the band split wide: half the bins keep the file small). Every
     weight is perturbed so that it matters (fixturelib.perturb_) and rounded to float16
     values (the models run in float32);
  2. saves each as the published ones are: NAME.ckpt (`torch.save` of the state dict, float16
     tensors) beside NAME.yaml (the MSST / UVR layout: `audio`, `model` with the constructor's
     arguments, tuples as `!!python/tuple`, `training.instruments`, `inference`), and checks
     that the .ckpt loads back into a model built from the .yaml with the same output;
  3. runs each model's `forward` on the first second of Tests/Fixtures/audio/cut_a.flac (one
     chunk, no driver: the model alone) and stores each stem as a FLAC of at least 80 dB
     against the float32 output (fixturelib.write_stem_flac); cases.json lists the cases with
     their input length, output length and per-stem SNR of the stored file;
  4. runs audio-separator's own whole-track driver (`MDXCSeparator.demix`, on an instance given
     only the attributes demix reads) over all of cut_a.flac for DEMIX_MODELS, with the .yaml's
     1 s chunks and 4 overlapping chunks, and stores its stems as NAME.demix.STEM.flac (the
     single-target model's residual stem included); cases.json lists them under "demix";
  5. writes mel_bands.json: the bins of every band of `librosa.filters.mel` (> 0, with the
     reference's two forced corners) for the mel configs of MEL_BANDS, published ones included.
"""
import json
import sys
from pathlib import Path

import numpy as np
import soundfile
import torch
import yaml
import librosa

sys.path.insert(0, str(Path(__file__).resolve().parent))
import fixturelib  # noqa: E402

import audio_separator  # noqa: E402
from importlib.metadata import version  # noqa: E402
from audio_separator.separator.uvr_lib_v5.roformer.bs_roformer import BSRoformer  # noqa: E402
from audio_separator.separator.uvr_lib_v5.roformer.mel_band_roformer import MelBandRoformer  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "Tests/Fixtures/roformer"
REFERENCE_VERSION = "0.47.1"

# The published BS-RoFormer band split (62 bands over 1025 bins).
PUBLISHED_BANDS = (2,) * 24 + (4,) * 12 + (12,) * 8 + (24,) * 8 + (48,) * 8 + (128, 129)

SMALL = dict(dim=16, depth=1, stereo=True, time_transformer_depth=1, freq_transformer_depth=1,
             dim_head=8, heads=2, attn_dropout=0.0, ff_dropout=0.0, flash_attn=True,
             mlp_expansion_factor=1)

MODELS = [
    # name, class, seed, model kwargs, instruments
    ("bs_1stem", BSRoformer, 11,
     dict(SMALL, num_stems=1, freqs_per_bands=PUBLISHED_BANDS, dim_freqs_in=1025, stft_n_fft=2048,
          stft_hop_length=441, stft_win_length=2048, stft_normalized=False, mask_estimator_depth=2),
     ["vocals", "other"]),
    ("bs_2stem_linear", BSRoformer, 12,
     dict(SMALL, num_stems=2, linear_transformer_depth=1, freqs_per_bands=(4,) * 16 + (16,) * 8 + (321,),
          dim_freqs_in=513, stft_n_fft=1024, stft_hop_length=256, stft_win_length=1024,
          stft_normalized=False, mask_estimator_depth=1),
     ["vocals", "instrumental"]),
    ("mel_1stem", MelBandRoformer, 13,
     dict(SMALL, num_stems=1, num_bands=8, dim_freqs_in=513, sample_rate=44100, stft_n_fft=1024,
          stft_hop_length=441, stft_win_length=1024, stft_normalized=False, mask_estimator_depth=2),
     ["vocals", "other"]),
]

SECONDS = 1.0

# Models whose whole-track separation by the reference's driver is stored.
DEMIX_MODELS = ["bs_2stem_linear", "mel_1stem"]

# (sample rate, n_fft, bands): the fixture's, and the published Mel-Band RoFormers' (Kim's
# vocals model and its fine-tunes: 60 bands at n_fft 2048; others use 64 or 48 kHz).
MEL_BANDS = [(44100, 1024, 8), (44100, 2048, 60), (44100, 2048, 64), (48000, 2048, 60)]


class TupleDumper(yaml.SafeDumper):
    """Writes tuples as `!!python/tuple` sequences, as the published configs have them."""


TupleDumper.add_representer(
    tuple, lambda dumper, value: dumper.represent_sequence("tag:yaml.org,2002:python/tuple", value))


def config(kwargs, instruments, num_stems):
    chunk = 44100
    # As the published configs: `target_instrument: null` for a multi-stem model (audio-separator
    # reads the key unconditionally).
    target = {"target_instrument": None if num_stems > 1 else instruments[0]}
    return {
        "audio": {"chunk_size": chunk, "dim_f": 1024, "dim_t": 1 + chunk // kwargs["stft_hop_length"],
                  "hop_length": kwargs["stft_hop_length"], "n_fft": kwargs["stft_n_fft"],
                  "num_channels": 2, "sample_rate": 44100, "min_mean_abs": 0.0},
        "model": dict(kwargs),
        "training": dict({"instruments": list(instruments), "batch_size": 1}, **target),
        "inference": {"batch_size": 1, "dim_t": 1 + chunk // kwargs["stft_hop_length"], "num_overlap": 4},
    }


def main():
    got = version("audio-separator")
    if got != REFERENCE_VERSION:
        raise SystemExit(f"audio-separator {got} imported from {audio_separator.__file__}; the reference is {REFERENCE_VERSION}")
    OUT.mkdir(parents=True, exist_ok=True)
    for old in OUT.iterdir():
        if old.suffix in (".ckpt", ".yaml", ".flac", ".json"):
            old.unlink()
    audio, rate = soundfile.read(str(ROOT / "Tests/Fixtures/audio/cut_a.flac"), dtype="float32", always_2d=True)
    assert rate == 44100 and audio.shape[1] == 2
    mix = torch.from_numpy(np.ascontiguousarray(audio[: int(SECONDS * rate)].T))[None]
    cases, demixes = [], []
    for name, cls, seed, kwargs, instruments in MODELS:
        torch.manual_seed(seed)
        model = cls(**kwargs).eval()
        fixturelib.perturb_(model, seed, lambda _m, _n, _t: False)
        fixturelib.round_weights_(model)
        state = {k: v.to(fixturelib.WEIGHT_DTYPE) if v.is_floating_point() else v
                 for k, v in model.state_dict().items()}
        torch.save(state, OUT / f"{name}.ckpt")
        cfg = config(kwargs, instruments, kwargs["num_stems"])
        (OUT / f"{name}.yaml").write_text(yaml.dump(cfg, Dumper=TupleDumper, sort_keys=False))

        # The files as a user has them: the .yaml builds the model, the .ckpt fills it.
        loaded_cfg = yaml.load((OUT / f"{name}.yaml").read_text(), Loader=yaml.FullLoader)
        again = cls(**loaded_cfg["model"]).eval()
        again.load_state_dict({k: v.float() for k, v in torch.load(OUT / f"{name}.ckpt").items()})
        with torch.no_grad():
            out = model(mix)
            out_again = again(mix)
        assert torch.equal(out, out_again), f"{name}: the saved files do not give the same output"
        stems = out.reshape(kwargs["num_stems"], 2, -1).numpy()
        entry = {"name": name, "model": f"{name}.yaml", "weights": f"{name}.ckpt", "input": "cut_a.flac",
                 "input_frames": int(mix.shape[-1]), "output_frames": int(stems.shape[-1]), "stems": {}}
        for k in range(kwargs["num_stems"]):
            stem = instruments[k]
            peak = float(np.max(np.abs(stems[k])))
            assert 0.01 < peak < 0.99, f"{name}/{stem}: peak {peak} (the stored FLAC needs |x| < 1)"
            bits, snr = fixturelib.write_stem_flac(OUT / f"{name}.{stem}.flac", stems[k], rate)
            entry["stems"][stem] = {"file": f"{name}.{stem}.flac", "bits": bits, "flac_snr_db": round(snr, 1),
                                    "peak": round(peak, 4)}
        params = sum(p.numel() for p in model.parameters())
        fixturelib.log(f"{name}: {params} parameters, {mix.shape[-1]} -> {stems.shape[-1]} frames, {entry['stems']}")
        cases.append(entry)
        if name in DEMIX_MODELS:
            demixes.append(demix_case(name, again, loaded_cfg, audio, rate))
    (OUT / "cases.json").write_text(json.dumps({"reference": f"audio-separator {REFERENCE_VERSION}",
                                                "torch": torch.__version__, "cases": cases,
                                                "demix": demixes}, indent=2) + "\n")
    bands = []
    for sr, n_fft, n_mels in MEL_BANDS:
        fb = librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels)
        fb[0][0] = 1.0
        fb[-1, -1] = 1.0
        bands.append({"sample_rate": sr, "n_fft": n_fft, "bands": n_mels,
                      "bins": [[int(i) for i in np.nonzero(row > 0)[0]] for row in fb]})
    (OUT / "mel_bands.json").write_text(json.dumps(bands) + "\n")


def reference_demix(model, cfg, mix):
    """audio-separator's own `MDXCSeparator.demix` of `mix` ([2, frames]) with `model` and its
    config: an instance given only the attributes demix reads, the config's dim_t and overlap."""
    from ml_collections import ConfigDict
    from audio_separator.separator.architectures.mdxc_separator import MDXCSeparator
    import logging

    sep = MDXCSeparator.__new__(MDXCSeparator)
    sep.logger = logging.getLogger("reference")
    sep.pitch_shift = 0
    sep.is_roformer = True
    sep.is_torch_compiled = False
    sep.model_run = model
    sep.model_data_cfgdict = ConfigDict(cfg)
    sep.segment_size = 256
    sep.override_model_segment_size = False
    sep.overlap = cfg["inference"]["num_overlap"]
    sep.batch_size = 1
    training = cfg["training"]
    sep.is_primary_stem_main_target = bool(training.get("target_instrument"))
    sep.primary_stem_name = training["instruments"][0]
    sep.secondary_stem_name = training["instruments"][1]
    with torch.no_grad():
        return sep.demix(mix=mix, override_model_segment_size=False)


def demix_case(name, model, cfg, audio, rate):
    """The reference driver's separation of the whole of cut_a.flac, stored stem by stem."""
    mix = np.ascontiguousarray(audio.T)
    sources = reference_demix(model, cfg, mix)
    entry = {"name": name, "model": f"{name}.yaml", "weights": f"{name}.ckpt", "input": "cut_a.flac",
             "frames": int(mix.shape[-1]), "stems": {}}
    for stem, wave in sources.items():
        wave = np.asarray(wave, dtype=np.float32)
        assert wave.shape == mix.shape, f"{name}/{stem}: {wave.shape}"
        bits, snr = fixturelib.write_stem_flac(OUT / f"{name}.demix.{stem}.flac", wave, rate)
        entry["stems"][stem] = {"file": f"{name}.demix.{stem}.flac", "bits": bits, "flac_snr_db": round(snr, 1)}
    fixturelib.log(f"{name} demix: {entry['stems']}")
    return entry


if __name__ == "__main__":
    main()
