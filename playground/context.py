"""The services of one running playground, built once from the settings and shared by every tab."""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path

from . import zerogpu
from .answers import AnswerService
from .arena import sync
from .catalog import CatalogEntry, load_catalog
from .chat import ChatService
from .conversations import ConversationService
from .errors import PlaygroundError
from .evaluate.service import EvalService
from .history import HistoryStore, open_history
from .prompts import PromptLibrary, load_prompts
from .providers import build_providers
from .public.address import request_address
from .registry import Offer, Registry
from .secret_urls import install_log_redaction
from .settings import Settings
from .types import Sdk

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AppContext:
    settings: Settings
    catalog: list[CatalogEntry]
    registry: Registry
    chat: ChatService
    prompts: PromptLibrary
    history: HistoryStore
    conversations: ConversationService
    answers: AnswerService  # the one way to an answer: every tab, /chat, the arena, the CLI
    evals: EvalService  # evaluation runs (the Evaluate tab, `python -m playground eval`)
    arena_sync: sync.ArenaSync | None = None  # arena votes pushed to PLAYGROUND_DATASET

    @classmethod
    def create(cls, settings: Settings) -> AppContext:
        install_log_redaction()  # URL credentials never reach a log line (httpx logs every URL)
        settings = _on_zerogpu(settings)
        catalog = load_catalog()
        if settings.space_id:
            _on_space(settings, catalog)
        registry = Registry(
            build_providers(settings, catalog),
            cache_budget_bytes=int(settings.model_cache_mb * 1e6),
            allow_paths=not settings.public,
            offer=Offer.from_settings(settings),  # public mode: the models a visitor may pick
        )
        limits = settings.limits
        image_max_bytes = int(limits.image_mb * 1e6)
        chat = ChatService(
            registry,
            image_max_bytes=image_max_bytes,
            prompt_chars=limits.prompt_chars,
            max_new_tokens=limits.max_new_tokens,
        )
        history = open_history(settings)
        answers = AnswerService(chat, provider_concurrency=limits.provider_concurrency)
        if settings.zerogpu:
            _load_for_zerogpu(registry)
        return cls(
            settings,
            catalog,
            registry,
            chat,
            load_prompts(),
            history,
            ConversationService(history, image_max_bytes=image_max_bytes),
            answers,
            EvalService(
                answers, history, limits=settings.eval_limits, in_process=not settings.engine_processes
            ),
            _arena_sync(settings, history),
        )

    def note_address(self, owner: str, request: object | None) -> None:
        """Tie a visitor id to the client address of its request (a handler's `gr.Request`), so that
        the history it writes also counts per address (PLAYGROUND_ADDRESS_HISTORY_MB, public mode)."""
        if request is not None and self.history.quota.addresses.limit is not None:
            trust = self.settings.limits.trust_forwarded
            self.history.quota.addresses.note(owner, request_address(request, trust_forwarded=trust))

    def close(self) -> None:
        if self.arena_sync is not None:
            self.arena_sync.close()
        self.registry.close_all()
        self.history.close()


def _on_zerogpu(settings: Settings) -> Settings:
    """On ZeroGPU, engines run in this process (a spaces.GPU call forks it, and the fork must find the
    model), and `spaces` is imported now, on the main thread, before any model."""
    if not settings.zerogpu:
        return settings
    zerogpu.activate(True)
    if settings.engine_processes:
        log.info(
            "ZeroGPU: engines run in the app's process (PLAYGROUND_ENGINE_PROCESSES=0), as spaces.GPU needs"
        )
        settings = dataclasses.replace(settings, engine_processes=False)
    return settings


def _on_space(settings: Settings, catalog: list[CatalogEntry]) -> None:
    """A line saying what this Space runs, and the models its build preloaded made ready."""
    from .space import preloaded

    log.info(
        "Space %s: public mode %s, ZeroGPU %s, arena votes %s; playground package at %s",
        settings.space_id,
        "on" if settings.public else "off (PLAYGROUND_PUBLIC=0)",
        "yes" if settings.zerogpu else "no",
        f"kept in {settings.dataset}" if settings.dataset else "reset on restart (no PLAYGROUND_DATASET)",
        Path(__file__).resolve().parent,
    )
    try:
        preloaded.adopt(settings.models_dir, catalog)
    except OSError as exc:
        log.error("preloaded models could not be linked into %s: %s", settings.models_dir, exc)


def _load_for_zerogpu(registry: Registry) -> None:
    """Load the ready hub models on transformers now, in the main process and thread: spaces.GPU forks
    this process for each answer, and only what is loaded before reaches the GPU."""
    for row in registry.rows():
        spec = row.spec
        on_gpu = spec.local and spec.sdk is Sdk.TRANSFORMERS
        if not on_gpu or not row.availability.available or "repo" not in spec.extra:
            continue
        try:
            registry.lease(spec).release()  # loaded now; stays loaded until evicted
            log.info("ZeroGPU: %s loaded before serving", spec.id)
        except PlaygroundError as exc:
            log.error("ZeroGPU: %s not loaded: %s", spec.id, exc)


def _arena_sync(settings: Settings, history: HistoryStore) -> sync.ArenaSync | None:
    """Arena votes pushed to the owner's dataset and read back, when one is named."""
    if not settings.dataset:
        return None
    try:
        return sync.start(settings.dataset, settings.hf_token, history, settings.data_dir / "arena-sync")
    except PlaygroundError:
        raise
    except Exception as exc:  # the hub unreachable or refusing: the Space still serves, votes reset
        log.error("arena votes will not be kept: the dataset %s cannot be used (%s)", settings.dataset, exc)
        return None
