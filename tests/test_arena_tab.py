"""The Arena tab's handlers with the embedded model on two engines (ONNX Runtime GenAI and transformers,
each in its worker process): both panes stream at once, Stop on one pane leaves the other, votes persist and
move the leaderboard, a blind round names nobody in any output before the vote, the History tab lists blind
conversations anonymised, presets say why they are not ready, exports read back."""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gradio as gr
import pandas as pd
import pytest

from playground.arena.anonymise import identity_words
from playground.arena.export import read_json
from playground.arena.pairing import blind_pool
from playground.context import AppContext
from playground.history import HistoryStore, Vote, new_browser_id
from playground.ui.arena_layout import BOARD_VIEWS
from playground.ui.arena_tab import BLIND, DENSE_VS_MOE, NAMED, OUTPUT_NAMES, ArenaTab, preset_link
from playground.ui.history_tab import BLIND_PREVIEW, HistoryTab
from tests.support import QUESTION
from tests.test_arena import mentioned
from tests.test_streaming import run_loop

ONNX, HF = "smollm2-135m-instruct@onnx", "smollm2-135m-instruct@transformers"
PANE = ("", 0.0, 1.0, 0, 24, 1.0, -1, "")  # system, temperature, top-p, top-k, max new, penalty, seed, stop
LONG = ("", 0.0, 1.0, 0, 160, 1.0, -1, "")
STORY = "Write a long story about a dragon who learns to bake bread."
Update = tuple[Any, ...]


def out(update: Update, name: str) -> Any:
    return update[OUTPUT_NAMES.index(name)]


def answer_text(chat: list[dict[str, Any]]) -> str:
    """The last answer in a pane's chat (the message before its metrics line, or the live one)."""
    answers = [m for m in chat if m["role"] == "assistant" and not m.get("metadata")]
    return str(answers[-1]["content"]) if answers else ""


def play(
    tab: ArenaTab,
    owner: str,
    *,
    battle: str | None = None,
    rounds: list[dict[str, Any]] | None = None,
    mode: str = NAMED,
    a: str = ONNX,
    b: str = HF,
    prompt: str = QUESTION,
    pane: tuple[Any, ...] = PANE,
    session: str = "arena-session",
    on_update: Callable[[Update], None] | None = None,
) -> list[Update]:
    """Every update `play` yields, as the page would receive them."""

    async def run() -> list[Update]:
        updates = []
        async for update in tab.play(
            gr.Request(session_hash=session),
            owner, battle, rounds or [], mode, "", a, b, prompt, True, *pane, *pane,
        ):  # fmt: skip
            updates.append(update)
            if on_update is not None:
                on_update(update)
        return updates

    return run_loop(run())


@pytest.fixture(scope="module")
def tab(ctx: AppContext) -> ArenaTab:
    return ArenaTab(ctx)


def test_both_panes_stream_at_once_and_end_with_metrics_and_a_chart(tab: ArenaTab) -> None:
    owner = new_browser_id()
    updates = play(tab, owner, prompt=STORY, pane=LONG)
    lengths = [(len(answer_text(out(u, "chat_a"))), len(answer_text(out(u, "chat_b")))) for u in updates]
    live = [
        "live" in out(u, "status_a") and "live" in out(u, "status_b") and a > 0 and b > 0
        for u, (a, b) in zip(updates, lengths, strict=True)
    ]
    assert any(live), "both panes showed text while both were still streaming"
    # Interleaved progress: while both streamed, each pane's text grew from one update to the next.
    steps = [
        (now, then) for i, (now, then) in enumerate(itertools.pairwise(lengths)) if live[i] and live[i + 1]
    ]
    assert any(b[0] > a[0] for a, b in steps) and any(b[1] > a[1] for a, b in steps), lengths
    final = updates[-1]
    assert out(final, "head_a").startswith(f"### A · `{ONNX}`") and "transformers" in out(final, "head_b")
    for side in ("a", "b"):
        status = out(final, f"status_{side}")
        assert "TTFT" in status and "tok/s" in status and "in " in status and "total" in status
        assert "live" not in status
    frames = [out(final, f"chart_{key}").value for key in ("tokens_per_s", "ttft_s", "total_s")]
    for frame in frames:
        assert frame is not None and len(frame["data"]) == 2
    assert all(out(final, f"vote_{k}").interactive for k in ("a", "b", "tie", "both_bad"))
    assert out(final, "prompt") == "" and out(final, "battle")


