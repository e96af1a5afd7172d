"""How much quantization changes the model (issue 18): one text through two local variants of the
embedded model, token by token, with the real engines, and `python -m playground fidelity`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from playground.context import AppContext
from playground.errors import InvalidOptionsError
from playground.fidelity import Fidelity, compare
from playground.providers.local.worker import load_engine
from playground.settings import Settings
from tests.test_cli import cli

TEXT = (
    "The lighthouse keeper climbed the stairs every evening to light the lamp. Ships passed safely "
    "through the narrow strait, and the town below slept without fear of the rocks."
)
INT4, FLOAT32 = "smollm2-135m-instruct@onnx", "smollm2-135m-instruct@transformers"


def engine(ctx: AppContext, ref: str) -> object:
    spec = ctx.registry.resolve(ref)
    return load_engine(ctx.registry.providers[spec.provider].recipe(spec))  # type: ignore[attr-defined]


@pytest.fixture(scope="module")
def engines(ctx: AppContext) -> dict[str, object]:
    loaded = {ref: engine(ctx, ref) for ref in (INT4, FLOAT32)}
    yield loaded  # type: ignore[misc]
    for each in loaded.values():
        each.close()  # type: ignore[attr-defined]


@pytest.mark.parametrize("ref", [INT4, FLOAT32])
def test_a_model_against_itself_is_zero_kl_and_full_agreement(engines: dict[str, object], ref: str) -> None:
    result = compare(engines[ref], engines[ref], TEXT, (ref, ref))
    assert len(result.positions) > 20
    assert result.mean_kl == pytest.approx(0.0, abs=1e-6) and result.same_top == 1.0
    assert result.perplexity() == pytest.approx(result.perplexity(reference=True))


def test_int4_against_float32_is_above_zero(engines: dict[str, object]) -> None:
    result: Fidelity = compare(engines[INT4], engines[FLOAT32], TEXT, (INT4, FLOAT32))
    assert result.mean_kl > 0.01 and 0.0 < result.same_top < 1.0
    assert all(p.kl >= 0 for p in result.positions)
    assert 1.0 < result.perplexity(reference=True) < result.perplexity() < 1000
    assert "".join(p.text for p in result.positions) == TEXT[len("The") :]


def test_two_tokenizers_are_one_clear_message(ctx: AppContext, engines: dict[str, object]) -> None:
    class Other:
        def encode(self, text: str) -> list[int]:
            return [1, 2, 3]

    with pytest.raises(InvalidOptionsError, match="do not share a tokenizer"):
        compare(engines[INT4], Other(), TEXT, (INT4, "other"))
    with pytest.raises(InvalidOptionsError, match="too short"):
        compare(engines[INT4], engines[INT4], "The", (INT4, INT4))


def test_the_cli_prints_every_token_in_json(settings: Settings, tmp_path: Path) -> None:
    text = tmp_path / "text.txt"
    text.write_text(TEXT)
    result = cli(settings, "fidelity", "-m", INT4, "-m", FLOAT32, "--text", str(text), "--json")
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["variant"] == INT4 and out["reference"] == FLOAT32 and out["tokens"] == len(out["positions"])
    assert out["mean_kl"] > 0 and 0 < out["same_top"] < 1
    assert {"text", "id", "kl", "same_top", "top", "reference_top", "logprob", "reference_logprob"} == set(
        out["positions"][0]
    )
    one = cli(settings, "fidelity", "-m", INT4, "--text", str(text))
    assert one.returncode != 0 and "takes two models" in one.stderr
