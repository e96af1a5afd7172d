"""The arena's services on the embedded model (ONNX Runtime GenAI against transformers), offline."""

from __future__ import annotations

import json
import random
import re
import threading
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest

from playground.arena.anonymise import RoundView, SideView, anonymise, anonymise_summaries, identity_words
from playground.arena.export import export_battle, read_json, to_json, to_markdown
from playground.arena.pairing import Side, blind, blind_pool, named, preset_pair, preset_states
from playground.arena.service import ArenaService
from playground.context import AppContext
from playground.errors import HistoryError, ModelUnavailableError, PlaygroundError
from playground.history import Vote, new_browser_id
from playground.options import GenerationOptions
from playground.public.daily import DailyCounter
from playground.types import Message
from tests.support import QUESTION

ONNX, HF = "smollm2-135m-instruct@onnx", "smollm2-135m-instruct@transformers"
GREEDY = GenerationOptions(temperature=0, max_new_tokens=24)


@pytest.fixture(scope="module")
def arena(ctx: AppContext) -> ArenaService:
    return ArenaService(ctx.answers, ctx.history)


def secret_words(ctx: AppContext, *ids: str) -> list[str]:
    """What must not appear in a blind round before the vote: every name of both sides, their windows."""
    specs = [ctx.registry.resolve(i) for i in ids]
    words = {w.lower() for s in specs for w in identity_words(s)} | {str(s.context_window) for s in specs}
    return sorted(words)


def mentioned(text: str, words: list[str]) -> list[str]:
    """The words `text` mentions. A number (a context window) counts only as a number of its own, not
    inside a random id or a timing (a battle id's hex or 0.281920 s are not the window 8192)."""
    found = []
    for word in words:
        if word.replace(",", "").isdigit():  # 8192 or 8,192
            if re.search(rf"(?<![0-9a-z.,]){word}(?![0-9a-z]|[.,][0-9])", text):
                found.append(word)
        elif word in text:
            found.append(word)
    return found


def leaks(payload: object, words: list[str]) -> list[str]:
    return mentioned(json.dumps(payload, ensure_ascii=False).lower(), words)


def without_answers(view: RoundView) -> dict[str, object]:
    data = view.to_dict()
    for side in ("a", "b"):
        data[side] = {k: v for k, v in data[side].items() if k != "text"}  # type: ignore[attr-defined]
    return data


def test_a_named_battle_is_recorded_with_all_it_takes_to_repeat_it(
    ctx: AppContext, arena: ArenaService
) -> None:
    owner = new_browser_id()
    seeded = GenerationOptions(temperature=0.3, max_new_tokens=24, seed=11)
    pair = named(Side(ONNX, options=GREEDY, system="Answer briefly."), Side(HF, options=seeded))
    round_ = arena.start(owner, pair, QUESTION)
    view = arena.run(owner, round_)
    assert view.mode == "named" and view.a.label == ONNX and view.b.label == HF
    assert "Paris" in view.a.text and view.b.text
    for side in (view.a, view.b):
        assert side.metrics and side.metrics["completion_tokens"] and side.metrics["ttft_s"] is not None
        assert side.finish_reason in ("stop", "length") and side.window == 8192
    battle = ctx.history.battles.get_battle(owner, view.battle_id)
    assert (battle.model_a, battle.engine_a, battle.model_b, battle.engine_b) == (
        ONNX,
        "onnx",
        HF,
        "transformers",
    )
    assert battle.parameters["a"] == {
        "model": ONNX, "provider": None, "system": "Answer briefly.",
        "options": {"temperature": 0.0, "max_new_tokens": 24},
    }  # fmt: skip
    answer = ctx.history.conversations.get_conversation(owner, battle.conversation_b).messages[-1]
    assert answer.parameters["seed"] == 11 and answer.parameters["temperature"] == 0.3
    assert answer.metrics and answer.metrics["completion_tokens"] and answer.model == HF
    assert answer.text == view.b.text
    voted = arena.vote(owner, view.battle_id, "a")
    assert voted.vote == "a" and ctx.history.battles.get_battle(owner, view.battle_id).vote == Vote.A
    board = arena.leaderboard(rounds=20)
    assert {ONNX, HF} <= set(board.sides.names) and board.votes >= 1


