"""Branch from a token: an answer regenerated from one of its tokens, with another token put in its place.

The answer's tokens before that point are kept, the chosen alternative is forced at it, and the engine
continues after them (`GenerationOptions.answer_prefix`: the prompt, then the given tokens, as if the
engine had drawn them; no rewinding of a live generator, so nothing is held between answers). The
branch's token view keeps the earlier tokens' records, and the forced token's shows the distribution it
was picked from (its record is marked `forced`). The answer pipeline (answers.py) runs a branch like any
answer; the history keeps it right after the answer it branched from (`branch_at`: the forced token),
the turn's other answers hidden.

Pure values: nothing here runs a model or touches the history.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from .errors import InvalidOptionsError
from .options import GenerationOptions
from .types import ExpertRecord, ModelSpec, TokenRecord


@dataclass(frozen=True)
class Branch:
    """Where an answer is continued from: its first tokens' records, the forced one last (`at` is its
    index), and, for a mixture-of-experts answer, their expert records (the same steps computed them)."""

    tokens: tuple[TokenRecord, ...]
    experts: tuple[ExpertRecord, ...] = ()

    @property
    def at(self) -> int:
        return len(self.tokens) - 1

    @property
    def ids(self) -> tuple[int, ...]:
        return tuple(int(t.id) for t in self.tokens if t.id is not None)


def branch_from(
    records: Sequence[TokenRecord | Mapping[str, Any]],
    at: int,
    token_id: int,
    experts: Sequence[ExpertRecord] = (),
) -> Branch:
    """The branch of an answer (its token view's records) at token `at` (0 for the first), with the
    alternative `token_id` forced there. It must be one of that token's alternatives, and every token
    before it must have its id (a server that gives only texts cannot be continued token by token)."""
    if not all(isinstance(r, TokenRecord | Mapping) for r in records):
        raise InvalidOptionsError(
            'An answer\'s tokens are records ({"text", "id", "top", ...}), one per token.'
        )
    tokens = [
        r if isinstance(r, TokenRecord) else TokenRecord.from_dict(n, dict(r)) for n, r in enumerate(records)
    ]
    if not 0 <= at < len(tokens):
        raise InvalidOptionsError(
            f"There is no token {at + 1} in this answer's token view (it has {len(tokens)}): pick a token "
            "of the answer on screen."
        )
    if any(t.id is None or t.id < 0 for t in tokens[: at + 1]):
        raise InvalidOptionsError(
            "This answer's tokens have no ids (its server reports only their texts), so it cannot be "
            "continued from a token: branch from an answer of a local model."
        )
    picked = tokens[at]
    choice = next((c for c in picked.top if c.id == token_id), None)
    if choice is None:
        raise InvalidOptionsError(
            f"Token {at + 1} has no alternative with id {token_id}: pick one of the alternatives its token "
            "view shows."
        )
    forced = replace(picked, text=choice.text, id=choice.id, logprob=choice.logprob, forced=True)
    prefix = tuple(replace(t, index=n) for n, t in enumerate(tokens[:at]))
    return Branch((*prefix, forced), tuple(e for e in experts if e.index <= at))


def branch_options(spec: ModelSpec, options: GenerationOptions, branch: Branch) -> GenerationOptions:
    """The options that continue `branch` on `spec`; refused, in words, where the model cannot."""
    if not spec.continues_answer:
        raise InvalidOptionsError(
            f"{spec.engine_label} cannot continue an answer from a chosen token: branching works on local "
            "models (ONNX Runtime GenAI and transformers)."
        )
    if options.response_format is not None:
        raise InvalidOptionsError(
            "A branch continues free text: set Response format to Text, then pick the alternative again."
        )
    return options.model_copy(update={"answer_prefix": branch.ids})


def check_given(ids: Sequence[int], vocabulary: int | None, model: str) -> None:
    """The engines' check of a branch's given tokens: each must be one of the model's (`vocabulary`:
    how many it has; None: not known, nothing checked). Ids from another model or made up are refused
    in words, never fed to the engine (one would fail on it, the other decode nothing)."""
    if vocabulary is None:
        return
    wrong = next((i for i in ids if not 0 <= i < vocabulary), None)
    if wrong is not None:
        raise InvalidOptionsError(
            f"Token id {wrong} is not one of {model}'s ({vocabulary:,} tokens, 0 to {vocabulary - 1:,}): a "
            "branch continues an answer of this model, with the ids its token view gave."
        )
