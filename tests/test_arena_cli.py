"""`python -m playground compare` on the embedded model, ONNX Runtime GenAI against transformers (offline)."""

from __future__ import annotations

import json
from pathlib import Path

from playground.arena.library import load_arena_prompts, read_prompt_file
from playground.settings import Settings
from tests.support import QUESTION
from tests.test_cli import cli

ONNX, HF = "smollm2-135m-instruct@onnx", "smollm2-135m-instruct@transformers"


def test_compare_prints_json_lines_per_prompt_per_side(settings: Settings, tmp_path: Path) -> None:
    prompts = tmp_path / "prompts.txt"
    prompts.write_text(f"# two prompts\n{QUESTION}\n\n请用一句话介绍一下你自己。\n", encoding="utf-8")
    args = ("compare", "-m", ONNX, "-m", HF, "--prompts", str(prompts), "--temperature", "0")
    result = cli(settings, *args, "--max-new-tokens", "24", "--json")
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(r["index"], r["side"], r["model"]) for r in rows] == [
        (0, "a", ONNX),
        (0, "b", HF),
        (1, "a", ONNX),
        (1, "b", HF),
    ]
    assert "Paris" in rows[0]["text"] and "Paris" in rows[1]["text"]
    for row in rows:
        assert row["text"] and row["error"] == ""
        assert row["metrics"]["completion_tokens"] > 0 and row["metrics"]["tokens_per_s"] > 0
        assert row["metrics"]["finish_reason"] in ("stop", "length")


def test_compare_prints_a_table_and_refuses_one_model(settings: Settings) -> None:
    result = cli(
        settings, "compare", "-m", ONNX, "-m", HF, QUESTION, "--temperature", "0", "--max-new-tokens", "12"
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split()[:3] == ["#", "side", "model"] and "tok/s" in lines[0]
    assert lines[2].split()[1:3] == ["A", ONNX] and lines[3].split()[1:3] == ["B", HF]
    alone = cli(settings, "compare", "-m", ONNX, QUESTION)
    assert alone.returncode == 1 and "two models" in alone.stderr


def test_the_library_has_a_bilingual_phi_set_and_prompt_files_load() -> None:
    library = load_arena_prompts()
    classic = library["01-phi3-vs-phi35-bilingual"]
    assert classic.languages() == ["en", "zh"] and len(classic.prompts) >= 8
    assert sum(p.lang == "zh" for p in classic.prompts) == sum(p.lang == "en" for p in classic.prompts)
    assert all(s.prompts and s.title for s in library.values()) and len(library) >= 4
    from playground.arena.library import ARENA_DIR

    assert read_prompt_file(ARENA_DIR / "02-reasoning.toml") == list(library["02-reasoning"].prompts)


def test_prompt_files_in_json_lines_and_bad_ones(tmp_path: Path) -> None:
    import pytest

    from playground.errors import ConfigError

    good = tmp_path / "p.jsonl"
    good.write_text('{"text": "one"}\n"two"\n', encoding="utf-8")
    assert [p.text for p in read_prompt_file(good)] == ["one", "two"]
    bad = tmp_path / "bad.jsonl"
    bad.write_text("{not json\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"bad\.jsonl:1 is not JSON"):
        read_prompt_file(bad)
    empty = tmp_path / "empty.txt"
    empty.write_text("# nothing\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="has no prompts"):
        read_prompt_file(empty)