def test_stop_on_one_pane_leaves_the_other_streaming(tab: ArenaTab, ctx: AppContext) -> None:
    owner = new_browser_id()
    session = "stop-one-pane"
    at_stop: dict[str, int] = {}

    def stop_b_early(update: Update) -> None:
        b_text = answer_text(out(update, "chat_b"))
        if not at_stop and len(b_text) > 10:
            at_stop["a"] = len(answer_text(out(update, "chat_a")))
            tab.stop_b(gr.Request(session_hash=session))

    updates = play(tab, owner, prompt=STORY, pane=LONG, session=session, on_update=stop_b_early)
    assert at_stop, "pane B never streamed"
    final = out(updates[-1], "rounds")[-1]
    assert final["b"]["finish_reason"] == "cancelled"
    assert final["a"]["finish_reason"] in ("stop", "length")
    assert len(final["a"]["text"]) > at_stop["a"], "A went on after B stopped"
    assert "stopped" in json.dumps(out(updates[-1], "chat_b"))
    battle = ctx.history.battles.get_battle(owner, out(updates[-1], "battle"))
    answer_b = ctx.history.conversations.get_conversation(owner, battle.conversation_b).messages[-1]
    assert str(answer_b.finish_reason) == "cancelled"


def test_stop_both_ends_both_panes(tab: ArenaTab) -> None:
    owner = new_browser_id()
    session = "stop-both"
    stopped: list[int] = []

    def stop_both_once(update: Update) -> None:
        texts = [answer_text(out(update, f"chat_{side}")) for side in ("a", "b")]
        if not stopped and all(len(t) > 10 for t in texts):
            stopped.append(1)
            tab.stop_both(gr.Request(session_hash=session))

    updates = play(tab, owner, prompt=STORY, pane=LONG, session=session, on_update=stop_both_once)
    assert stopped, "both panes streamed"
    final = out(updates[-1], "rounds")[-1]
    assert (final["a"]["finish_reason"], final["b"]["finish_reason"]) == ("cancelled", "cancelled")
    assert all(out(updates[-1], f"vote_{k}").interactive for k in ("a", "b")), "a stopped round can be voted"


def test_votes_persist_reload_and_move_the_leaderboard(tab: ArenaTab, ctx: AppContext) -> None:
    owner = new_browser_id()
    before = tab.board_outputs()[2]
    updates = play(tab, owner)
    battle, rounds = out(updates[-1], "battle"), out(updates[-1], "rounds")
    voted = tab.vote("b", owner, battle, rounds, board=(BOARD_VIEWS[0], True))  # style control on
    assert "Your vote: B is better" in out(voted, "notice")
    assert not out(voted, "vote_a").interactive
    ratings, win_rates, counts = voted[len(OUTPUT_NAMES) :]
    assert isinstance(ratings, pd.DataFrame) and {ONNX, HF} <= set(ratings["Name"])
    assert counts != before and ONNX in list(win_rates.columns)
    assert "Style control on" in counts and "×" in counts, counts  # what length and Markdown were worth
    assert "Style control" not in tab.board_outputs()[2]  # off by default
    again = tab.vote("a", owner, battle, out(voted, "rounds"))  # one vote a round
    assert "already has a vote" in out(again, "notice")
    reopened = HistoryStore(ctx.history.path)
    try:
        assert reopened.battles.get_battle(owner, battle).vote == Vote.B
    finally:
        reopened.close()
    assert tab.arena.load(owner, battle).vote == "b"
    # A second round continues the battle (multi-turn); regenerate asks it again.
    second = play(tab, owner, battle=battle, rounds=out(voted, "rounds"), prompt="And of Italy?")
    rounds2 = out(second[-1], "rounds")
    assert len(rounds2) == 2 and rounds2[1]["round"] == 2
    assert len([m for m in out(second[-1], "chat_a") if m["role"] == "user"]) == 2

    async def regenerate() -> list[Update]:
        new_battle = out(second[-1], "battle")
        request = gr.Request(session_hash="regen")
        return [u async for u in tab.regenerate(owner, new_battle, rounds2, request)]

    regenerated = run_loop(regenerate())
    assert len(out(regenerated[-1], "rounds")) == 2 and out(regenerated[-1], "rounds")[1]["a"]["text"]


