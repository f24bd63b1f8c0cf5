#!/usr/bin/env python3
"""Build the parity fixtures for inputs only ffmpeg decodes, under Tests/Fixtures/ffmpeg/.

Run by hand with the reference environment and ffmpeg installed (apt install ffmpeg), after
tools/make_fixtures.py (it uses that script's tiny4 model):

    ~/.cache/demucs-ref/bin/python tools/make_fixtures_ffmpeg.py

What it does, in order:
  1. cuts 1 s of ../shared/test-audio/test.mp3 and encodes it with ffmpeg into the formats
     libsndfile does not read: AAC in .m4a (44.1 kHz), Opus in .webm (48 kHz, so the model's
     44.1 kHz comes from ffmpeg's resampler, as in demucs), the AAC track of an .mp4 with a
     video stream, and an .mkv with two FLAC streams (the cut, then another cut);
  2. writes tiny4 (Tests/Fixtures/models/7e1a4c02.safetensors, loaded by demucs's own
     load_safetensors_model) as a .th in a temporary repo for demucs's CLI;
  3. runs `python -m demucs.separate` on each input — demucs decodes these through ffmpeg
     itself (demucs.audio.AudioFile) — checks its stems against the in-memory model on
     demucs's own decode, and stores them as 24-bit FLAC (fixturelib.store_stems) with
     cases.json.

CI never runs this; the outputs are committed. The encodes use -bitexact and one thread, so a
rerun with the same ffmpeg gives the same bytes.
"""
import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fixturelib import (  # noqa: E402  (helpers shared by the fixture generators)
    WEIGHT_DTYPE, case_entry, finish, log, make_tmp, reset_dirs, run_cli, store_stems,
    write_cases)

from demucs.apply import apply_model  # noqa: E402
from demucs.audio import AudioFile  # noqa: E402
from demucs.hf import _decode_json, load_safetensors_model  # noqa: E402
from safetensors import safe_open  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parent.parent
FIXTURES = REPO_ROOT / "Tests" / "Fixtures"
DEFAULT_OUT = FIXTURES / "ffmpeg"
MP3 = REPO_ROOT.parent / "shared" / "test-audio" / "test.mp3"
TINY4_SIG = "7e1a4c02"

# name -> ffmpeg arguments after the inputs (input 0: the cut; input 1: another cut; input 2:
# a black 64x64 picture for the video).
ENCODES = {
    "song.m4a": ["-map", "0:a", "-c:a", "aac", "-b:a", "128k"],
    "song48k.webm": ["-map", "0:a", "-c:a", "libopus", "-b:a", "96k", "-ar", "48000"],
    "video.mp4": ["-map", "2:v", "-map", "0:a", "-c:v", "libx264", "-preset", "ultrafast",
                  "-c:a", "aac", "-b:a", "96k", "-shortest"],
    "twostreams.mkv": ["-map", "0:a", "-map", "1:a", "-c:a", "flac"],
}


def ffmpeg(args):
    cmd = ["ffmpeg", "-nostdin", "-loglevel", "error", "-y", *args]
    log("  $ " + " ".join(cmd))
    subprocess.run(cmd, check=True)


def in_process(model, track):
    """demucs.api's steps on demucs's own ffmpeg decode, with the in-memory model."""
    wav = AudioFile(track).read(streams=0, samplerate=model.samplerate,
                                channels=model.audio_channels)
    ref = wav.mean(0)
    mean, std = ref.mean(), ref.std() + 1e-8
    out = apply_model(model, ((wav - mean) / std)[None], shifts=0, split=True, overlap=0.25,
                      device="cpu")
    return (out * std + mean)[0].numpy()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="fixtures folder")
    parser.add_argument("--keep-tmp", action="store_true")
    opts = parser.parse_args()
    if shutil.which("ffmpeg") is None:
        raise SystemExit("ffmpeg is not installed: apt install ffmpeg")
    torch.set_num_threads(2)
    out = opts.out
    audio_dir, expected_dir = reset_dirs(out, ("audio", "expected"))
    tmp, th_repo, cli_out = make_tmp("demucs-ffmpeg-fixtures-")

    log("== inputs")
    cut, other = tmp / "cut.wav", tmp / "other.wav"
    ffmpeg(["-ss", "8", "-t", "1", "-i", str(MP3), "-c:a", "pcm_s16le", str(cut)])
    ffmpeg(["-ss", "3", "-t", "1", "-i", str(MP3), "-c:a", "pcm_s16le", str(other)])
    for name, args in ENCODES.items():
        ffmpeg(["-i", str(cut), "-i", str(other), "-f", "lavfi", "-i", "color=c=black:s=64x64:r=5:d=1",
                "-threads", "1", "-bitexact", "-map_metadata", "-1", *args, str(audio_dir / name)])

    log("== model")
    st_path = FIXTURES / "models" / f"{TINY4_SIG}.safetensors"
    model = load_safetensors_model(st_path)
    model.eval()
    with safe_open(str(st_path), framework="pt") as f:
        kwargs = _decode_json(json.loads(f.metadata()["kwargs"]))
    torch.save({"klass": type(model), "args": [], "kwargs": kwargs,
                "state": {k: v.to(WEIGHT_DTYPE) for k, v in model.state_dict().items()}},
               str(th_repo / f"{TINY4_SIG}.th"))
    shutil.copy(FIXTURES / "models" / "tiny4.yaml", th_repo / "tiny4.yaml")

    log("== expected outputs (demucs CLI, decoding through ffmpeg)")
    cases = []
    for name in ENCODES:
        case = "tiny4_" + name.replace(".", "_")
        track = audio_dir / name
        stem_dir, _ = run_cli(th_repo, "tiny4", track, cli_out, [])
        with torch.no_grad():
            reference = in_process(model, track)
        case_dir = expected_dir / case
        case_dir.mkdir()
        info = store_stems(case, stem_dir, case_dir, list(model.sources), reference, max_diff=1e-5)
        entry = case_entry(case, "tiny4", name, [], model.sources, reference.shape[-1], info)
        entry["input"] = f"ffmpeg/audio/{name}"
        cases.append(entry)
    write_cases(expected_dir / "cases.json", cases)
    total = finish(out, tmp, opts.keep_tmp)
    log(f"total {total:,} bytes")


if __name__ == "__main__":
    main()
