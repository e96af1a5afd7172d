"""Small losses and polish, as a newcomer meets them: a looping answer says so and what helps; a refused
question goes back to the box; a random-weight demo writes a few words by default; the leaderboard reads on
one scale, counts "1 vote", shows an interval only from 5 games and no votes over an empty table; the
History preview has no Python reprs; the Providers tab lists every provider with what enables it."""

from __future__ import annotations

from playground.answers import Request
from playground.arena.ratings import leaderboard
from playground.context import AppContext
from playground.history import Vote
from playground.history.export import parameters_text
from playground.history.records import RatedBattle
from playground.options import GenerationOptions
from playground.providers_service import statuses
from playground.repetition import HINT, repeats
from playground.types import Message
from playground.ui import arena_display as show
from playground.ui.chat_parts import AnswerView
from playground.ui.moe_tab import MoeTab
from playground.ui.widgets import DEMO_MAX_NEW_TOKENS, recommended
from tests.support import QUESTION

ONNX, HF = "smollm2-135m-instruct@onnx", "smollm2-135m-instruct@transformers"


def drawn(ctx: AppContext, question: str, options: GenerationOptions) -> AnswerView:
    view = AnswerView([{"role": "user", "content": question}], None)
    for event in ctx.answers.ask(Request(ONNX, [Message("user", question)], options)):
        view.take(event)
    return view


def test_a_looping_answer_at_the_cards_defaults_says_so_and_suggests_the_penalty(ctx: AppContext) -> None:
    looping = drawn(ctx, "Write a poem about the sea.", GenerationOptions(seed=1, max_new_tokens=120))
    assert looping.turn is not None and repeats(looping.turn["content"])
    assert "repeats itself" in looping.notice and "repetition penalty" in looping.notice
    plain = drawn(ctx, QUESTION, GenerationOptions(temperature=0.0, max_new_tokens=16))
    assert "repeats itself" not in plain.notice
    assert not repeats("The capital of France is Paris. Paris is a large city in France.")
    assert HINT.startswith("This answer repeats itself")


def test_a_random_weight_demo_writes_a_few_words_by_default(ctx: AppContext) -> None:
    moe = MoeTab(ctx)
    demo = ctx.registry.resolve(moe.default_model)
    assert demo.extra.get("demo"), "the MoE tab opens on its random-weight demo"
    assert recommended(demo).max_new_tokens == DEMO_MAX_NEW_TOKENS < 100
    assert recommended(ctx.registry.resolve(ONNX)).max_new_tokens == GenerationOptions().max_new_tokens


def rated(vote: str, a: str = ONNX, b: str = HF) -> RatedBattle:
    return RatedBattle(a, a.rsplit("@", 1)[1], b, b.rsplit("@", 1)[1], Vote(vote), "named", "", "t")


def test_the_leaderboard_reads_on_one_scale_with_honest_counts() -> None:
    one = leaderboard([rated("a")], rounds=20)
    line = show.counts_line(one, one.models)
    assert line.startswith("**1 vote** counted") and "1 votes" not in line
    assert "None of them is between two different models" in line, "no votes claimed over an empty table"
    assert one.models.ratings == ()
    frame = show.ratings_frame(one.sides)
    assert list(frame.columns) == ["Rank", "Name", "Rating", "95% interval", "Games", "Wins"]
    assert set(frame["95% interval"]) == {"— (under 5 games)"}, "no interval from one game"
    five = leaderboard([rated(v) for v in "aabab"], rounds=20)
    frame = show.ratings_frame(five.sides)
    assert all(" – " in cell for cell in frame["95% interval"]) and "votes counted" not in show.counts_line(
        five, five.sides
    )
    assert show.counts_line(five, five.sides).startswith("**5 votes** counted")


def test_the_history_preview_has_no_python_reprs() -> None:
    text = parameters_text({"temperature": 0.2, "num_crops": None, "seed": None, "stop": ["###", 'a"b']})
    assert text == 'stop "###", "a\\"b", temperature 0.2'
    assert "None" not in text and "[" not in text


def test_the_providers_tab_lists_every_provider_with_what_enables_it(ctx: AppContext) -> None:
    listed = {s.label: s for s in statuses(ctx.registry)}
    for label in ("Azure AI Foundry", "GitHub Models", "Azure OpenAI", "NVIDIA NIM", "Ollama"):
        assert label in listed, label
    foundry = listed["Azure AI Foundry"]
    if not foundry.configured:
        assert "AZURE_AI_CHAT_ENDPOINT" in foundry.note
    github = listed["GitHub Models"]
    if not github.configured:
        assert "PLAYGROUND_GITHUB_MODELS=1" in github.note


def test_the_expert_map_cuts_long_tokens_tells_weights_apart_and_shows_no_nan() -> None:
    from playground.moe_view import distinct, routing_map
    from playground.types import ExpertRecord, LayerRoute
    from playground.ui.moe_tab import load_frame, map_html

    assert distinct([0.99996, 0.99991]) == ["1.0000", "0.9999"], "digits until they differ"
    assert distinct([0.5, 0.25]) == ["0.500", "0.250"], "three decimals where they suffice"
    long_token = "supercalifragilistic" * 3
    record = ExpertRecord(
        index=0,
        token_id=1,
        token=long_token,
        num_experts=4,
        layers=(LayerRoute((1, 2), (0.99996, 0.99991), (0.6, 0.4)),),
    )
    shown = map_html(routing_map([record]))
    assert f'title="0 {long_token}"' in shown, "the whole token on hover"
    assert f">0 {long_token}<" not in shown and "…</th>" in shown, "the label is cut"
    assert "weight 1.0000" in shown and "weight 0.9999" in shown and "1.000," not in shown
    assert load_frame(None) is None and load_frame(routing_map([])) is None
