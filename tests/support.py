"""Constants and helpers the tests share (fixtures are in conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from playground.settings import Settings

if TYPE_CHECKING:
    from playground.context import AppContext
    from playground.registry import Registry

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / ".test-cache"
MODELS_DIR = CACHE / "models"
QUESTION = "What is the capital of France? Answer in one sentence."


def make_settings(data_dir: Path, **extra: str) -> Settings:
    """Settings for a test: its own data folder, the shared cache of converted models."""
    env = {"PLAYGROUND_DATA_DIR": str(data_dir), "PLAYGROUND_MODELS_DIR": str(MODELS_DIR), **extra}
    return Settings.from_env(env)


def loaded(registry: Registry, ref: str) -> Any:
    """The loaded model for `ref`, for a test that drives it directly (as the app never does): leased
    only while it loads, so it stays loaded as long as the test's memory budget has room for it."""
    with registry.lease(registry.resolve(ref)) as lease:
        return lease.engine


@contextmanager
def serving(ctx: AppContext, port: int | None = None) -> Iterator[str]:
    """The real app for a context, launched as `app.py` launches it, on a loopback port; its URL."""
    with serving_app(ctx, port) as (_, url):
        yield url


@contextmanager
def serving_app(ctx: AppContext, port: int | None = None) -> Iterator[tuple[Any, str]]:
    """`serving`, with the launched Blocks (for a test that looks at the server's own state)."""
    from playground.ui.app import build_app, serve_options

    demo = build_app(ctx)
    _, url, _ = demo.launch(
        prevent_thread_lock=True, server_name="127.0.0.1", server_port=port, **serve_options(demo, ctx)
    )
    try:
        yield demo, url
    finally:
        demo.close()