def secret_words(ctx: AppContext) -> list[str]:
    specs = [ctx.registry.resolve(i) for i in (ONNX, HF)]
    words = {w.lower() for s in specs for w in identity_words(s)} | {f"{s.context_window:,}" for s in specs}
    return sorted(words | {str(s.context_window) for s in specs})


def dump(value: Any) -> str:
    """Everything an output carries, as text: components by their config, frames by their rows."""

    def default(obj: Any) -> Any:
        if isinstance(obj, pd.DataFrame):
            return obj.to_dict(orient="split")
        if isinstance(obj, gr.components.Component | gr.blocks.Block):
            return obj.get_config()
        return repr(obj)

    return json.dumps(value, default=default, ensure_ascii=False).lower()


def test_a_blind_round_names_nobody_in_any_output_before_the_vote(tab: ArenaTab, ctx: AppContext) -> None:
    owner = new_browser_id()
    words = secret_words(ctx)
    pool = {spec.id for spec in blind_pool(ctx.registry)}
    assert pool == {ONNX, HF}, "the test's blind pool is the embedded model on two engines"
    updates = play(tab, owner, mode=BLIND)
    for update in updates:
        text = dump(update)
        leaked = mentioned(text, words)
        where = text.find(leaked[0]) if leaked else 0
        assert not leaked, (leaked, text[max(0, where - 120) : where + 120])  # where it was, to judge it
    final = updates[-1]
    assert out(final, "head_a") == "### Model A" and out(final, "head_b") == "### Model B"
    assert "tok/s" in out(final, "status_a")  # metrics shown, without labels
    battle, rounds = out(final, "battle"), out(final, "rounds")
    refused, message = tab.export("json", owner, battle)
    assert refused is None and "after the vote" in message and not mentioned(message.lower(), words)
    # The History tab lists the two conversations as Model A and Model B, and does not preview them.
    history = HistoryTab(ctx)
    table, ids = history.rows(owner)
    assert sorted(row[1] for row in table) == ["Model A", "Model B"]
    assert not mentioned(dump(table), words)
    event = gr.SelectData(None, {"index": [0, 0], "value": ""})
    assert history.select(ids, owner, event) == (ids[0], BLIND_PREVIEW)
    # Continuing or exporting it there would name its model: refused until the vote; "all" leaves it out.
    for attempt in (lambda: history.open([], ids[0], owner), lambda: history.export("md", ids[0], owner)):
        with pytest.raises(gr.Error, match="vote in the Arena tab first"):
            attempt()
    everything = Path(history.export("all-json", None, owner)).read_text()
    assert not mentioned(everything.lower(), words) and ids[0] not in everything
    # The vote reveals both sides, in the panes and in the History tab.
    voted = tab.vote("tie", owner, battle, rounds)
    assert mentioned(dump(voted), words), "the check above sees names once they are shown"
    heads = out(voted, "head_a") + out(voted, "head_b")
    assert ONNX in heads and HF in heads and "was `" in out(voted, "notice")
    table, _ = history.rows(owner)
    assert sorted(row[1] for row in table) == [ONNX, HF]
    path, _ = tab.export("json", owner, battle)
    assert path is not None and read_json(Path(path).read_text())["sides"]["a"]["model"] in (ONNX, HF)


