#!/usr/bin/env python3
"""demucs 2.0.3's `python -m demucs.separate`, with soundfile for audio I/O.

demucs 2.0.3's separate.py imports torchaudio at the top and decodes through ffmpeg; neither
works in the reference environment (torchaudio there is built for another CUDA, ffmpeg is not
installed). This runs the same steps as its main() — load_model(DIR/NAME.th), the normalisation
by the mono mix, utils.apply_model(shifts, split, overlap), the de-normalisation, the rescale of
each stem by max(1.01 * peak, 1) and the int16 / float32 choice — reading and writing files with
soundfile instead. Decoding is the one step that differs: soundfile + julius.resample_frac, as
v2's load_track fallback does (convert_audio_channels, then resample).

    PYTHONPATH=/root/.cache/demucs2 ~/.cache/demucs-ref/bin/python tools/v2_separate.py \
        --models DIR -n NAME -o OUT [--shifts 0] [--overlap 0.25] [--no-split] [--float32] TRACK...

The output goes to OUT/NAME/<track name>/<source>.wav, as v2 wrote it. tools/bench.py uses this
for the v2 architectures.
"""
import argparse
from pathlib import Path

import julius
import numpy as np
import soundfile as sf
import torch as th

import demucs
from demucs.utils import apply_model, load_model


def convert_audio_channels(wav, channels):
    """demucs 2.0.3 audio.convert_audio_channels."""
    *_, src_channels, length = wav.shape
    if src_channels == channels:
        return wav
    if channels == 1:
        return wav.mean(dim=-2, keepdim=True)
    if src_channels == 1:
        return wav.expand(*wav.shape[:-2], channels, length)
    if src_channels >= channels:
        return wav[..., :channels, :]
    raise ValueError("The audio file has less channels than requested but is not mono.")


def trust_own_checkpoints():
    """torch >= 2.6 loads with weights_only=True, which refuses v2's pickled model class; the
    files here are our own, so v2's load_model gets the old default back."""
    original = th.load

    def load(*args, **kwargs):
        kwargs.setdefault("weights_only", False)
        return original(*args, **kwargs)
    th.load = load


def main():
    parser = argparse.ArgumentParser("v2_separate")
    parser.add_argument("tracks", nargs="+", type=Path)
    parser.add_argument("-n", "--name", required=True)
    parser.add_argument("-o", "--out", type=Path, default=Path("separated"))
    parser.add_argument("--models", type=Path, required=True)
    parser.add_argument("--shifts", type=int, default=0)
    parser.add_argument("--overlap", type=float, default=0.25)
    parser.add_argument("--no-split", action="store_false", dest="split", default=True)
    parser.add_argument("--float32", action="store_true")
    args = parser.parse_args()
    assert demucs.__version__.startswith("2."), f"demucs {demucs.__version__} is not v2: set PYTHONPATH"

    trust_own_checkpoints()
    model = load_model(args.models / (args.name + ".th"))
    out = args.out / args.name
    out.mkdir(parents=True, exist_ok=True)
    for track in args.tracks:
        data, sr = sf.read(str(track), dtype="float32", always_2d=True)
        wav = convert_audio_channels(th.from_numpy(data.T.copy()), model.audio_channels)
        wav = julius.resample_frac(wav, sr, model.samplerate)
        ref = wav.mean(0)
        wav = (wav - ref.mean()) / ref.std()
        sources = apply_model(model, wav, shifts=args.shifts, split=args.split, overlap=args.overlap)
        sources = sources * ref.std() + ref.mean()
        folder = out / track.name.rsplit(".", 1)[0]
        folder.mkdir(exist_ok=True)
        for source, name in zip(sources, model.sources):
            source = source / max(1.01 * source.abs().max(), 1)
            if not args.float32:
                source = (source * 2**15).clamp_(-2**15, 2**15 - 1).short()
                sf.write(str(folder / f"{name}.wav"), source.numpy().T, model.samplerate, subtype="PCM_16")
            else:
                sf.write(str(folder / f"{name}.wav"), source.numpy().T, model.samplerate, subtype="FLOAT")


if __name__ == "__main__":
    main()
