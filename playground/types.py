"""Plain values passed between providers, services and the UI. No I/O here."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any, Literal

Role = Literal["system", "user", "assistant"]


class FinishReason(StrEnum):
    STOP = "stop"
    LENGTH = "length"
    CANCELLED = "cancelled"
    INTERRUPTED = "interrupted"
    ERROR = "error"


class Capability(StrEnum):
    CHAT = "chat"
    VISION = "vision"
    MOE = "moe"


class Sdk(StrEnum):
    """The library a script uses to repeat a call to a model (Get code)."""

    ONNXRUNTIME_GENAI = "onnxruntime-genai"
    TRANSFORMERS = "transformers"
    OPENAI = "openai"
    AZURE_AI_INFERENCE = "azure-ai-inference"


@dataclass(frozen=True)
class Message:
    role: Role
    content: str
    images: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, str]:
        """The text-only chat form. A message with images has none: it raises rather than drop them
        (text-only paths must never lose an image silently); see `parts` and `to_record`."""
        if self.images:
            from .errors import ImagesNotSupportedError

            raise ImagesNotSupportedError(
                f"This {self.role} message carries {len(self.images)} image(s) and this path is text-only: "
                "pick a vision model, or remove the images."
            )
        return {"role": self.role, "content": self.content}

    def parts(self) -> list[dict[str, str]]:
        """The content as typed parts (images first, then the text), as multimodal chat templates take it."""
        parts = [{"type": "image"} for _ in self.images]
        return [*parts, {"type": "text", "text": self.content}] if self.content or not parts else parts

    def to_record(self) -> dict[str, object]:
        """role, content and (when there are any) how many images: for showing a request, never sending it."""
        data: dict[str, object] = {"role": self.role, "content": self.content}
        if self.images:
            data["images"] = len(self.images)
        return data


@dataclass(frozen=True)
class Metrics:
    """Usage and timings of one answer, as the final chunk of a stream carries them."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    ttft_s: float | None = None
    tokens_per_s: float | None = None
    total_s: float = 0.0
    finish_reason: FinishReason = FinishReason.STOP
    estimated: bool = False
    note: str = ""  # why an answer ended early, in words (an engine process that died, for one)
    checked: str = ""  # the answer against the response format it was held to, in words (structured.py)

    def to_dict(self) -> dict[str, object]:
        data = asdict(self)
        data["finish_reason"] = str(self.finish_reason)
        return data


@dataclass(frozen=True)
class LayerRoute:
    """Where one token went in one mixture-of-experts layer: the chosen experts, best first.

    weights: what the model multiplied each expert's output by (Phi-MoE's sparsemixer can give
    exactly 1.0); probs: the softmax of the router's scores over all experts, taken at the chosen ones.
    """

    experts: tuple[int, ...]
    weights: tuple[float, ...]
    probs: tuple[float, ...]

    def to_dict(self) -> dict[str, object]:
        return {"experts": list(self.experts), "weights": list(self.weights), "probs": list(self.probs)}


@dataclass(frozen=True)
class ExpertRecord:
    """The routing of one generated token of a mixture-of-experts model, one entry per layer.

    The experts are those of the forward step that produced the token (the prompt's last position for
    the first token, the previous token's step after that): what computed it, not a second pass.
    """

    index: int  # 0 for the answer's first token
    token_id: int
    token: str  # the token's own text, special tokens included
    num_experts: int
    layers: tuple[LayerRoute, ...]

    def to_dict(self) -> dict[str, object]:
        return {
            "index": self.index,
            "token_id": self.token_id,
            "token": self.token,
            "num_experts": self.num_experts,
            "layers": [layer.to_dict() for layer in self.layers],
        }


@dataclass(frozen=True)
class TokenChoice:
    """One token of a distribution: its text, its id (None where a remote server gives none) and its
    log-probability (None: the sampling settings cut it off, so it could not have been drawn)."""

    text: str
    id: int | None
    logprob: float | None

    def to_dict(self) -> dict[str, object]:
        return {"text": self.text, "id": self.id, "logprob": self.logprob}


