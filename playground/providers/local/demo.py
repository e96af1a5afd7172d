"""The demonstration mixture-of-experts model: a tiny PhimoeForCausalLM that the project builds itself.

It has Phi-3.5-MoE's class and routing (top-2 of its experts per token in every layer) with random
weights and the embedded model's tokenizer (SmolLM2's), so the expert map works offline. Its answers are
gibberish and its experts learned nothing: it shows the mechanism, not learned specialisation.
Built in a second or two into the models folder (after the embedded model's transformers folder, which
is rebuilt once from the packaged GGUF file), the same weights every time (a fixed seed).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from ...errors import ConversionError
from . import embedded
from .convert import Progress, _lock_for, _publish, _report

DEMO_KEY = "tiny-phimoe-demo"
LABEL = "random weights: this shows the mechanism, not learned specialisation"
SEED = 9
LAYERS = 2
HIDDEN = 64
EXPERTS = 4
TOP_K = 2
CONTEXT = 2048


def folder(models_dir: Path) -> Path:
    return models_dir / "demo" / DEMO_KEY


def ensure_folder(models_dir: Path, progress: Progress | None = None) -> Path:
    """The demo model's transformers folder, built once (config, random weights, tokenizer)."""
    out = folder(models_dir)
    if (out / "config.json").is_file():
        return out
    with _lock_for(out):
        if (out / "config.json").is_file():
            return out
        tokenizer_folder = embedded.ensure_hf_folder(models_dir, progress=progress)
        _report(progress, 0.8, "Building the demonstration MoE model (random weights)")
        try:
            tmp = _build(tokenizer_folder, out.parent)
        except Exception as exc:  # transformers or torch: the build cannot be made here
            raise ConversionError(
                f"Could not build the demonstration MoE model: {exc}. Check that torch and transformers "
                "are installed (`make run` sets them up)."
            ) from exc
        return _publish(tmp, out)


def _build(tokenizer_folder: Path, parent: Path) -> Path:
    import torch
    from transformers import AutoTokenizer, GenerationConfig, PhimoeConfig, PhimoeForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_folder))
    eos = tokenizer.convert_tokens_to_ids("<|im_end|>")
    eos = eos if isinstance(eos, int) and eos != tokenizer.unk_token_id else tokenizer.eos_token_id
    config = PhimoeConfig(
        vocab_size=len(tokenizer),
        hidden_size=HIDDEN,
        intermediate_size=2 * HIDDEN,
        num_hidden_layers=LAYERS,
        num_attention_heads=4,
        num_key_value_heads=2,
        num_local_experts=EXPERTS,
        num_experts_per_tok=TOP_K,
        max_position_embeddings=CONTEXT,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=eos,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
    )
    config.architectures = ["PhimoeForCausalLM"]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(SEED)
        model = PhimoeForCausalLM(config).eval()
    model.generation_config = GenerationConfig(
        bos_token_id=tokenizer.bos_token_id, eos_token_id=eos, pad_token_id=tokenizer.pad_token_id
    )
    parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=parent))
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    (tmp / "README.md").write_text(
        f"# {DEMO_KEY}\n\nA tiny PhimoeForCausalLM ({LAYERS} layers, hidden {HIDDEN}, {EXPERTS} experts, "
        f"top-{TOP_K}) built by SLM Playground with the SmolLM2 tokenizer.\n\n{LABEL[0].upper()}{LABEL[1:]}.\n",
        encoding="utf-8",
    )
    return tmp
