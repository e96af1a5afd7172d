"""The vision demonstration model: a tiny Idefics3ForConditionalGeneration with random weights.

No real vision model can be downloaded on a machine without a network, so the Vision tab also offers
this one, built here in seconds from a config (SmolVLM's class, the embedded SmolLM2 tokenizer). Its
answers are gibberish: it shows the mechanism (an image goes through the real processor into the real
model), never what a vision model can read. The weights come from a fixed seed, so every build is the same.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

from ...errors import ConversionError
from . import embedded
from .convert import Progress, _lock_for, _publish, _report

DEMO_KEY = "tiny-vision-demo"
LABEL = "random weights: shows the mechanism, not what a vision model sees"
SEED = 0
IMAGE_TOKEN = "<image>"
SPECIAL_TOKENS = ["<fake_token_around_image>", IMAGE_TOKEN, "<end_of_utterance>", "<global-img>"]
IMAGE_SEQ_LEN = 4  # image tokens per image: (image_size / patch_size)^2 / scale_factor^2 = 16 / 4

# SmolVLM's chat format, taking plain string content too (system prompts, text-only turns).
CHAT_TEMPLATE = (
    "<|im_start|>{% for message in messages %}{{ message['role'] | capitalize }}: "
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
    "{% for part in message['content'] %}{% if part['type'] == 'text' %}{{ part['text'] }}"
    "{% elif part['type'] == 'image' %}{{ '<image>' }}{% endif %}{% endfor %}{% endif %}"
    "<end_of_utterance>\n{% endfor %}{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}"
)


def folder(models_dir: Path) -> Path:
    return models_dir / "demo" / DEMO_KEY


def ensure_folder(models_dir: Path, progress: Progress | None = None) -> Path:
    """The demo model's folder, built once (a few seconds once the embedded tokenizer is there)."""
    out = folder(models_dir)
    if _complete(out):
        return out
    with _lock_for(out):
        if _complete(out):
            return out
        tokenizer_dir = embedded.ensure_hf_folder(models_dir, progress=progress)
        _report(progress, 0.8, "Building the demonstration vision model (random weights)")
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=out.parent))
        try:
            build(tokenizer_dir, tmp)
        except Exception as exc:  # transformers or torch: the build cannot be made here
            shutil.rmtree(tmp, ignore_errors=True)
            raise ConversionError(
                f"Could not build the demonstration vision model: {exc}. Check that torch and transformers "
                "are installed (`make run` sets them up)."
            ) from exc
        return _publish(tmp, out)


def _config(tokenizer: Any) -> Any:
    """The tiny model's shape: a 2-layer vision encoder and a 2-layer llama text model."""
    from transformers import Idefics3Config

    image_token_id = tokenizer.convert_tokens_to_ids(IMAGE_TOKEN)
    assert isinstance(image_token_id, int)
    return Idefics3Config(
        image_token_id=image_token_id,
        scale_factor=2,
        vision_config={
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "image_size": 64,
            "patch_size": 16,
        },
        text_config={
            "model_type": "llama",
            "vocab_size": len(tokenizer),
            "hidden_size": 64,
            "intermediate_size": 128,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "max_position_embeddings": 2048,
            "bos_token_id": tokenizer.bos_token_id,
            "eos_token_id": tokenizer.eos_token_id,
            "pad_token_id": tokenizer.pad_token_id,
        },
        tie_word_embeddings=False,
    )


def _complete(out: Path) -> bool:
    return (out / "config.json").is_file() and (out / "processor_config.json").is_file()


def build(tokenizer_dir: Path, out: Path, *, seed: int = SEED) -> Path:
    """Write a tiny Idefics3 model with its processor (PIL backend, no torchvision) to `out`."""
    import torch
    from transformers import (
        AutoTokenizer,
        Idefics3ForConditionalGeneration,
        Idefics3ImageProcessorPil,
        Idefics3Processor,
    )

    tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_dir))
    tokenizer.add_special_tokens({"additional_special_tokens": SPECIAL_TOKENS})
    tokenizer.chat_template = CHAT_TEMPLATE
    config = _config(tokenizer)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Idefics3ForConditionalGeneration(config).eval()
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    image_processor = Idefics3ImageProcessorPil(
        size={"longest_edge": 128}, max_image_size={"longest_edge": 64}, do_image_splitting=False
    )
    processor = Idefics3Processor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        image_seq_len=IMAGE_SEQ_LEN,
        chat_template=CHAT_TEMPLATE,
    )
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(out))
    processor.save_pretrained(str(out))
    (out / "README.md").write_text(
        f"# {DEMO_KEY}\n\nA tiny Idefics3ForConditionalGeneration (SmolVLM's class: a 2-layer vision encoder, "
        f"a 2-layer llama text model, {IMAGE_SEQ_LEN} tokens per image) built by SLM Playground with the "
        f"SmolLM2 tokenizer.\n\n{LABEL[0].upper()}{LABEL[1:]}.\n",
        encoding="utf-8",
    )
    return out
