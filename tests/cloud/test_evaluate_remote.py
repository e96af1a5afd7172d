"""Evaluate across engines and a real server, and the judge.

- A bundled set through three models (the embedded model on ONNX Runtime GenAI, on transformers, and
  served by `transformers serve`): per-item results, scores with intervals, speed and memory per model
  ("remote" for the server); a greedy answer equals `python -m playground chat`'s for the same settings.
- The judge's position swap: a scripted judge that always prefers the answer shown first (the fake
  server's `judgea` scenario) yields ties only; the real judge (the embedded model) grades every answer;
  the judge's agreement with human votes the test seeds in the Arena.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from playground.context import AppContext
from playground.evaluate import sets
from playground.evaluate.scores import report
from playground.evaluate.service import Judge, last
from playground.history import new_browser_id
from playground.options import GenerationOptions
from tests.cloud.conftest import Served
from tests.cloud.fake_server import FakeServer
from tests.support import ROOT, make_settings

ONNX, HF = "smollm2-135m-instruct@onnx", "smollm2-135m-instruct@transformers"
GREEDY = GenerationOptions(temperature=0, max_new_tokens=32)


@pytest.fixture(scope="module")
def with_server(served: Served, tmp_path_factory: pytest.TempPathFactory) -> AppContext:
    ctx = AppContext.create(make_settings(tmp_path_factory.mktemp("eval"), OPENAI_BASE_URL=served.base_url))
    yield ctx  # type: ignore[misc]
    ctx.close()


def test_a_bundled_set_through_three_models_gives_scores_speed_and_memory(
    with_server: AppContext, served: Served
) -> None:
    ctx, owner = with_server, new_browser_id()
    remote = f"{served.model}@openai-compatible"
    prompt_set = sets.load("json")
    run = ctx.evals.start(owner, [ONNX, HF, remote], prompt_set, GREEDY)
    assert last(ctx.evals.run(owner, run.id)).status == "done"
    found = report(ctx.history, owner, run.id)
    assert [m.model for m in found.models] == [ONNX, HF, remote]
    for model in found.models:
        assert model.answered == model.checked == len(prompt_set.items), model
        assert model.score is not None and model.ci is not None and model.ci[0] <= model.score <= model.ci[1]
        assert model.tokens_per_s and model.ttft_p50 and model.prompt_tokens_per_s, model
    local = [m for m in found.models if m.model != remote]
    assert all(m.memory == "worker (measured)" and m.peak_memory_bytes and m.load_s for m in local)
    server = found.models[-1]
    assert server.memory == "remote" and server.peak_memory_bytes is None and server.file_hash == "n/a"
    assert {r.model for r in found.results} == {ONNX, HF, remote} and len(found.results) == 9
    # the first item's greedy answer on ONNX is what `python -m playground chat` says with the same settings
    first = next(r for r in found.results if r.model == ONNX and r.item == 0)
    chat = subprocess.run(
        [sys.executable, "-m", "playground", "chat", "-m", ONNX, "--temperature", "0", "--max-new-tokens", "32",
         "--top-p", "1", prompt_set.items[0].prompt],
        capture_output=True, text=True, cwd=ROOT, timeout=300, check=True,
        env={**os.environ, "PLAYGROUND_DATA_DIR": str(ctx.settings.data_dir), "PLAYGROUND_MODELS_DIR": str(ctx.settings.models_dir)},
    )  # fmt: skip
    assert chat.stdout.strip() == first.text.strip()


def test_a_judge_that_always_says_a_gives_ties_and_its_agreement_with_human_votes(
    fake: FakeServer, tmp_path: Path
) -> None:
    ctx = AppContext.create(make_settings(tmp_path, OPENAI_BASE_URL=fake.url("judgea")))
    try:
        owner = new_browser_id()
        prompt_set = sets.parse(
            '{"prompt": "What is the capital of France? Answer in one word.", "expected": "Paris", "check": "contains"}\n'
            '{"prompt": "Say hello."}',
            name="two",
        )
        scripted = Judge("alpha@openai-compatible", "compare")
        run = ctx.evals.start(owner, [ONNX, HF], prompt_set, GREEDY, scripted)
        assert last(ctx.evals.run(owner, run.id)).status == "done"
        pairs = ctx.history.evals.pairs(owner, run.id)
        assert [(item, verdict) for item, _, _, verdict in pairs] == [(0, "tie"), (1, "tie")], (
            "a judge that prefers whatever is shown first prefers neither answer"
        )
        asked = [r for r in fake.requests("judgea") if r.method == "POST"]
        assert len(asked) == 4, "each pair was asked twice, the positions swapped"
        first, second = (r.body["messages"][-1]["content"] for r in asked[:2])
        assert first.index("Answer A") < first.index("Answer B")
        a_then, b_then = first.split("Answer B:")[0], second.split("Answer B:")[0]
        assert a_then != b_then, "the second time, the other answer is shown first"
        # human votes on the same prompt and models, seeded in the Arena: one "A better", one tie
        for vote in ("a", "tie"):
            battle = ctx.history.battles.create_battle(owner, prompt_set.items[0].prompt, ONNX, HF)
            ctx.history.battles.record_vote(owner, battle.id, vote)
        agreement = report(ctx.history, owner, run.id).agreement
        assert (agreement.humans, agreement.humans_count) == (0.5, 2)
        # the real judge, the embedded model, grades each answer
        graded = ctx.evals.start(owner, [ONNX, HF], prompt_set, GREEDY, Judge(ONNX, "grade"))
        last(ctx.evals.run(owner, graded.id))
        results = ctx.history.evals.results(owner, graded.id)
        grades = [r.judge for r in results]
        assert len(grades) == 4
        assert all(g and g["grade"] in ("pass", "fail", "unclear") and g["said"] for g in grades)
        decided = [
            r for r in results if r.verdict is not None and (r.judge or {}).get("grade") in ("pass", "fail")
        ]
        checked = report(ctx.history, owner, graded.id).agreement
        assert checked.checks_count == len(decided), (
            "every grade of a checked answer is compared with its check"
        )
    finally:
        ctx.close()
