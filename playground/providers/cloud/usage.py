"""Token counts when a server sends no usage: the model's own tokenizer where we have it, else a guess."""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ...images import IMAGE_TOKENS_ESTIMATE
from ...types import Message, ModelSpec
from ..local import embedded
from ..local.store import hub_dir

log = logging.getLogger(__name__)
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model")


def tokenizer_folder(spec: ModelSpec, models_dir: Path) -> Path | None:
    """A local folder with this model's tokenizer: configured, the served path, or a downloaded repo."""
    candidates = [spec.extra.get("tokenizer"), spec.extra.get("model")]
    catalog = spec.extra.get("catalog")
    if catalog == embedded.EMBEDDED_KEY:
        candidates.append(str(embedded.hf_folder(models_dir)))
    repo = spec.extra.get("repo")
    if isinstance(repo, str):
        candidates.append(str(hub_dir(models_dir, repo)))
    for candidate in candidates:
        if isinstance(candidate, str) and candidate:
            path = Path(candidate).expanduser()
            if path.is_dir() and any((path / name).is_file() for name in _TOKENIZER_FILES):
                return path
    return None


class TokenCounter:
    """Counts tokens with a tokenizer loaded on first use (offline); None when there is none."""

    def __init__(self, folder: Path | None) -> None:
        self.folder = folder
        self._tokenizer: Any = None
        self._failed = folder is None
        self._lock = threading.Lock()

    def count(self, text: str) -> int | None:
        tokenizer = self._load()
        if tokenizer is None:
            return None
        return len(tokenizer(text, add_special_tokens=False)["input_ids"])

    def count_messages(self, messages: Sequence[Message]) -> int | None:
        tokenizer = self._load()
        if tokenizer is None:
            return None
        chat = [{"role": m.role, "content": m.content} for m in messages]  # the text; images below
        images = IMAGE_TOKENS_ESTIMATE * sum(len(m.images) for m in messages)
        if getattr(tokenizer, "chat_template", None):
            ids = tokenizer.apply_chat_template(chat, tokenize=True, add_generation_prompt=True)
            return images + len(ids["input_ids"] if isinstance(ids, dict) or hasattr(ids, "keys") else ids)
        return images + sum(self.count(m.content) or 0 for m in messages)

    def _load(self) -> Any:
        with self._lock:
            if self._tokenizer is None and not self._failed:
                try:
                    from transformers import AutoTokenizer

                    self._tokenizer = AutoTokenizer.from_pretrained(str(self.folder), local_files_only=True)
                except Exception as exc:  # any failure means "no tokenizer": we fall back to a guess
                    log.info(
                        "no tokenizer in %s (%s): token counts will be rough", self.folder, type(exc).__name__
                    )
                    self._failed = True
            return self._tokenizer


def rough_tokens(text: str) -> int:
    """About four characters per token: the fallback when no tokenizer is known."""
    return max(1, round(len(text) / 4)) if text else 0
