"""Mixture-of-experts routing: the demo PhimoeForCausalLM through the real load and generate paths.

The demo model has random weights, so its text is gibberish: these tests assert on structure and on the
routers' own arithmetic, recomputed here with a plain forward pass over the generated sequence.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from playground.answers import Experts, Finished, Recording, Request
from playground.catalog import load_catalog
from playground.context import AppContext
from playground.moe_view import card, pack, routing_map, stored_map, unpack
from playground.options import GenerationOptions
from playground.providers.base import timed
from playground.providers.local import demo
from playground.providers.local.process import ProcessModel
from playground.types import Chunk, ExpertRecord, Finish, FinishReason, LayerRoute, Message
from tests.support import MODELS_DIR, loaded
from tests.test_cli import cli

MOE = "tiny-phimoe-demo@transformers"
GREEDY = GenerationOptions(temperature=0, max_new_tokens=12)
HELLO = [Message("user", "Hello! Which experts will you use?")]
TIE = 1e-6  # router scores this close count as a tie: either expert may be chosen


@pytest.fixture(scope="session")
def demo_folder(embedded_hf_folder: Path) -> Path:
    return demo.ensure_folder(MODELS_DIR)


def records_of(chunks: Sequence[Chunk]) -> list[ExpertRecord]:
    return [c.experts for c in chunks if c.experts is not None]


def recomputed_logits(folder: Path, prompt: str, answer_ids: Sequence[int]) -> list[Any]:
    """Each layer's router scores [T, E] from one forward pass over prompt + answer (no cache)."""
    import torch
    from transformers import AutoTokenizer, PhimoeForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    model = PhimoeForCausalLM.from_pretrained(str(folder), dtype=torch.float32).eval()
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    ids = torch.tensor([[*prompt_ids, *answer_ids]])
    with torch.inference_mode():
        out = model(ids, output_router_logits=True)
    return [(logits, len(prompt_ids)) for logits in out.router_logits]


def assert_matches_forward_pass(folder: Path, prompt: str, records: Sequence[ExpertRecord]) -> None:
    """Record j holds the routing of the step that produced answer token j: position prompt_len - 1 + j."""
    import torch

    per_layer = recomputed_logits(folder, prompt, [r.token_id for r in records])
    for layer, (logits, prompt_len) in enumerate(per_layer):
        for j, record in enumerate(records):
            scores = logits[prompt_len - 1 + j]
            route = record.layers[layer]
            remaining = scores.clone()
            for expert in route.experts:  # best first: each is the best of the experts not chosen yet
                best = float(remaining.max())
                assert float(scores[expert]) >= best - TIE, (layer, j, route, scores.tolist())
                remaining[expert] = float("-inf")
            probs = torch.softmax(scores, dim=-1)
            assert route.probs == pytest.approx([float(probs[e]) for e in route.experts], abs=1e-4)


def test_demo_is_labelled_as_random_and_phi_moe_has_its_card(ctx: AppContext) -> None:
    entries = {e.key: e for e in load_catalog()}
    entry = entries[demo.DEMO_KEY]
    assert demo.LABEL.lower() in entry.description.lower()
    assert "random weights" in entry.name.lower()
    spec = ctx.registry.resolve(MOE)
    assert {"chat", "moe"} <= {str(c) for c in spec.capabilities}
    assert ctx.registry.providers["transformers"].availability(spec).available
    demo_card = card(spec)
    assert demo_card is not None and demo_card.demo and demo_card.records_experts
    assert demo_card.summary().startswith("4 experts, 2 active per token")
    phi = card(ctx.registry.resolve("phi-3.5-moe@transformers"))
    assert phi is not None and not phi.demo
    assert phi.summary() == "16 experts, 2 active per token · 6.6B active of 42B parameters"
    assert "16 expert" in phi.description and "6.6B of its 42B" in phi.description