@dataclass(frozen=True)
class TokenRecord:
    """One generated token with the distribution it was drawn from (after the temperature, penalties,
    top-k and top-p the engine applied): its own log-probability, the top alternatives (best first, up
    to the number asked for) and the distribution's entropy in nats (None where it is not known)."""

    index: int  # 0 for the answer's first token
    text: str
    id: int | None
    logprob: float | None
    top: tuple[TokenChoice, ...] = ()
    entropy: float | None = None
    forced: bool = False  # put there by the visitor (a branch's first token), not drawn by the engine

    def to_dict(self) -> dict[str, object]:
        data: dict[str, object] = {
            "text": self.text,
            "id": self.id,
            "logprob": self.logprob,
            "top": [choice.to_dict() for choice in self.top],
            "entropy": self.entropy,
        }
        if self.forced:
            data["forced"] = True
        return data

    @classmethod
    def from_dict(cls, index: int, data: dict[str, Any]) -> TokenRecord:
        top = tuple(
            TokenChoice(str(t.get("text", "")), _int_or_none(t.get("id")), _float_or_none(t.get("logprob")))
            for t in data.get("top") or ()
            if isinstance(t, dict)
        )
        return cls(
            index,
            str(data.get("text", "")),
            _int_or_none(data.get("id")),
            _float_or_none(data.get("logprob")),
            top,
            _float_or_none(data.get("entropy")),
            data.get("forced") is True,
        )


def _int_or_none(value: object) -> int | None:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _float_or_none(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


@dataclass(frozen=True)
class Chunk:
    """One piece of a stream: a text delta, a per-token record (expert routing, token probabilities),
    or (last) the metrics.

    An expert record travels in a chunk of its own (text ""); a token record with its token's text, or
    alone; a record never adds to the text.
    """

    text: str = ""
    metrics: Metrics | None = None
    experts: ExpertRecord | None = None
    tokens: TokenRecord | None = None


@dataclass(frozen=True)
class Finish:
    """What an engine reports when its generation ends; the timer turns it into Metrics."""

    prompt_tokens: int
    completion_tokens: int
    finish_reason: FinishReason
    estimated: bool = False
    note: str = ""  # why it ended early, in words (a remote stream that timed out, say)


@dataclass(frozen=True)
class Availability:
    available: bool
    reason: str = ""
    needs_key: bool = False

    @classmethod
    def ok(cls) -> Availability:
        return cls(True, "")

    @classmethod
    def no(cls, reason: str, *, needs_key: bool = False) -> Availability:
        """Unavailable, with the reason in words a user can act on; needs_key: a key would fix it."""
        return cls(False, reason, needs_key)


@dataclass(frozen=True)
class ModelSpec:
    """One model as one provider or engine serves it."""

    id: str
    name: str
    provider: str
    family: str = ""
    capabilities: frozenset[Capability] = frozenset({Capability.CHAT})
    context_window: int = 4096
    source: str = ""
    params_total: str = ""
    params_active: str = ""
    size_bytes: int = 0
    # What the model is and can do beyond its capabilities, as its provider declares it (callers read
    # these, never the provider's name):
    local: bool = False  # runs on this machine: counts against the memory budget, its files are here
    sdk: Sdk = Sdk.OPENAI  # what repeats a call to it
    takes_num_crops: bool = False  # reads `num_crops` (Phi-3/3.5-vision on transformers)
    records_experts: bool = False  # streams each token's expert routing (an MoE model on transformers)
    gives_logprobs: bool = False  # can stream each token's probability and alternatives (token view)
    continues_answer: bool = False  # can continue an answer from given tokens (a branch from a token)
    max_workers: int = 1  # worker processes its answers may run in at once (local models)
    extra: dict[str, object] = field(default_factory=dict, compare=False, hash=False)

    @property
    def engine_label(self) -> str:
        return ENGINE_LABELS.get(self.provider, self.provider)


ENGINE_LABELS = {
    "onnx": "ONNX Runtime GenAI",
    "transformers": "transformers",
    "openai-compatible": "OpenAI-compatible",
    "nvidia": "NVIDIA NIM",
    "azure-openai": "Azure OpenAI",
    "azure-ai": "Azure AI Foundry",
    "ollama": "Ollama",
    "github": "GitHub Models",
}
