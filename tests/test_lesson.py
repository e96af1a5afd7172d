"""The lesson on the page: each demo tab opens with a paragraph in plain words and a "Try this" that works
offline; a comparison that cannot run here lists every model it needs with its size and how to get it,
and the comparisons that do run here are offered, each labelled."""

from __future__ import annotations

from playground.arena.pairing import PRESETS
from playground.context import AppContext
from playground.lesson import TABS, lesson_markdown, load_lessons
from playground.needs import model_need, preset_needs, preset_problem
from playground.ui.arena_tab import DENSE_VS_MOE, ArenaTab


def test_each_demo_tab_opens_with_its_lesson_and_a_try_this(ctx: AppContext) -> None:
    lessons = load_lessons()
    assert set(lessons) == set(TABS)
    for tab in TABS:
        text = lesson_markdown(tab, ctx.registry)
        assert "**Try this:**" in text and len(lessons[tab].text.split()) < 120, tab
    assert "small language model" in lesson_markdown("instruct")
    assert "image tokens" in lesson_markdown("vision")
    moe = lesson_markdown("moe")
    assert "16 experts, 2 active per token" in moe and "4 experts, 2 active per token" in moe, moe
    assert "two engines" in lesson_markdown("arena")


def test_a_comparison_that_cannot_run_here_lists_every_model_it_needs(ctx: AppContext) -> None:
    dense_vs_moe = next(p for p in PRESETS if p.key == DENSE_VS_MOE)
    needs = {n.name: n for n in preset_needs(ctx.registry, dense_vs_moe)}
    assert set(needs) == {"Phi-3.5-mini-instruct", "Phi-3.5-MoE-instruct"}, "every model, not the first"
    mini, moe = (" ".join(needs[name].ways) for name in ("Phi-3.5-mini-instruct", "Phi-3.5-MoE-instruct"))
    assert "download 2.4 GB here for ONNX Runtime GenAI" in mini and "ollama pull phi3.5" in mini
    assert "download 83.8 GB here for transformers" in moe and "NVIDIA NIM: Set NVIDIA_API_KEY" in moe
    assert model_need(ctx.registry, "smollm2-135m-instruct") is None
    problem = preset_problem(ctx.registry, DENSE_VS_MOE)
    assert problem is not None and "2.4 GB" in problem and "83.8 GB" in problem
    assert preset_problem(ctx.registry, "two-engines") is None


def test_the_arena_offers_what_runs_here_and_says_what_the_rest_needs(ctx: AppContext) -> None:
    arena = lesson_markdown("arena", ctx.registry)
    assert "Phi-3-mini vs Phi-3.5-mini** is not ready here" in arena and "7.6 GB" in arena
    assert "✅ Runs here: **Same model, two engines**" in arena
    _, _, note = ArenaTab(ctx).choose_preset(DENSE_VS_MOE)
    assert note.startswith("⛔") and "83.8 GB" in note and "2.4 GB" in note
    assert "What runs here now" in note and "Same model, two engines" in note