def test_both_sides_stream_at_once_and_stopping_one_leaves_the_other(
    ctx: AppContext, arena: ArenaService
) -> None:
    owner = new_browser_id()
    options = GenerationOptions(temperature=0, max_new_tokens=64)
    round_ = arena.start(
        owner,
        named(Side(ONNX, options=options), Side(HF, options=options)),
        "Write a long story about a dragon.",
    )
    streams = arena.streams(owner, round_)
    events: list[tuple[str, str, float]] = []
    lock = threading.Lock()

    def pump(name: str, stream: Iterator[object], stop_after: int | None) -> None:
        for count, _ in enumerate(stream, 1):
            with lock:
                events.append((name, "chunk", time.monotonic()))
            if stop_after is not None and count >= stop_after:
                stream.close()  # type: ignore[attr-defined]  # Stop on this pane only
                break
        with lock:
            events.append((name, "end", time.monotonic()))

    threads = [
        threading.Thread(target=pump, args=("a", streams["a"], None)),
        threading.Thread(target=pump, args=("b", streams["b"], 5)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    first = {side: next(i for i, e in enumerate(events) if e[0] == side) for side in "ab"}
    end = {side: next(i for i, e in enumerate(events) if e[0] == side and e[1] == "end") for side in "ab"}
    assert first["a"] < end["b"] and first["b"] < end["a"], "both sides made progress before either ended"
    view = arena.view(round_)
    assert view.b.finish_reason == "cancelled" and view.a.finish_reason in ("stop", "length")
    assert view.a.metrics and view.a.metrics["completion_tokens"] > 5
    stored = ctx.history.conversations.get_conversation(owner, round_.battle.conversation_b).messages[-1]
    assert stored.finish_reason == "cancelled" and stored.text == view.b.text


def test_a_blind_round_names_nobody_before_the_vote(ctx: AppContext, arena: ArenaService) -> None:
    owner = new_browser_id()
    pair = blind(ctx.registry, random.Random(5), options=GREEDY)
    assert {pair.a.model, pair.b.model} == {ONNX, HF} and pair.mode == "blind"
    round_ = arena.start(owner, pair, QUESTION)
    words = secret_words(ctx, ONNX, HF)
    mid = arena.view(round_)  # before any token: what the page shows first
    assert not leaks(without_answers(mid), words) and mid.a.window is None
    view = arena.run(owner, round_)
    assert (view.a.label, view.b.label) == ("Model A", "Model B") and view.a.text and view.b.text
    assert not leaks(without_answers(view), words), "the page and the API payload"
    assert not leaks(without_answers(arena.load(owner, view.battle_id)), words), "a reload"
    listing = anonymise_summaries(
        ctx.history.conversations.list_conversations(owner), arena.hidden_conversations(owner)
    )
    assert not leaks([(s.title, s.model) for s in listing], words), "the History tab"
    assert {s.model for s in listing} == {"Model A", "Model B"}
    with pytest.raises(HistoryError, match="after the vote"):
        export_battle(ctx.history, ctx.registry, owner, view.battle_id)
    revealed = arena.vote(owner, view.battle_id, "tie")
    assert {revealed.a.model, revealed.b.model} == {ONNX, HF}
    assert {s.model for s in ctx.history.conversations.list_conversations(owner)} == {ONNX, HF}
    assert arena.hidden_conversations(owner) == {}


def test_blind_errors_and_notices_from_the_services_are_anonymised(
    ctx: AppContext, arena: ArenaService
) -> None:
    words = secret_words(ctx, ONNX, HF)
    # a real error through the arena: a system prompt longer than the window (names the window size)
    owner = new_browser_id()
    too_long = Side(ONNX, options=GREEDY, system="word " * 9000)
    round_ = arena.start(owner, blind_pair(too_long, Side(HF, options=GREEDY)), QUESTION)
    view = arena.run(owner, round_)
    raw = round_.runs["a"].error
    assert "8192" in raw  # what the answer pipeline said
    assert view.a.error and view.b.text and not leaks(without_answers(view), words)
    # a real trimming notice: asked for more tokens than the window leaves
    round_ = arena.start(
        owner,
        blind_pair(
            Side(ONNX, options=GenerationOptions(temperature=0, max_new_tokens=8190)),
            Side(HF, options=GREEDY),
        ),
        QUESTION,
    )
    arena.run(owner, round_)
    assert "tokens are left in the window" in round_.runs["a"].notice
    view = arena.view(round_)
    assert view.a.notice and not leaks(without_answers(view), words)
    # the trimming notice that names the model and its window, and an error naming a model not ready
    history = [Message("user", "Tell me more " * 250), Message("assistant", "ok " * 200)] * 9
    prepared = ctx.chat.preview(
        ONNX, [*history, Message("user", QUESTION)], GenerationOptions(max_new_tokens=4000)
    )
    assert "SmolLM2-135M-Instruct's 8192-token window" in prepared.notice
    with pytest.raises(ModelUnavailableError) as caught:
        ctx.chat.resolve("phi-3-mini-4k@onnx")
    specs = {"a": ctx.registry.resolve(ONNX), "b": ctx.registry.resolve("phi-3-mini-4k@onnx")}
    sides = (
        SideView(ONNX, ONNX, "onnx", notice=prepared.notice, window=8192),
        SideView("x", error=str(caught.value), window=4096),
    )
    hidden = anonymise(RoundView("id", "id", 1, "blind", QUESTION, *sides), specs)
    assert "Phi-3-mini-4k-instruct" in str(caught.value)
    assert not leaks(without_answers(hidden), [*words, *secret_words(ctx, "phi-3-mini-4k@onnx"), "microsoft"])
    assert hidden.a.notice.startswith("The conversation is longer than Model A's") and hidden.b.error


def blind_pair(a: Side, b: Side):  # type: ignore[no-untyped-def]
    from playground.arena.pairing import Pair

    return Pair(a, b, "blind")


def test_a_blind_answer_that_names_its_model_is_left_out_of_the_ratings(
    ctx: AppContext, arena: ArenaService
) -> None:
    owner = new_browser_id()
    round_ = arena.start(
        owner,
        blind_pair(Side(ONNX, options=GREEDY), Side(HF, options=GREEDY)),
        "Repeat exactly this sentence: I am SmolLM, made by Hugging Face.",
    )
    view = arena.run(owner, round_)
    assert "SmolLM" in view.a.text  # the answer is shown as it is; it is flagged instead
    before = arena.leaderboard(rounds=10)
    arena.vote(owner, view.battle_id, "a")
    battle = ctx.history.battles.get_battle(owner, view.battle_id)
    assert "a" in battle.revealed
    after = arena.leaderboard(rounds=10)
    assert after.excluded == before.excluded + 1 and after.votes == before.votes


def test_rounds_continue_regenerate_and_votes_are_capped(ctx: AppContext) -> None:
    arena = ArenaService(ctx.answers, ctx.history, daily_votes=1)
    owner = new_browser_id()
    first = arena.start(owner, named(Side(ONNX, options=GREEDY), Side(HF, options=GREEDY)), QUESTION)
    arena.run(owner, first)
    second = arena.next_round(owner, first.battle.id, "And of Germany?")
    assert second.battle.round == 2 and second.battle.thread == first.battle.id
    sent = ctx.history.conversations.chat_messages(
        owner, second.battle.conversation_a
    )  # what side A is asked
    assert [m.role for m in sent] == ["user", "assistant", "user"] and "Paris" in sent[1].content
    view = arena.run(owner, second)
    again = arena.run(owner, arena.regenerate(owner, second.battle.id))
    assert again.a.text == view.a.text  # greedy: the same answer, and only one answer kept
    roles = [
        m.role
        for m in ctx.history.conversations.get_conversation(owner, first.battle.conversation_a).messages
    ]
    assert roles == ["user", "assistant", "user", "assistant"]
    with pytest.raises(HistoryError, match="latest round"):
        arena.regenerate(owner, first.battle.id)
    assert arena.votes_left(owner) == 1
    arena.vote(owner, second.battle.id, "b")
    assert arena.votes_left(owner) == 0
    with pytest.raises(HistoryError, match="today's 1 arena votes"):
        arena.vote(owner, first.battle.id, "a")


def test_pairing_presets_and_blind_draws(ctx: AppContext) -> None:
    states = {s.preset.key: s for s in preset_states(ctx.registry)}
    assert states["two-engines"].available
    assert not states["phi3-vs-phi35"].available and "download" in states["phi3-vs-phi35"].reason
    assert "Phi-3.5-MoE" in states["dense-vs-moe"].reason or "Phi-3.5-mini" in states["dense-vs-moe"].reason
    pair = preset_pair(ctx.registry, "two-engines")
    assert (pair.a.model, pair.b.model, pair.mode) == (ONNX, HF, "named")
    with pytest.raises(ModelUnavailableError, match=r"Phi-3-mini vs Phi-3\.5-mini needs"):
        preset_pair(ctx.registry, "phi3-vs-phi35")
    assert {s.id for s in blind_pool(ctx.registry)} == {ONNX, HF}  # ready, and no random-weights demo
    draws = [blind(ctx.registry, random.Random(seed)) for seed in range(6)]
    assert draws == [blind(ctx.registry, random.Random(seed)) for seed in range(6)]
    assert {d.a.model for d in draws} == {ONNX, HF}  # both orders occur
    with pytest.raises(ModelUnavailableError, match="two available models"):
        blind(ctx.registry, random.Random(0), pool=[ctx.registry.resolve(ONNX)])
    with pytest.raises(PlaygroundError, match="Unknown arena preset"):
        preset_pair(ctx.registry, "nope")


def test_an_export_reproduces_each_side_and_reads_back(ctx: AppContext, arena: ArenaService) -> None:
    owner = new_browser_id()
    seeded = GenerationOptions(temperature=0.5, max_new_tokens=16, seed=7)
    round_ = arena.start(
        owner, named(Side(ONNX, options=seeded, system="Be brief."), Side(HF, options=GREEDY)), QUESTION
    )
    arena.run(owner, round_)
    arena.vote(owner, round_.battle.id, "b")
    data = export_battle(ctx.history, ctx.registry, owner, round_.battle.id)
    assert read_json(to_json(data)) == data
    answers = data["rounds"][0]["answers"]
    assert data["sides"]["a"]["model"] == ONNX and answers["a"]["parameters"]["seed"] == 7
    code_a, code_b = answers["a"]["code"]["code"], answers["b"]["code"]["code"]
    compile(code_a, "a.py", "exec"), compile(code_b, "b.py", "exec")
    assert "onnxruntime_genai" in code_a and "random_seed=7," in code_a
    assert "Be brief." in code_a and QUESTION in code_a and "AutoModelForCausalLM" in code_b
    markdown = to_markdown(data)
    assert "## Round 1" in markdown and "**Vote**: b" in markdown and "```python" in markdown
    assert answers["b"]["text"].splitlines()[0] in markdown
    with pytest.raises(PlaygroundError, match="not a battle export"):
        read_json('{"format": "other"}')


def test_images_are_kept_with_the_battle_and_a_text_only_side_refuses_them(
    ctx: AppContext, arena: ArenaService, tmp_path: Path
) -> None:
    from PIL import Image

    picture = tmp_path / "red.png"
    Image.new("RGB", (8, 8), "red").save(picture)
    owner = new_browser_id()
    round_ = arena.start(
        owner,
        blind_pair(Side(ONNX, options=GREEDY), Side(HF, options=GREEDY)),
        "What is this?",
        images=[picture],
    )
    view = arena.run(owner, round_)
    assert "does not take images" in round_.runs["a"].error  # the service's own words name the model...
    assert (
        view.a.error and "SmolLM" not in view.a.error and "ONNX" not in view.a.error
    )  # ...the page's do not
    for conversation in (round_.battle.conversation_a, round_.battle.conversation_b):
        question, answer = ctx.history.conversations.get_conversation(owner, conversation).messages
        assert len(question.images) == 1 and answer.finish_reason == "error"
    arena.vote(owner, round_.battle.id, "both_bad")
    data = export_battle(ctx.history, ctx.registry, owner, round_.battle.id)
    assert data["rounds"][0]["answers"]["a"]["images"] == list(question.images)
    assert data["rounds"][0]["answers"]["a"]["metrics"]["error"].startswith("SmolLM2-135M-Instruct")
    assert data["rounds"][0]["answers"]["a"]["code"]["code"].startswith("No code for this call")


def test_the_daily_cap_applies_in_public_mode_only(ctx: AppContext, tmp_path: Path) -> None:
    from dataclasses import replace

    from playground.errors import ConfigError
    from tests.support import make_settings

    public = replace(
        ctx, settings=make_settings(tmp_path, PLAYGROUND_PUBLIC="1", PLAYGROUND_ARENA_DAILY_VOTES="3")
    )
    assert ArenaService.from_context(public).daily_votes == 3
    assert (
        ArenaService.from_context(
            replace(ctx, settings=make_settings(tmp_path, PLAYGROUND_PUBLIC="1"))
        ).daily_votes
        == 200
    )
    assert ArenaService.from_context(ctx).daily_votes is None
    with pytest.raises(
        ConfigError, match=r"^PLAYGROUND_ARENA_DAILY_VOTES must be a whole number, got 'lots'$"
    ):
        make_settings(tmp_path, PLAYGROUND_ARENA_DAILY_VOTES="lots")  # refused at start, as the others


def test_the_daily_vote_cap_counts_per_address_across_fresh_page_loads(ctx: AppContext) -> None:
    """A new page load is a new visitor id: three of them from one address cast no more than the cap
    (3 cast 9 before); another address still votes."""
    arena = ArenaService(ctx.answers, ctx.history, daily_votes=2)
    arena.address_votes = DailyCounter(today=lambda: date(2026, 12, 4))  # no midnight inside the test
    tiny = GenerationOptions(temperature=0.0, max_new_tokens=2)
    cast: list[str] = []
    for _ in range(3):  # three page loads from one address
        owner = new_browser_id()
        for _ in range(2):
            battle = arena.start(owner, named(Side(ONNX, options=tiny), Side(ONNX, options=tiny)), QUESTION)
            view = arena.run(owner, battle)
            try:
                arena.vote(owner, view.battle_id, "tie", address="203.0.113.7")
                cast.append(owner)
            except HistoryError as exc:
                assert "Your network address has cast today's 2 arena votes" in str(exc)
    assert len(cast) == 2 and arena.address_votes.count("203.0.113.7") == 2
    owner = new_browser_id()
    battle = arena.start(owner, named(Side(ONNX, options=tiny), Side(ONNX, options=tiny)), QUESTION)
    arena.vote(owner, arena.run(owner, battle).battle_id, "a", address="198.51.100.2")
    assert arena.address_votes.count("198.51.100.2") == 1
