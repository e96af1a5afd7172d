"""SLM Playground: a Gradio playground for small language models, built around Microsoft's Phi family."""

from .errors import PlaygroundError
from .options import GenerationOptions
from .types import Capability, Chunk, FinishReason, Message, Metrics, ModelSpec

__version__ = "0.1.0"

__all__ = [
    "Capability",
    "Chunk",
    "FinishReason",
    "GenerationOptions",
    "Message",
    "Metrics",
    "ModelSpec",
    "PlaygroundError",
    "__version__",
]
