"""The services of one running playground, built once from the settings and shared by every tab."""

from __future__ import annotations

from dataclasses import dataclass

from .catalog import CatalogEntry, load_catalog
from .chat import ChatService
from .conversations import ConversationService
from .history import HistoryStore, open_history
from .prompts import PromptLibrary, load_prompts
from .providers import build_providers
from .registry import Registry
from .settings import Settings


@dataclass(frozen=True)
class AppContext:
    settings: Settings
    catalog: list[CatalogEntry]
    registry: Registry
    chat: ChatService
    prompts: PromptLibrary
    history: HistoryStore
    conversations: ConversationService

    @classmethod
    def create(cls, settings: Settings) -> AppContext:
        catalog = load_catalog()
        registry = Registry(
            build_providers(settings, catalog),
            cache_budget_bytes=int(settings.model_cache_mb * 1e6),
            allow_paths=not settings.public,
        )
        chat = ChatService(registry)
        history = open_history(settings)
        return cls(
            settings, catalog, registry, chat, load_prompts(), history, ConversationService(chat, history)
        )

    def close(self) -> None:
        self.registry.close_all()
        self.history.close()
