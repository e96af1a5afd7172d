"""Fidelity: one text fed through the embedded model's two local variants (ONNX Runtime GenAI int4 and
transformers float32), in their worker processes, compared token by token."""

from __future__ import annotations

import html
import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
from playwright.sync_api import Page, expect

from playground.context import AppContext
from playground.errors import InvalidOptionsError
from playground.fidelity import compare, measure
from playground.providers.base import Forced
from playground.settings import Settings
from playground.ui.arena_display import BLIND, NAMED
from playground.ui.arena_fidelity import REFERENCES, FidelityPanel
from tests.browser import ARTIFACTS, WIDE, open_page
from tests.test_cli import cli

ONNX = "smollm2-135m-instruct@onnx"
HF = "smollm2-135m-instruct@transformers"
TEXT = "The capital of France is Paris. It is known for the Eiffel Tower, its museums and its cafés."


@pytest.mark.parametrize("model", [ONNX, HF])
def test_a_model_against_itself_is_0_kl_and_always_agrees(ctx: AppContext, model: str) -> None:
    result = measure(ctx.registry, model, model, TEXT)
    assert len(result.tokens) == result.text_tokens - 1 > 10, "every token but the first is predicted"
    assert result.mean_kl == 0 == result.max_kl and result.same_top == 1.0
    assert result.perplexity_model == result.perplexity_reference > 1
    assert [t.position for t in result.tokens] == list(range(1, len(result.tokens) + 1))
    assert "".join(t.token for t in result.tokens) == TEXT[len("The") :], "the tokens spell the text"


def test_int4_against_float32_differs_and_the_sums_add_up(ctx: AppContext) -> None:
    result = measure(ctx.registry, ONNX, HF, TEXT)
    assert result.model == ONNX and result.reference == HF
    kls = [t.kl for t in result.tokens]
    assert result.mean_kl > 0 and all(kl >= 0 for kl in kls)
    assert result.mean_kl == pytest.approx(sum(kls) / len(kls)) and result.max_kl == max(kls)
    agree = [t.same_top for t in result.tokens]
    assert result.same_top == pytest.approx(sum(agree) / len(agree)) and 0 < result.same_top <= 1
    assert all(t.same_top == (t.top_model == t.top_reference) for t in result.tokens)
    assert result.perplexity_model != result.perplexity_reference
    assert result.perplexity_reference == pytest.approx(
        math.exp(-sum(t.logprob_reference for t in result.tokens) / len(result.tokens))
    )


def test_the_worker_returns_what_the_engine_computes(ctx: AppContext, in_process: object) -> None:
    """The per-position log-probabilities from the worker process are the engine's own, unchanged."""
    with ctx.registry.lease(ctx.registry.resolve(ONNX)) as lease:
        remote = lease.model.teacher_forced(TEXT, 8)  # type: ignore[attr-defined]
    local = in_process(ONNX).teacher_forced(TEXT, 8)  # type: ignore[operator]
    assert remote.ids == local.ids and len(remote.ids) == 8 and remote.total > 8
    assert np.array_equal(remote.logprobs, local.logprobs)
    assert np.allclose(np.exp(local.logprobs).sum(axis=-1), 1, atol=1e-4), "each row is a distribution"


def test_what_cannot_be_compared_says_why(ctx: AppContext) -> None:
    with pytest.raises(InvalidOptionsError, match="text is empty"):
        measure(ctx.registry, ONNX, HF, "  ")
    with pytest.raises(InvalidOptionsError, match="runs elsewhere"):
        measure(ctx.registry, ONNX, "phi-3.5-moe@nvidia", TEXT)
    with pytest.raises(InvalidOptionsError, match="too short"):
        measure(ctx.registry, ONNX, ONNX, "Hi")
    one = Forced((1, 2, 3), ("a", "b", "c"), np.log(np.full((3, 4), 0.25, dtype=np.float32)), ("a",) * 3, 3)
    other = Forced((1, 5, 3), ("a", "x", "c"), one.logprobs, one.top, 3)
    with pytest.raises(InvalidOptionsError, match="do not share a tokenizer"):
        compare(one, other)
    padded = Forced(one.ids, one.tokens, np.log(np.full((3, 6), 1 / 6, dtype=np.float32)), one.top, 3)
    result = compare(one, padded)
    assert result.mean_kl == pytest.approx(0, abs=1e-6) and "vocabularies differ" in result.note


def test_the_cli_prints_json(settings: Settings, tmp_path: Path) -> None:
    text = tmp_path / "text.txt"
    text.write_text(TEXT)
    result = cli(settings, "fidelity", "-m", ONNX, "-m", ONNX, "--text", str(text), "--limit", "12", "--json")
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["mean_kl"] == 0 and out["same_top_percent"] == 100
    assert len(out["tokens"]) == 11 and out["tokens"][0]["position"] == 1
    assert "first 12 of the text's" in out["note"]
    wrong = cli(settings, "fidelity", "-m", ONNX, "--text", str(text))
    assert wrong.returncode == 1 and "two models (-m A -m REFERENCE)" in wrong.stderr


def test_the_arena_panel_shows_for_two_local_sides_and_draws_each_token(ctx: AppContext) -> None:
    panel = FidelityPanel(ctx)
    assert panel.available(NAMED, ONNX, HF) and not panel.available(BLIND, ONNX, HF)
    assert not panel.available(NAMED, ONNX, "phi-3.5-moe@nvidia"), "a side run elsewhere: no panel"
    summary, tokens, download = panel.compare(ONNX, HF, TEXT + " <b>&", REFERENCES[0])
    assert "Mean KL" in summary and "same top token at" in summary and ONNX in summary
    assert "&lt;" in tokens and "<b>" not in tokens, "every token is escaped"
    shown = html.unescape(re.sub(r"<[^>]+>", "", tokens))
    assert shown == (TEXT + " <b>&")[len("The") :], "every token but the first, in order"
    file = download.value["path"] if isinstance(download.value, dict) else download.value
    saved = json.loads(Path(file).read_text())  # what `fidelity --json` prints
    assert saved["model"] == ONNX and saved["reference"] == HF and download.visible is True
    assert (
        len(saved["tokens"]) == tokens.count('<span class="fid-token')
        and f"{saved['mean_kl']:.4f}" in summary
    )
    swapped, _, _ = panel.compare(ONNX, HF, TEXT, REFERENCES[1])
    assert f"reference {ONNX}" in swapped
    refused, nothing, hidden = panel.compare(ONNX, HF, "", REFERENCES[0])
    assert "text is empty" in refused and nothing == "" and hidden.visible is False


@pytest.mark.browser
def test_compare_token_by_token_in_the_arena_page(page: Page, app_url: str) -> None:
    open_page(page, app_url, "Arena", "arena", WIDE)
    page.get_by_text("Compare token by token (how much a variant changes the model)").click()
    page.click("#arena-fidelity-run")
    expect(page.locator("#arena-fidelity-summary")).to_contain_text("Mean KL", timeout=60_000)
    expect(page.locator("#arena-fidelity-summary")).to_contain_text("same top token at")
    assert page.locator("#arena-fidelity-tokens .fid-token").count() > 20
    expect(page.locator("#arena-fidelity-download")).to_be_visible()
    page.locator("#arena-fidelity").scroll_into_view_if_needed()
    page.locator("#arena-fidelity").screenshot(path=str(ARTIFACTS / "arena-fidelity.png"))
    page.get_by_label("Blind").check()
    expect(page.locator("#arena-fidelity")).to_be_hidden(timeout=15_000)
