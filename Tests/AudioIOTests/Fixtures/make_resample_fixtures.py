# Regenerates the julius reference fixtures used by ResamplerTests.swift.
# Run with the demucs reference environment (julius 0.2.8, torch, CPU):
#   ~/.cache/demucs-ref/bin/python Tests/AudioIOTests/Fixtures/make_resample_fixtures.py
# Files (raw little-endian float32, no header):
#   resample_input.f32            300 samples: a sweep plus seeded noise, peak ~0.9
#   resample_<old>_<new>.f32      julius.resample_frac(input, old, new) (default zeros=24, rolloff=0.945)
import os
import numpy as np
import torch
import julius

torch.set_num_threads(1)
here = os.path.dirname(os.path.abspath(__file__))
n = 300
t = np.arange(n, dtype=np.float64)
rng = np.random.default_rng(1234)
x = 0.5 * np.sin(0.002 * t * t) + 0.4 * rng.uniform(-1, 1, n)
x = x.astype(np.float32)
x.tofile(os.path.join(here, "resample_input.f32"))
for old, new in [(48000, 44100), (44100, 48000), (44100, 22050), (16000, 44100)]:
    y = julius.resample_frac(torch.from_numpy(x), old, new)
    y.numpy().astype("<f4").tofile(os.path.join(here, f"resample_{old}_{new}.f32"))
    print(old, new, y.shape[-1])
