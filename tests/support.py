"""Constants and helpers the tests share (fixtures are in conftest.py)."""

from __future__ import annotations

from pathlib import Path

from playground.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / ".test-cache"
MODELS_DIR = CACHE / "models"
QUESTION = "What is the capital of France? Answer in one sentence."


def make_settings(data_dir: Path, **extra: str) -> Settings:
    """Settings for a test: its own data folder, the shared cache of converted models."""
    env = {"PLAYGROUND_DATA_DIR": str(data_dir), "PLAYGROUND_MODELS_DIR": str(MODELS_DIR), **extra}
    return Settings.from_env(env)
