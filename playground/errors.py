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


class StoppedError(PlaygroundError):
    "Stopped while waiting (for memory to load a model, or for a worker): nothing was asked of the model."

    def __init__(self, message: str = "Stopped while waiting.") -> None:
        super().__init__(message)


class InvalidOptionsError(PlaygroundError):
    "Generation parameters out of range or of the wrong type."


class InvalidImageError(InvalidOptionsError):
    "An image cannot be used: not an image, damaged, too large, too many pixels (the message says which)."


class ImagesNotSupportedError(InvalidOptionsError):
    "Images are attached but the model (on this engine or provider) cannot take them."


class PromptTooLongError(PlaygroundError):
    "The prompt does not fit the model's context window, even after trimming."


class ConversionError(PlaygroundError):
    "Converting a model to ONNX failed."


class DownloadError(PlaygroundError):
    "Downloading a model from the hub failed."


class HistoryError(PlaygroundError):
    "The conversation history could not be read or written."


class ConversationNotFoundError(HistoryError, LookupError):
    "No conversation (or battle, or message) with this id belongs to this visitor."


class InvalidIdentityError(HistoryError):
    "A visitor id that is not one this app made."


class HistoryFullError(HistoryError):
    """A visitor's history is at its quota (public mode): nothing more is saved until they delete some."""


class ImportFormatError(HistoryError):
    "A file to import is not a history export this app can read."


class ProviderError(PlaygroundError):
    "A provider or engine failed while generating."

    def __init__(self, message: str, *, provider: str = "", status: int | None = None) -> None:
        super().__init__(message)
        self.provider = provider
        self.status = status


class AuthError(ProviderError):
    "The endpoint refused the key (401, 403), or no key is set: the message names the variable."


class ModelNotFoundError(ProviderError):
    "The endpoint does not know the model or deployment (404): the message lists what it has."


class RetiredError(ProviderError):
    "The service or model was retired (410)."


class ContextOverflowError(ProviderError, PromptTooLongError):
    "The request is too large for the endpoint or the model's context (413, context length)."


class RateLimitError(ProviderError):
    "Quota or rate limit reached (429), after the bounded retries."

    def __init__(
        self, message: str, *, provider: str = "", status: int | None = 429, retry_after: float | None = None
    ) -> None:
        super().__init__(message, provider=provider, status=status)
        self.retry_after = retry_after


class ServerError(ProviderError):
    "The endpoint failed (5xx)."


class ProviderTimeoutError(ProviderError):
    "The endpoint did not connect or answer within PLAYGROUND_TIMEOUT_S."


class UnreachableError(ProviderError):
    "Nothing answers at the endpoint's address (connection refused, unknown host)."


@contextlib.contextmanager
def map_errors(mapping: dict[type[BaseException], type[PlaygroundError]], message: str) -> Iterator[None]:
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
