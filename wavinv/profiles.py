"""The benchmark's profiles: plain settings, importable without torch (the CLI's help lists them)."""

from __future__ import annotations

from typing import Any

__all__ = ["PROFILES"]

PROFILES: dict[str, dict[str, Any]] = {
    "test": {
        "description": "seconds: a tiny store, for the test suite",
        "store": {"generator": "synth100", "n": 120, "seed": 0, "path": "data/synth100-120"},
        "methods": ["prior", "knn"],
        "inputs": ["spectrogram", "waveform"],
        "targets": 3,
        "k": 2,
        "draws": 4,
        "samples": 16,
        "gallery": 1,
        "seed": 0,
        "overrides": {
            "knn": {"n_neighbors": 3, "n_components": 4},
        },
    },
    "quick": {
        "description": "~10 minutes on 2 cores: a 2,000-clip store, every method (neural ones trained 45 s)",
        "store": {"generator": "synth100", "n": 2000, "seed": 0, "path": "data/synth100-2k"},
        "methods": ["prior", "knn", "pca-lgbm", "pca-lgbm-quantile", "conv1d", "spec-cnn"],
        "inputs": ["spectrogram", "waveform"],
        "targets": 20,
        "k": 8,
        "draws": 32,
        "samples": 128,
        "gallery": 3,
        "seed": 0,
        "overrides": {
            "pca-lgbm": {"n_estimators": 50},
            "pca-lgbm-quantile": {"n_estimators": 30},
            "conv1d": {"max_epochs": 5, "max_time": 45.0},
            "spec-cnn": {"max_epochs": 5, "max_time": 45.0},
        },
    },
    "full": {
        # Issue 4's benchmark too: 200 targets, K=16 from M=256 draws, scored as `wavinv invert`
        # scores them (the 4K shortlist). Estimated ~70 min on an idle 2-core machine: store ~1 min,
        # classical fits ~12 min, neural fits 4 x (240 s + ~1 min of calibration), evaluation
        # ~20 min (7 pairs with 256 distinct draws x 200 targets x ~0.75 s).
        "description": "the committed results: 20,000 clips, every method, both inputs (about an hour on 2 cores)",
        "store": {"generator": "synth100", "n": 20000, "seed": 0, "path": "data/synth100-20k"},
        "methods": ["prior", "knn", "pca-lgbm", "pca-lgbm-quantile", "conv1d", "spec-cnn"],
        "inputs": ["spectrogram", "waveform"],
        "targets": 200,
        "k": 16,
        "draws": 256,
        "samples": 256,
        "gallery": 4,
        "seed": 0,
        "overrides": {
            "conv1d": {"max_epochs": 20, "max_time": 240.0},
            "spec-cnn": {"max_epochs": 20, "max_time": 240.0},
        },
    },
    "search": {
        # Issue 11's measurement of record: the quality of the answer with search through the
        # generator, beside the peers. 200,000 clips without waveforms (cached 64x64 features,
        # ~2.3 GB, ~10 min to build on 2 cores); the targets are re-rendered from their parameters.
        "description": "the answer with search: 200,000 clips (no waveforms), knn and sbi-npe with 6,144 renders of search, the search-only peers and the floor",
        "store": {"generator": "synth100", "n": 200000, "seed": 0, "path": "data/synth100-200k-nowave", "waveforms": False},
        "methods": ["prior", "knn", "sbi-npe"],
        "inputs": ["spectrogram"],
        "targets": 200,
        "k": 16,
        "draws": 256,
        "refine": 6144,
        "samples": 256,
        "gallery": 4,
        "seed": 0,
        # sbi-npe's epochs over 160,000 training clips: 16 (as many gradient steps as 160 over 16,000);
        # at 4 its draws were further from the targets (best of 16: 8.30 dB against 7.99)
        "overrides": {"sbi-npe": {"max_epochs": 16}},
    },
}