def test_records_in_process_match_a_forward_pass(
    in_process: Callable[..., Any], demo_folder: Path, ctx: AppContext
) -> None:
    engine = in_process(MOE)
    chunks = list(engine.stream(HELLO, GREEDY))
    records = records_of(chunks)
    metrics = chunks[-1].metrics
    assert metrics is not None and metrics.completion_tokens == GREEDY.max_new_tokens
    # One record per generated token, in order, each in a chunk of its own that adds no text.
    assert [r.index for r in records] == list(range(metrics.completion_tokens))
    assert all(c.text == "" and c.metrics is None for c in chunks if c.experts is not None)
    text = "".join(c.text for c in chunks)
    assert text == engine._tokenizer.decode([r.token_id for r in records], skip_special_tokens=True)
    for record in records:
        assert record.num_experts == demo.EXPERTS and len(record.layers) == demo.LAYERS
        for route in record.layers:
            assert len(route.experts) == demo.TOP_K == len(set(route.experts))
            assert len(route.weights) == len(route.probs) == demo.TOP_K
            assert all(0 <= e < demo.EXPERTS for e in route.experts)
    assert_matches_forward_pass(demo_folder, engine.render_prompt(HELLO), records)
    assert not engine._tap.installed  # the hooks go when no request records


def test_two_requests_at_once_get_their_own_records(
    in_process: Callable[..., Any], demo_folder: Path
) -> None:
    """Two generate() threads share the model; each record set matches its own forward pass."""
    engine = in_process(MOE)
    asks = [
        (HELLO, GenerationOptions(temperature=0, max_new_tokens=10)),
        (
            [Message("user", "Count to five, slowly, please.")],
            GenerationOptions(temperature=0, max_new_tokens=16),
        ),
    ]
    streams = [engine.stream(m, o) for m, o in asks]
    got: list[list[Chunk]] = [[], []]
    overlap = threading.Event()
    live = [True, True]
    while any(live):  # alternate between the two streams: both generate() threads run meanwhile
        for i, stream in enumerate(streams):
            if not live[i]:
                continue
            chunk = next(stream, None)
            if chunk is None:
                live[i] = False
                continue
            got[i].append(chunk)
            if all(records_of(g) for g in got) and all(live):
                overlap.set()
    assert overlap.is_set(), "both requests were recording at the same time"
    for (messages, options), chunks in zip(asks, got, strict=True):
        records = records_of(chunks)
        assert [r.index for r in records] == list(range(options.max_new_tokens))
        assert_matches_forward_pass(demo_folder, engine.render_prompt(messages), records)
    assert not engine._tap.installed


def test_worker_process_delivers_the_same_records(ctx: AppContext, in_process: Callable[..., Any]) -> None:
    model = loaded(ctx.registry, MOE)
    assert isinstance(model, ProcessModel), "local models run in worker processes by default"
    engine = in_process(MOE, model.threads)
    ours, theirs = (
        records_of(list(model.stream(HELLO, GREEDY))),
        records_of(list(engine.stream(HELLO, GREEDY))),
    )
    assert len(ours) == GREEDY.max_new_tokens
    assert [(r.token_id, r.token, [lr.experts for lr in r.layers]) for r in ours] == [
        (r.token_id, r.token, [lr.experts for lr in r.layers]) for r in theirs
    ]
    for mine, its in zip(ours, theirs, strict=True):
        for a, b in zip(mine.layers, its.layers, strict=True):
            assert a.probs == pytest.approx(b.probs, abs=1e-5)


def test_timed_passes_records_through_and_out_of_the_text() -> None:
    record = ExpertRecord(0, 7, "a", 4, (LayerRoute((1, 3), (1.0, 1.0), (0.4, 0.3)),))

    def events() -> Iterator[str | ExpertRecord | Finish]:
        yield record
        time.sleep(0.05)
        yield "a"
        yield "b"
        yield Finish(3, 2, FinishReason.STOP)

    chunks = list(timed(events()))
    assert chunks[0].experts is record and chunks[0].text == ""
    assert "".join(c.text for c in chunks) == "ab"
    metrics = chunks[-1].metrics
    assert (
        metrics is not None and metrics.ttft_s is not None and metrics.ttft_s >= 0.05
    )  # a record is no token


