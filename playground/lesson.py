"""The lesson's paragraph at the top of the Instruct, Vision, MoE and Arena tabs (prompts/lesson.toml):
what the lesson says about the demo in plain words, a "Try this" that works offline, and, on the Arena,
the lesson's own comparisons: those that run here, and for those that do not, every model they need and
how to get it (needs.py). No Gradio here; nothing shown is an answer or a figure no model produced.
"""

from __future__ import annotations

import functools
import tomllib
from dataclasses import dataclass
from pathlib import Path

from .arena.pairing import PRESETS
from .catalog import load_catalog
from .needs import preset_problem
from .prompts import PROMPTS_DIR
from .registry import Registry

LESSON_FILE = PROMPTS_DIR / "lesson.toml"
TABS = ("instruct", "vision", "moe", "arena")
LESSON_PRESETS = ("phi3-vs-phi35", "dense-vs-moe")  # the comparisons the lesson itself makes
DEMO_MOE = "tiny-phimoe-demo"


@dataclass(frozen=True)
class Lesson:
    title: str
    text: str
    try_this: str
    try_note: str


@functools.cache
def load_lessons(path: Path = LESSON_FILE) -> dict[str, Lesson]:
    """Each tab's lesson, with the demo's numbers filled in from the catalog."""
    raw = tomllib.loads(path.read_text(encoding="utf-8"))
    demo = next((e for e in load_catalog() if e.key == DEMO_MOE), None)
    numbers = {
        "demo_experts": demo.experts if demo else "a few",
        "demo_active": demo.experts_active if demo else "some",
    }
    return {
        tab: Lesson(
            str(raw[tab]["title"]),
            str(raw[tab]["text"]).format(**numbers),
            str(raw[tab]["try_this"]),
            str(raw[tab]["try_note"]),
        )
        for tab in TABS
        if tab in raw
    }


def comparisons(registry: Registry) -> str:
    """The lesson's comparisons: each that runs here, labelled; each that does not, with what it needs."""
    lines = []
    for key in LESSON_PRESETS:
        preset = next(p for p in PRESETS if p.key == key)
        problem = preset_problem(registry, key)
        lines.append(problem if problem else f"✅ **{preset.title}** runs here: pick it in Preset.")
    here = [p for p in PRESETS if p.key not in LESSON_PRESETS and preset_problem(registry, p.key) is None]
    lines += [f"✅ Runs here: **{p.title}** ({p.note})" for p in here]
    return "\n\n".join(lines)


def lesson_markdown(tab: str, registry: Registry | None = None) -> str:
    """The tab's paragraph and its "Try this" (and, on the Arena, the comparisons); "" for other tabs."""
    lesson = load_lessons().get(tab)
    if lesson is None:
        return ""
    text = f"**{lesson.title}.** {lesson.text}\n\n**Try this:** `{lesson.try_this}` {lesson.try_note}"
    if tab == "arena" and registry is not None:
        text += "\n\n" + comparisons(registry)
    return text
