"""Evaluate: the checks on hand-made answers, prompt sets with their bad lines named, a run stopped,
the app restarted and the run continued (nothing asked or scored twice), and the card repeated.

Real components: the embedded SmolLM2 on ONNX Runtime GenAI and transformers in worker processes, a
real SQLite history; the CLI as a user runs it (in this process, through its `main`).
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from playground.cli import main as cli_main
from playground.context import AppContext
from playground.errors import InvalidOptionsError
from playground.evaluate import sets
from playground.evaluate.checks import check
from playground.evaluate.scores import report
from playground.evaluate.service import Progress
from playground.options import GenerationOptions
from tests.support import make_settings

ONNX, HF = "smollm2-135m-instruct@onnx", "smollm2-135m-instruct@transformers"
SHORT = GenerationOptions(temperature=0, max_new_tokens=16)


def item(**fields: object) -> sets.EvalItem:
    return sets.EvalItem.model_validate({"prompt": "q", **fields})


@pytest.mark.parametrize(
    ("fields", "right", "wrong", "why"),
    [
        ({"check": "exact", "expected": "Paris"}, "paris.", "Paris, France", "expected exactly 'Paris'"),
        ({"check": "contains", "expected": ["北京", "Beijing"]}, "是北京。", "Shanghai", "does not contain"),
        ({"check": "regex", "expected": "^\\W*HELLO\\W*$"}, "HELLO!", "Hello", "does not match"),
        ({"check": "number", "expected": 42}, "17 + 25 = 42", "17 + 25 = 41", "41 is not 42"),
        ({"check": "number", "expected": 4.75, "tolerance": 0.01}, "It is 4,751", "no idea", "no number"),
        (
            {"check": "choice", "expected": "B", "choices": ["A", "B", "C"]},
            "B) eagle",
            "A or B",
            "names A, B",
        ),
        (
            {
                "check": "json",
                "schema": {"type": "object", "required": ["age"], "properties": {"age": {"type": "integer"}}},
            },
            'Here: ```json\n{"age": 31}\n```',
            '{"age": "31"}',
            "age: '31' is not of type 'integer'",
        ),
    ],
)
def test_each_check_passes_the_right_answer_and_says_why_the_wrong_one_fails(
    fields: dict[str, object], right: str, wrong: str, why: str
) -> None:
    checked = item(**fields)
    assert check(checked, right) is not None and check(checked, right).passed  # type: ignore[union-attr]
    verdict = check(checked, wrong)
    assert verdict is not None and not verdict.passed and why in verdict.detail


def test_a_set_with_bad_lines_names_each_with_its_number() -> None:
    text = "\n".join(
        [
            '{"prompt": "fine", "expected": "x", "check": "contains"}',
            "{not json",
            '{"prompt": "no expected", "check": "number"}',
            '{"prompt": "x", "check": "jsonn"}',
            '["a list"]',
        ]
    )
    with pytest.raises(InvalidOptionsError) as caught:
        sets.parse(text, name="mine")
    said = str(caught.value)
    assert "4 bad line(s)" in said and "line 2: not JSON" in said and "line 5: not a JSON object" in said
    assert "line 3:" in said and "needs" in said and "line 4:" in said and "check must be one of" in said
    csv = 'prompt,expected,check,choices\n"Which is a bird? A) dog B) eagle",B,choice,A|B|C\n,x,exact,\n'
    with pytest.raises(InvalidOptionsError, match="line 3: prompt"):
        sets.parse(csv, name="mine", kind="csv")
    fine = sets.parse(csv.splitlines()[0] + "\n" + csv.splitlines()[1], name="mine", kind="csv")
    assert fine.items[0].choices == ["A", "B", "C"] and fine.digest.startswith("sha256:")
    assert {name: len(sets.load(name).items) for name in sets.bundled()} == {
        "arithmetic": 6, "facts": 8, "format": 5, "json": 3, "multilingual": 6,
    }  # fmt: skip
    assert all(i.source for name in sets.bundled() for i in sets.load(name).items), (
        "every item says its source"
    )


def test_a_stopped_run_continues_after_a_restart_and_nothing_is_asked_twice(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    owner = "evaluator"
    prompt_set = sets.load("facts")
    ctx = AppContext.create(settings)
    try:
        run = ctx.evals.start(owner, [ONNX, HF], prompt_set, SHORT)
        kept: list[Progress] = []
        for step in ctx.evals.run(owner, run.id, session="s"):
            kept.append(step)
            if step.verdict is not None and len([k for k in kept if k.verdict is not None]) == 3:
                assert ctx.evals.stop("s"), "the run's Stop signal is held"
        assert kept[-1].status == "stopped"
        before = {(r.model, r.item): r.text for r in ctx.history.evals.results(owner, run.id)}
        assert 3 <= len(before) < 2 * len(prompt_set.items)
    finally:
        ctx.close()
    ctx = AppContext.create(settings)  # the app restarted: the run is still there, stopped
    try:
        assert ctx.history.evals.get_run(owner, run.id).status == "stopped"
        steps = list(ctx.evals.run(owner, run.id))
        assert steps[-1].status == "done"
        asked = [(s.model, s.item) for s in steps if s.verdict is not None or s.note]
        assert not set(asked) & set(before), "what was answered before the stop is not asked again"
        results = ctx.history.evals.results(owner, run.id)
        assert Counter((r.model, r.item) for r in results).most_common(1)[0][1] == 1
        assert len(results) == 2 * len(prompt_set.items)
        assert all(before[r.model, r.item] == r.text for r in results if (r.model, r.item) in before)
        found = report(ctx.history, owner, run.id)
        onnx = next(m for m in found.models if m.model == ONNX)
        assert (
            onnx.checked == len(prompt_set.items)
            and onnx.ci is not None
            and onnx.ci[0] <= onnx.score <= onnx.ci[1]
        )  # type: ignore[operator]
        assert onnx.tokens_per_s and onnx.ttft_p50 and onnx.ttft_p95 and onnx.ttft_p50 <= onnx.ttft_p95
        assert (
            onnx.peak_memory_bytes
            and onnx.memory == "worker (measured)"
            and onnx.file_hash.startswith("sha256:")
        )
    finally:
        ctx.close()


def test_the_card_repeats_with_the_same_greedy_answers_and_scores(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`eval --save-card` then `eval --repeat` on that card, as a user runs them."""
    settings = make_settings(tmp_path)
    monkeypatch.setenv("PLAYGROUND_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("PLAYGROUND_MODELS_DIR", str(settings.models_dir))
    saved = tmp_path / "card.json"
    models = ["-m", ONNX, "-m", HF]
    assert (
        cli_main(
            ["eval", *models, "--set", "json", "--max-new-tokens", "32", "--save-card", str(saved), "--json"]
        )
        == 0
    )
    out = json.loads(capsys.readouterr().out)
    assert [m["id"] for m in out["models"]] == [ONNX, HF] and len(out["items"]) == 6
    for model in out["models"]:
        assert {
            "score",
            "ci",
            "ttft_s",
            "prompt_tokens_per_s",
            "tokens_per_s",
            "load_s",
            "peak_memory_bytes",
        } <= set(model)
    card = json.loads(saved.read_text())
    assert card["set"]["hash"] == sets.load("json").digest and card["machine"]["cores"]
    assert cli_main(["eval", "--repeat", str(saved)]) == 0
    assert "Repeated: the same answers and scores." in capsys.readouterr().err


def test_a_pattern_that_backtracks_for_ever_fails_its_item_at_once() -> None:
    """An uploaded set's regex is run with a time limit: `(a|aa)+$` on 60 a's and a b backtracks through
    more paths than Python's `re` could try in days (the `regex` module gives up at the limit)."""
    from playground.evaluate.checks import check
    from playground.evaluate.sets import EvalItem

    item = EvalItem(prompt="Say a lot of a's.", check="regex", expected="(a|aa)+$")
    verdict = check(item, "a" * 60 + "b")
    assert verdict is not None and not verdict.passed and "backtracks" in verdict.detail
    fine = check(EvalItem(prompt="Say yes.", check="regex", expected=r"^yes\b"), "no\nyes, sure")
    assert fine is not None and fine.passed, "^ matches at a line's start, as before"
