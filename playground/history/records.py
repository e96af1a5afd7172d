"""What the history store returns: plain frozen values, no I/O."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from ..types import FinishReason, Role


class Vote(StrEnum):
    A = "a"
    B = "b"
    TIE = "tie"
    BOTH_BAD = "both_bad"


@dataclass(frozen=True)
class StoredMessage:
    """One message of a conversation; an assistant message without a finish reason is still streaming."""

    id: str
    conversation_id: str
    seq: int
    role: Role
    text: str
    images: tuple[str, ...] = ()
    model: str = ""
    engine: str = ""
    parameters: dict[str, object] = field(default_factory=dict, compare=False, hash=False)
    metrics: dict[str, object] | None = field(default=None, compare=False, hash=False)
    finish_reason: FinishReason | None = None
    created_utc: str = ""
    updated_utc: str = ""
    experts: dict[str, object] | None = field(default=None, compare=False, hash=False)  # moe_view.pack
    tokens: list[dict[str, object]] | None = field(default=None, compare=False, hash=False)  # token view
    branch_at: int | None = None  # a branch: continued from this token of the turn's answer before it
    hidden: bool = False  # a branch the visitor switched away from: kept, not part of the conversation


@dataclass(frozen=True)
class ConversationSummary:
    """A row of the history list."""

    id: str
    owner: str
    tab: str
    title: str
    model: str
    created_utc: str
    updated_utc: str
    message_count: int = 0


@dataclass(frozen=True)
class Conversation:
    """A conversation with its messages, oldest first."""

    summary: ConversationSummary
    messages: tuple[StoredMessage, ...]

    @property
    def id(self) -> str:
        return self.summary.id

    @property
    def title(self) -> str:
        return self.summary.title


@dataclass(frozen=True)
class Battle:
    """One arena battle: the same prompt to two models, each side a conversation of its own."""

    id: str
    owner: str
    prompt: str
    model_a: str
    engine_a: str
    conversation_a: str
    model_b: str
    engine_b: str
    conversation_b: str
    parameters: dict[str, object] = field(default_factory=dict, compare=False, hash=False)
    created_utc: str = ""
    vote: Vote | None = None
    voted_utc: str | None = None
    mode: str = "named"  # or "blind": names hidden until the vote
    round: int = 1  # a battle row is one round; later rounds continue the same two conversations
    thread: str = ""  # the id of the first round (its own id for round 1)
    revealed: str = ""  # the sides ("a", "b", "ab") whose answer named their model: not rated


@dataclass(frozen=True)
class RatedBattle:
    """A voted round as the leaderboard reads it, from every visitor: sides and vote, no texts, no owner."""

    model_a: str
    engine_a: str
    model_b: str
    engine_b: str
    vote: Vote
    mode: str
    revealed: str
    voted_utc: str


@dataclass(frozen=True)
class MessageDraft:
    """A whole message to write at once (an import)."""

    role: Role
    text: str
    images: tuple[str, ...] = ()
    model: str = ""
    engine: str = ""
    parameters: dict[str, object] = field(default_factory=dict, compare=False, hash=False)
    metrics: dict[str, object] | None = field(default=None, compare=False, hash=False)
    finish_reason: FinishReason | None = None
    created_utc: str = ""
    tokens: list[dict[str, object]] | None = field(default=None, compare=False, hash=False)
    branch_at: int | None = None
    hidden: bool = False


@dataclass(frozen=True)
class ConversationDraft:
    """A whole conversation to write at once (an import)."""

    tab: str
    title: str
    model: str
    messages: tuple[MessageDraft, ...]
    created_utc: str = ""
    updated_utc: str = ""
