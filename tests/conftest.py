"""Shared fixtures: real components only (the embedded model, real engines), cached under .test-cache/."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

# Nothing in a test may download from a model hub.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from playground.context import AppContext
from playground.providers.local import embedded
from playground.settings import Settings
from tests.support import MODELS_DIR, make_settings, serving


@pytest.fixture(scope="session")
def embedded_hf_folder() -> Path:
    return embedded.ensure_hf_folder(MODELS_DIR)


@pytest.fixture(scope="session")
def embedded_onnx_folder(embedded_hf_folder: Path) -> Path:
    return embedded.ensure_onnx_folder(MODELS_DIR)


@pytest.fixture(scope="session")
def settings(tmp_path_factory: pytest.TempPathFactory, embedded_onnx_folder: Path) -> Settings:
    return make_settings(tmp_path_factory.mktemp("data"))


@pytest.fixture(scope="session")
def ctx(settings: Settings) -> Iterator[AppContext]:
    """One app context for the session: models load once and are shared by the tests."""
    context = AppContext.create(settings)
    yield context
    context.close()


@pytest.fixture(autouse=True)
def _gradio_temp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio"))


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict) -> dict:  # type: ignore[type-arg]
    """Debian's Chromium (make test installs it); never a browser that Playwright downloads."""
    if CHROMIUM is None:
        if os.environ.get("CI") == "true":
            pytest.fail("Chromium is missing in CI: `make test` should have installed it with apt-get.")
        pytest.skip("browser tests need Chromium: run `make test` as root, or apt-get install chromium")
    args = [
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
    ]
    return {**browser_type_launch_args, "executable_path": CHROMIUM, "args": args}


@pytest.fixture(scope="session")
def app_url(ctx: AppContext) -> Iterator[str]:
    """The real app, launched once for the session on a free loopback port."""
    with serving(ctx) as url:
        yield url


@pytest.fixture(scope="session")
def in_process(ctx: AppContext) -> Iterator[Callable[..., Any]]:
    """The engine itself, loaded in the test's own process (as PLAYGROUND_ENGINE_PROCESSES=0 does), to
    compare with what the app's worker processes produce or to reach the engine's internals."""
    from playground.providers.local.worker import load_engine

    loaded: dict[tuple[str, int | None], Any] = {}

    def get(model_id: str, threads: int | None = None) -> Any:
        if (model_id, threads) not in loaded:
            spec = ctx.registry.resolve(model_id)
            recipe = ctx.registry.providers[spec.provider].recipe(spec)  # type: ignore[attr-defined]
            loaded[model_id, threads] = load_engine(recipe, threads)
        return loaded[model_id, threads]

    yield get
    for model in loaded.values():
        model.close()


_STARTED = time.time()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Where the browser tests' screenshots went (test artifacts: CI keeps the folder)."""
    from tests.browser import ARTIFACTS

    fresh = (
        [p for p in ARTIFACTS.glob("*.png") if p.stat().st_mtime >= _STARTED] if ARTIFACTS.is_dir() else []
    )
    if fresh:
        terminalreporter.write_line(f"browser screenshots ({len(fresh)}): {ARTIFACTS}")
