"""`python -m playground chat -m MODEL --image PATH [--image PATH ...] PROMPT`, as a user runs it."""

from __future__ import annotations

import json
from pathlib import Path

from playground.providers.local import demo_vision
from playground.settings import Settings
from playground.vision_examples import load_vision_examples
from tests.test_cli import cli

DEMO = "tiny-vision-demo@transformers"


def _ask(settings: Settings, *extra: str) -> dict[str, object]:
    result = cli(
        settings, "chat", "-m", DEMO, "--json", "--temperature", "0", "--max-new-tokens", "4", *extra
    )
    assert result.returncode == 0, result.stderr
    return dict(json.loads(result.stdout.strip().splitlines()[-1]))


def test_images_reach_a_vision_model_from_the_command_line(
    settings: Settings, embedded_hf_folder: Path
) -> None:
    frames = [str(p) for p in load_vision_examples()[-1].images]
    plain = _ask(settings, "Describe.")
    one = _ask(settings, "--image", frames[0], "Describe.")
    two = _ask(settings, "--image", frames[0], "--image", frames[1], "Describe.")
    tokens = [int(r["metrics"]["prompt_tokens"]) for r in (plain, one, two)]  # type: ignore[index]
    per_image = demo_vision.IMAGE_SEQ_LEN
    assert tokens[1] - tokens[0] >= per_image and tokens[2] - tokens[1] >= per_image, (
        "each image adds its tokens"
    )


def test_a_text_only_model_refuses_an_image_and_a_bad_file_is_named(
    settings: Settings, tmp_path: Path
) -> None:
    chart = str(load_vision_examples()[1].images[0])
    refused = cli(settings, "chat", "-m", "smollm2-135m-instruct@onnx", "--image", chart, "What is this?")
    assert refused.returncode != 0 and refused.stdout == ""
    assert "does not take images" in refused.stderr and "pick a vision model" in refused.stderr
    fake = tmp_path / "notes.png"
    fake.write_text("not a picture")
    bad = cli(settings, "chat", "-m", DEMO, "--image", str(fake), "What is this?")
    assert bad.returncode != 0 and "'notes.png' is not an image" in bad.stderr
