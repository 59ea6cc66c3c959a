"""Where the repository keeps what the code reads by default: one home for every repo-relative path."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MODELS_DIR = REPO / "models"  # shipped models, one folder per version, and the CURRENT pointer
DATASETS = REPO / "datasets"
SAMPLE_CONFIG = DATASETS / "sample-city.yaml"  # the embedded default city
SAMPLE_FOOTAGE = DATASETS / "samples" / "footage"
SCENARIOS_DIR = DATASETS / "scenarios"
STREETS_SPLIT = DATASETS / "streets-in-split.yaml"  # streets-in images excluded from training or held out
SHARED = REPO.parent / "shared"  # the shared data and starting weights, beside the checkout
SHARED_DATA = SHARED / "data"
SAMPLES_DIR = REPO / "var" / "samples"  # reviewed samples, one folder per dataset version (v0001, v0002, ...)