def test_chat_json_carries_experts(settings: Any, demo_folder: Path) -> None:
    result = cli(
        settings,
        "chat",
        "-m",
        "tiny-phimoe-demo",
        "--temperature",
        "0",
        "--max-new-tokens",
        "6",
        "--json",
        "Hi",
    )
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["model"] == MOE
    experts = out["experts"]
    assert len(experts) == out["metrics"]["completion_tokens"] == 6
    assert [e["index"] for e in experts] == list(range(6))
    for entry in experts:
        assert len(entry["layers"]) == demo.LAYERS
        for layer in entry["layers"]:
            assert len(layer["experts"]) == len(layer["weights"]) == demo.TOP_K
            assert all(0 <= e < demo.EXPERTS for e in layer["experts"])
    assert "".join(e["token"] for e in experts).strip() and isinstance(out["text"], str)


def test_history_keeps_the_map_with_the_answer(ctx: AppContext) -> None:
    owner = "moe-owner"
    service = ctx.conversations
    conversation = service.ask(owner, None, HELLO[0].content, MOE, tab="moe")
    records = ctx.answers.complete(
        Request(MOE, HELLO, GREEDY, record=Recording(ctx.history.conversations, owner, conversation))
    ).experts
    answer = ctx.history.conversations.get_conversation(owner, conversation).messages[-1]
    assert answer.role == "assistant" and answer.finish_reason == FinishReason.LENGTH
    stored = unpack(answer.experts)
    assert [(r.index, r.token_id, r.token) for r in stored] == [
        (r.index, r.token_id, r.token) for r in records
    ]
    assert [[lr.experts for lr in r.layers] for r in stored] == [
        [lr.experts for lr in r.layers] for r in records
    ]
    view = stored_map(answer.experts)
    assert view is not None and view == routing_map(stored)
    assert len(view.tokens) == GREEDY.max_new_tokens and view.layers == demo.LAYERS
    assert sum(view.load) == GREEDY.max_new_tokens * demo.LAYERS * demo.TOP_K

    # Stopped mid-answer: the map of what was generated is kept with the partial answer.
    conversation = service.ask(owner, None, "Again", MOE, tab="moe")
    longer = GREEDY.model_copy(update={"max_new_tokens": 200})
    answer = ctx.answers.ask(
        Request(
            MOE,
            [Message("user", "Again")],
            longer,
            record=Recording(ctx.history.conversations, owner, conversation),
        )
    )
    seen = 0
    for event in answer:
        seen += isinstance(event, Experts)
        if seen == 3:
            answer.stop()
    assert isinstance(event, Finished) and event.reason == FinishReason.CANCELLED
    answer = ctx.history.conversations.get_conversation(owner, conversation).messages[-1]
    assert answer.finish_reason == FinishReason.CANCELLED
    assert len(unpack(answer.experts)) >= 3


def test_routing_map_counts_and_hover() -> None:
    records = [
        ExpertRecord(
            0,
            10,
            " Paris",
            4,
            (LayerRoute((2, 0), (0.7, 0.3), (0.5, 0.2)), LayerRoute((1, 3), (1.0, 1.0), (0.4, 0.35))),
        ),
        ExpertRecord(
            1,
            11,
            "\n",
            4,
            (LayerRoute((2, 1), (0.6, 0.4), (0.45, 0.3)), LayerRoute((3, 1), (1.0, 1.0), (0.5, 0.2))),
        ),
    ]
    view = routing_map(records)
    assert view.tokens == ("␣Paris", "↵") and view.layers == 2 and view.num_experts == 4 and view.top_k == 2
    assert view.top == ((2, 1), (2, 3))  # the higher weight, and on equal weights the higher probability
    assert view.load == (1, 3, 2, 2) and view.load_by_layer == ((1, 1, 2, 0), (0, 2, 0, 2))
    assert "␣Paris" in view.hover[0][0] and "expert 2: weight 0.700, p 0.500" in view.hover[0][0]
    cells = view.cells()
    assert len(cells) == 4 and cells[1] == {
        "position": 0, "token": "␣Paris", "layer": 1, "expert": 1, "experts": "1, 3", "hover": view.hover[0][1],
    }  # fmt: skip
    assert [row["count"] for row in view.load_rows()] == [1, 3, 2, 2]
    assert unpack(json.loads(json.dumps(pack(records)))) == records
    assert routing_map([]).empty


def test_a_damaged_stored_map_says_what_to_do() -> None:
    from playground.errors import HistoryError

    with pytest.raises(HistoryError, match="Generate the answer again"):
        unpack({"version": 1, "num_experts": 4, "tokens": [[0, 1]]})
    assert stored_map(None) is None