def test_presets_say_why_they_are_not_ready_and_the_moe_link_opens_one(tab: ArenaTab) -> None:
    model_a, model_b, note = tab.choose_preset("two-engines")
    assert (model_a, model_b) == (ONNX, HF) and "offline" in note
    _, _, note = tab.choose_preset(DENSE_VS_MOE)
    assert note.startswith("⛔") and "not ready" in note
    labels = dict((v, k) for k, v in tab.preset_choices())
    assert labels[DENSE_VS_MOE].endswith("not ready") and not labels["two-engines"].endswith("not ready")
    assert preset_link() == "?arena=dense-vs-moe"
    request = gr.Request(session_hash="link", query_params={"arena": "two-engines"})
    tabs, mode, preset, model_a, _, _ = tab.open_link(request)
    assert tabs.selected == "arena" and (mode, preset, model_a) == (NAMED, "two-engines", ONNX)


def test_an_export_reproduces_each_side_and_a_named_preset_is_recorded(
    tab: ArenaTab, ctx: AppContext
) -> None:
    owner = new_browser_id()

    async def run() -> list[Update]:
        request = gr.Request(session_hash="export")
        return [
            u
            async for u in tab.play(
                request, owner, None, [], NAMED, "two-engines", ONNX, HF, QUESTION, True, *PANE, *PANE
            )
        ]

    battle = out(run_loop(run())[-1], "battle")
    assert ctx.history.battles.get_battle(owner, battle).parameters["preset"] == "two-engines"
    path, _ = tab.export("json", owner, battle)
    data = read_json(Path(path).read_text())
    assert (
        data["preset"] == "two-engines"
        and "onnxruntime_genai" in data["rounds"][0]["answers"]["a"]["code"]["code"]
    )
    md_path, _ = tab.export("md", owner, battle)
    markdown = Path(md_path).read_text()
    assert "## Round 1" in markdown and "#### Code for B" in markdown and "Paris" in markdown


def test_a_new_battle_that_fails_to_start_forgets_the_one_before(tab: ArenaTab) -> None:
    """After "New round" (rounds cleared), a start that fails must not leave the old battle for Export."""
    owner = new_browser_id()
    old = out(play(tab, owner)[-1], "battle")
    assert old
    updates = play(tab, owner, battle=old, rounds=[], a="no-such-model")
    assert "Unknown model" in out(updates[-1], "notice")
    assert out(updates[-1], "battle") is None


def test_a_round_runs_exactly_the_pickers_models_and_a_not_ready_preset_runs_nothing(
    tab: ArenaTab, ctx: AppContext
) -> None:
    """The round state has one source: after a voted round, other pickers start their own battle (not a
    round added to the old one), and a not-ready preset runs nothing, saying why."""
    owner = new_browser_id()
    first = play(tab, owner)
    battle, rounds = out(first[-1], "battle"), out(first[-1], "rounds")
    voted = tab.vote("a", owner, battle, rounds)

    async def send(preset: str, a: str, b: str) -> list[Update]:
        request = gr.Request(session_hash="pickers")
        values = (owner, battle, out(voted, "rounds"), NAMED, preset, a, b, "And of Italy?", True)
        return [u async for u in tab.play(request, *values, *PANE, *PANE)]

    refused = run_loop(send(DENSE_VS_MOE, ONNX, HF))[-1]
    assert "not ready" in out(refused, "notice") and out(refused, "rounds") == out(voted, "rounds")
    assert len(ctx.history.battles.battle_rounds(owner, battle)) == 1, "nothing added to the voted round"
    swapped = run_loop(send("", HF, ONNX))[-1]
    new_rounds = out(swapped, "rounds")
    assert len(new_rounds) == 1 and out(swapped, "battle") != battle, "a battle of its own"
    stored = ctx.history.battles.get_battle(owner, out(swapped, "battle"))
    assert (stored.model_a, stored.model_b) == (HF, ONNX), "exactly the pickers' models, on their sides"
    assert not new_rounds[0].get("vote"), "a new round, open for its vote"
