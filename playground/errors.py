"""The playground's own exceptions: every one of them is safe to show to a user."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator


class PlaygroundError(Exception):
    "An error whose message is shown to the user as it is."


class ConfigError(PlaygroundError):
    "A setting is missing or invalid."


class UnknownModelError(PlaygroundError, LookupError):
    "No model has this id."


class ModelUnavailableError(PlaygroundError):
    "The model exists but cannot be used yet (not downloaded, no key, server down)."


class ModelLoadError(PlaygroundError):
    "The engine failed to load the model."


class InvalidOptionsError(PlaygroundError):
    "Generation parameters out of range or of the wrong type."


class PromptTooLongError(PlaygroundError):
    "The prompt does not fit the model's context window, even after trimming."


class ConversionError(PlaygroundError):
    "Converting a model to ONNX failed."


class DownloadError(PlaygroundError):
    "Downloading a model from the hub failed."


class ProviderError(PlaygroundError):
    "A provider or engine failed while generating."

    def __init__(self, message: str, *, provider: str = "", status: int | None = None) -> None:
        super().__init__(message)
        self.provider = provider
        self.status = status


@contextlib.contextmanager
def map_errors(
    mapping: dict[type[BaseException], type[PlaygroundError]], message: str
) -> Iterator[None]:
    """Translate foreign exceptions to ours, at one choke point (as httpx's map_exceptions)."""
    try:
        yield
    except PlaygroundError:
        raise
    except Exception as exc:
        for foreign, ours in mapping.items():
            if isinstance(exc, foreign):
                raise ours(f"{message}: {exc}") from exc
        raise
