"""Battles: one prompt to two sides, each answer recorded in its own conversation, then one vote a round.

A tab calls `start` (or `next_round`, `regenerate`), pumps `streams(owner, round)` (two answers of the
answer pipeline, answers.py: the page folds them into one update per tick; each side is its own Stop
pane), reads `view(round)` (already anonymised in a blind round, and following what was drawn) and
calls `vote`. The CLI and the tests call `run`,
which drives both streams at once in two threads. Everything needed to repeat a call is stored: the
prompt and images (the conversations), the models and engines (the battle row), each side's system prompt
and parameters as asked (the battle's parameters) and as sent (each answer's parameters: sampling
defaults and window trimming applied, the seed included), the metrics and finish reason (each answer),
the vote and the times.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from ..answers import Answer, AnswerService, Event, Finished, Recording, Request, Started, Text
from ..conversations import ConversationService
from ..errors import HistoryError, PlaygroundError
from ..history import Battle, HistoryStore, StoredMessage, Vote
from ..images import check_size
from ..public.daily import DailyCounter
from ..types import Message, Metrics, ModelSpec
from .anonymise import RoundView, SideView, anonymise, revealed_sides
from .pairing import SIDES, Pair, Side
from .ratings import Leaderboard, leaderboard, model_key, side_key
from .style import styled_table, styled_votes

if TYPE_CHECKING:
    from ..context import AppContext


@dataclass
class SideRun:
    """One side of one round: how it was asked, and (as it streams) what came back."""

    name: str
    side: Side
    spec: ModelSpec
    conversation: str
    notice: str = ""
    prompt_tokens: int | None = None
    error: str = ""
    text: str = ""
    metrics: Metrics | None = None
    finish_reason: str | None = None

    @property
    def done(self) -> bool:
        return self.finish_reason is not None

    def take(self, event: Event) -> None:
        if isinstance(event, Text):
            self.text += event.text
        elif isinstance(event, Started):
            self.notice, self.prompt_tokens = event.notice, event.prompt_tokens
        elif isinstance(event, Finished):
            self.metrics, self.error = event.metrics, event.error
            self.finish_reason = str(event.reason)


@dataclass
class Round:
    battle: Battle
    runs: dict[str, SideRun] = field(default_factory=dict)

    @property
    def specs(self) -> dict[str, ModelSpec]:
        return {name: run.spec for name, run in self.runs.items()}


class ArenaService:
    """Runs, records and rates battles; knows nothing about Gradio."""

    def __init__(
        self,
        answers: AnswerService,
        store: HistoryStore,
        *,
        daily_votes: int | None = None,
        engine_processes: bool = True,
        on_vote: Callable[[Battle], None] | None = None,
        conversations: ConversationService | None = None,
    ) -> None:
        self.answers = answers
        self.chat = answers.chat
        self.store = store
        self.conversations = conversations or ConversationService(store)  # its image limits too
        self.daily_votes = daily_votes
        self.address_votes = DailyCounter()  # the cap per address too: a new page load is a new visitor
        self._voting = threading.Lock()
        self.engine_processes = engine_processes
        self.on_vote = on_vote  # each voted round, as recorded (arena/sync.py copies it to a dataset)

    @classmethod
    def from_context(cls, ctx: AppContext) -> ArenaService:
        """The arena of a running playground: in public mode each visitor may cast
        PLAYGROUND_ARENA_DAILY_VOTES votes a day (default 200); elsewhere there is no cap."""
        return cls(
            ctx.answers,
            ctx.history,
            daily_votes=ctx.settings.arena_daily_votes if ctx.settings.public else None,
            engine_processes=ctx.settings.engine_processes,
            on_vote=ctx.arena_sync.write if ctx.arena_sync is not None else None,
            conversations=ctx.conversations,
        )

    # Rounds

    def start(self, owner: str, pair: Pair, prompt: str, *, images: Sequence[str | Path] = ()) -> Round:
        """A new battle: both sides resolved (an unknown or unready model is refused here, before anything
        is written), the prompt recorded in both conversations, both answers prepared."""
        if not prompt.strip():
            raise HistoryError("Type a prompt for both models first.")
        specs = {
            "a": self.chat.resolve(pair.a.model, pair.a.provider),
            "b": self.chat.resolve(pair.b.model, pair.b.provider),
        }
        refs = self._store_images(images)
        battle = self.store.battles.create_battle(
            owner,
            prompt,
            specs["a"].id,
            specs["b"].id,
            engine_a=specs["a"].provider,
            engine_b=specs["b"].provider,
            parameters={"a": pair.a.to_dict(), "b": pair.b.to_dict(), "preset": pair.preset},
            images=refs,
            mode=pair.mode,
        )
        return self._prepare(owner, battle, specs)

    def next_round(
        self, owner: str, battle_id: str, prompt: str, *, images: Sequence[str | Path] = ()
    ) -> Round:
        """Another prompt in the same battle (multi-turn): both sides see their own conversation so far.
        A blind battle stays blind until its first vote; after it, the names are known."""
        if not prompt.strip():
            raise HistoryError("Type a prompt for both models first.")
        previous = self.store.battles.get_battle(owner, battle_id)
        rounds = self.store.battles.battle_rounds(owner, previous.thread)
        mode = "blind" if previous.mode == "blind" and all(r.vote is None for r in rounds) else "named"
        refs = self._store_images(images)
        battle = self.store.battles.add_round(owner, rounds[-1].id, prompt, images=refs, mode=mode)
        return self._prepare(owner, battle, self.specs(battle))

    def continues(self, owner: str, battle_id: str | None, pair: Pair) -> bool:
        """Whether "Send" goes on with the open battle (its next round, a new one after a vote): only
        when that battle runs exactly the pair's two models on the same sides (a blind pair: while the
        battle was blind). Otherwise the pair starts a battle of its own, so the page never runs a pair
        other than the one it shows."""
        if not battle_id:
            return False
        try:
            battle = self.store.battles.get_battle(owner, battle_id)
        except PlaygroundError:
            return False
        if pair.mode == "blind":
            first = self.store.battles.battle_rounds(owner, battle.thread)[0]
            return first.mode == "blind"
        try:
            ids = (self.chat.registry.resolve(pair.a.model).id, self.chat.registry.resolve(pair.b.model).id)
        except PlaygroundError:
            return False
        return ids == (battle.model_a, battle.model_b)

    def _store_images(self, images: Sequence[str | Path]) -> list[str]:
        """The images' references in the store, each refused past the size limit before it is stored."""
        for path in images:
            check_size(str(path), self.conversations.image_limits)
        return [self.store.images.store_image_file(path) for path in images]

    def regenerate(self, owner: str, battle_id: str) -> Round:
        """Ask the latest round again (its answers are dropped); refused once it has a vote."""
        battle = self.store.battles.get_battle(owner, battle_id)
        latest = self.store.battles.battle_rounds(owner, battle.thread)[-1]
        if latest.id != battle.id:
            raise HistoryError("Only the latest round can be asked again: start a new round instead.")
        if battle.vote is not None:
            raise HistoryError("This round has a vote already: start a new round to ask again.")
        for conversation in (battle.conversation_a, battle.conversation_b):
            self.conversations.forget_last_answer(owner, conversation)
        return self._prepare(owner, battle, self.specs(battle))

    def specs(self, battle: Battle) -> dict[str, ModelSpec]:
        return {
            "a": self.chat.registry.resolve(battle.model_a),
            "b": self.chat.registry.resolve(battle.model_b),
        }

    def _prepare(self, owner: str, battle: Battle, specs: Mapping[str, ModelSpec]) -> Round:
        """The round's two sides, their models loaded first: both then start streaming together, and
        neither shows its answer while the other is still loading."""
        round_ = Round(battle)
        conversations = {"a": battle.conversation_a, "b": battle.conversation_b}
        for name in SIDES:
            side = Side.from_dict(battle.parameters[name])  # type: ignore[arg-type]
            round_.runs[name] = SideRun(name, side, specs[name], conversations[name])
            self._load(specs[name])
        return round_

    def _load(self, spec: ModelSpec) -> None:
        """Load a side's model now (its answer leases it again; a failure is said by its answer)."""
        with contextlib.suppress(PlaygroundError), self.answers.registry.lease(spec):
            pass

    def streams(
        self, owner: str, round_: Round, session: str | None = None, *, logprobs: int | None = None
    ) -> dict[str, Answer]:
        """Each side's answer, recorded as it streams in its own conversation (a blind side without its
        names until the vote); drawing it updates the round's view. A side's error ends its answer (the message is in `view`), never the other
        side's; each side is its own Stop pane of `session` ("arena-a", "arena-b") and its own place in a
        provider's line, so both sides of one round stream at once. `logprobs`: both sides also give each
        token's probability and that many alternatives (the token view; kept with each answer), whatever
        the battle's parameters say."""
        return {name: self._ask(owner, round_, run, session, logprobs) for name, run in round_.runs.items()}

    def _ask(
        self, owner: str, round_: Round, run: SideRun, session: str | None, logprobs: int | None = None
    ) -> Answer:
        hidden = "" if round_.battle.mode == "blind" else None
        options = run.side.options
        if logprobs:
            options = options.model_copy(update={"logprobs": logprobs})
        messages = [Message("system", run.side.system)] if run.side.system else []
        messages += self.store.conversations.chat_messages(owner, run.conversation)
        record = Recording(
            self.store.conversations,
            owner,
            run.conversation,
            hidden,
            hidden,
            parameters={"system": run.side.system},
            refusal=True,
        )
        answer = self.answers.ask(
            Request(
                run.spec.id,
                messages,
                options,
                owner=f"{owner}/{run.name}",
                stop=None if session is None else (session, pane(run.name)),
                record=record,
            )
        )
        answer.watch(run.take)  # the round's view follows whoever draws the answer
        return answer

    def run(self, owner: str, round_: Round) -> RoundView:
        """Both answers to the end, at once (one after the other where two seeded local answers would
        share one process's random generator); the round's view."""
        streams = self.streams(owner, round_)

        def drain(name: str) -> None:
            for _ in streams[name]:
                pass

        if self.serialise(round_):
            for name in streams:
                drain(name)
        else:
            threads = [threading.Thread(target=drain, args=(n,), daemon=True) for n in streams]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        return self.view(round_)

    def serialise(self, round_: Round) -> bool:
        """Whether the two sides must run one after the other: both seeded, both local engines in this
        process (torch.manual_seed is global to a process; separate workers have separate generators)."""
        runs = list(round_.runs.values())
        return (
            not self.engine_processes
            and all(r.spec.local for r in runs)
            and all(r.side.options.seed is not None for r in runs)
        )

    # What a visitor sees

    def view(self, round_: Round) -> RoundView:
        """The round as it stands (mid-stream too), anonymised when blind and not yet voted."""
        sides = {name: _side_view(run) for name, run in round_.runs.items()}
        return _round_view(round_.battle, sides, round_.specs)

    def load(self, owner: str, battle_id: str) -> RoundView:
        """A stored round, as `view` shows it (after a reload, or in the History tab)."""
        battle = self.store.battles.get_battle(owner, battle_id)
        return self._stored_view(battle, self._answers(owner, battle))

    def _answers(self, owner: str, battle: Battle) -> dict[str, StoredMessage | None]:
        """Each side's stored answer to this round (None before it is written)."""
        return {
            name: _answer_of_round(
                self.store.conversations.get_conversation(owner, conversation).messages, battle.round
            )
            for name, conversation in (("a", battle.conversation_a), ("b", battle.conversation_b))
        }

    def _stored_view(self, battle: Battle, answers: Mapping[str, StoredMessage | None]) -> RoundView:
        specs = self.specs(battle)
        sides = {name: _stored_side(specs[name], answer) for name, answer in answers.items()}
        return _round_view(battle, sides, specs)

    def hidden_conversations(self, owner: str) -> dict[str, str]:
        """This owner's arena conversations whose names are still hidden (a blind battle not yet voted):
        conversation id -> "Model A"/"Model B", for `anonymise_summaries` in a history listing."""
        hidden: dict[str, str] = {}
        for battle in self.store.battles.list_battles(owner, limit=None):
            if battle.mode == "blind" and battle.vote is None:
                hidden[battle.conversation_a], hidden[battle.conversation_b] = "Model A", "Model B"
        return hidden

    # Votes and ratings

    def vote(self, owner: str, battle_id: str, vote: Vote | str, *, address: str | None = None) -> RoundView:
        """One vote on a finished round (a, b, tie, both_bad), within the daily cap in public mode (per
        visitor, and per `address` when given: fresh page loads do not reset it); the round's view with
        the names shown. A blind answer that names a model is flagged (not rated)."""
        with self._voting:  # the address's count is checked and taken as one step
            capped = self.daily_votes is not None and address is not None
            if capped and self.address_votes.count(str(address)) >= int(self.daily_votes or 0):
                raise HistoryError(
                    f"Your network address has cast today's {self.daily_votes} arena votes: come back "
                    "tomorrow (UTC), or keep comparing without voting."
                )
            view = self._vote(owner, battle_id, vote)
            if capped:
                self.address_votes.add(str(address))
            return view

    def _vote(self, owner: str, battle_id: str, vote: Vote | str) -> RoundView:
        battle = self.store.battles.get_battle(owner, battle_id)
        answers = self._answers(owner, battle)
        texts: dict[str, str] = {}
        for name, answer in answers.items():
            if answer is None or answer.finish_reason is None:
                raise HistoryError("Both answers must finish before the vote: wait, or press Stop.")
            texts[name] = answer.text
        revealed = revealed_sides(texts, self.specs(battle)) if battle.mode == "blind" else ""
        voted = self.store.battles.record_vote(
            owner, battle_id, vote, revealed=revealed, daily_limit=self.daily_votes
        )
        if self.on_vote is not None:
            self.on_vote(voted)
        return self._stored_view(voted, answers)  # the answers' texts and metrics are as read above

    def votes_left(self, owner: str) -> int | None:
        """Votes this visitor may still cast today (None: no cap)."""
        if self.daily_votes is None:
            return None
        return max(0, self.daily_votes - self.store.battles.votes_today(owner))

    def leaderboard(self, *, style: bool = False, rounds: int = 200, seed: int = 0) -> Leaderboard:
        """Ratings from every visitor's votes (blind answers that named their model left out); with
        `style`, the ratings with the answers' length and Markdown held equal (arena/style.py)."""
        board = leaderboard(self.store.battles.list_rated_battles(), rounds=rounds, seed=seed)
        if not style:
            return board
        voted = self.store.battles.voted_answers()
        sides, coefficients = styled_table(styled_votes(voted, side_key), rounds=rounds // 2, seed=seed)
        models, _ = styled_table(styled_votes(voted, model_key), rounds=rounds // 2, seed=seed)
        return replace(board, sides=sides, models=models, style=coefficients)


def pane(side: str) -> str:
    """An arena side's Stop pane in a session (the chat tabs' panes are their names)."""
    return f"arena-{side}"


def _side_view(run: SideRun) -> SideView:
    return SideView(
        label=run.spec.id,
        model=run.spec.id,
        engine=run.spec.engine_label,
        text=run.text,
        metrics=None if run.metrics is None else run.metrics.to_dict(),
        notice=run.notice,
        error=run.error,
        window=run.spec.context_window,
        finish_reason=run.finish_reason,
    )


def _stored_side(spec: ModelSpec, answer: StoredMessage | None) -> SideView:
    metrics = dict(answer.metrics) if answer and answer.metrics else None
    error = str(metrics.pop("error", "")) if metrics else ""
    return SideView(
        label=spec.id, model=spec.id, engine=spec.engine_label, text=answer.text if answer else "",
        metrics=metrics, error=error, window=spec.context_window,
        finish_reason=None if answer is None or answer.finish_reason is None else str(answer.finish_reason),
    )  # fmt: skip


def _round_view(battle: Battle, sides: Mapping[str, SideView], specs: Mapping[str, ModelSpec]) -> RoundView:
    """The round with these sides, anonymised when blind and not yet voted."""
    view = RoundView(
        battle.id, battle.thread, battle.round, battle.mode, battle.prompt, sides["a"], sides["b"],
        None if battle.vote is None else str(battle.vote),
    )  # fmt: skip
    return anonymise(view, specs)


def _answer_of_round(messages: Sequence[StoredMessage], round_number: int) -> StoredMessage | None:
    """The assistant message answering the round's question (the n-th user message)."""
    seen = 0
    for i, message in enumerate(messages):
        if message.role == "user":
            seen += 1
            if seen == round_number:
                following = messages[i + 1] if i + 1 < len(messages) else None
                return following if following is not None and following.role == "assistant" else None
    return None
