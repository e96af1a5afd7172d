"""One provider per endpoint: its models (configured, from the catalog, discovered), availability, loading."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from ...catalog import CatalogEntry
from ...errors import ModelNotFoundError, PlaygroundError, ProviderError
from ...settings import Settings
from ...types import Availability, ModelSpec
from ..base import ChatModel
from .discovery import Discovery, Found, Listing, ollama_tags, openai_models
from .endpoint import EndpointSpec
from .failures import cloud_errors
from .mapping import CatalogIndex, build_specs
from .model import CloudModel, Connection, RetryPolicy, error_context
from .usage import TokenCounter, tokenizer_folder

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ProviderStatus:
    """What the Providers panel shows for one provider. Never holds a key."""

    name: str
    label: str
    kind: str
    url: str
    key_env: str | None
    key_set: bool
    configured: bool
    reachable: bool | None
    models: tuple[str, ...]
    error: str = ""
    note: str = ""
    checked_at: float | None = None

    def to_dict(self) -> dict[str, object]:
        data = asdict(self)
        data["models"] = list(self.models)
        return data


class CloudProvider:
    """An OpenAI-compatible, Ollama or Azure AI Inference endpoint behind the Provider protocol."""

    def __init__(
        self,
        endpoint: EndpointSpec,
        *,
        settings: Settings,
        catalog: Sequence[CatalogEntry],
        retry: RetryPolicy | None = None,
    ) -> None:
        self.name = endpoint.name
        self.endpoint = endpoint
        self._env = settings.env
        self._timeout_s = settings.timeout_s
        self._discovery_timeout_s = min(settings.discovery_timeout_s, settings.timeout_s)
        self._models_dir = settings.models_dir
        self._retry = retry or RetryPolicy()
        self._index = CatalogIndex(catalog, endpoint)
        self._discovery = Discovery(self._discover) if endpoint.discovers else None
        self._counters: dict[str, TokenCounter] = {}

    # keys ----------------------------------------------------------------------------------------
    def key(self) -> str | None:
        return self.endpoint.key(self._env)

    def needs_key(self) -> bool:
        """A key is required and none is set."""
        return self.endpoint.key_required and not self.endpoint.keyless and not self.key()

    # the Provider protocol -----------------------------------------------------------------------
    def specs(self) -> list[ModelSpec]:
        listing = self.listing()
        found = listing.models if listing is not None and listing.ok else ()
        return build_specs(self.endpoint, self._index, discovered=found)

    def availability(self, spec: ModelSpec) -> Availability:
        if self.needs_key():
            return Availability.no(
                f"set {self.endpoint.api_key_env} (in the environment or .env)", needs_key=True
            )
        listing = self.listing()
        if listing is None:
            return Availability.ok()
        if not listing.ok:
            return Availability.no(listing.error.rstrip("."))
        wire = str(spec.extra.get("model", spec.source))
        if any(self._index.same(m.id, wire) for m in listing.models):
            return Availability.ok()
        if self.endpoint.kind == "ollama":
            return Availability.no(f"not pulled yet: run `ollama pull {wire}`")
        return Availability.no(f"{self.endpoint.title} does not list {wire} now")

    def load(self, spec: ModelSpec) -> ChatModel:
        """A model object; no key is checked here (a visitor may bring one): calls fail with an AuthError."""
        return self._model_class()(spec, self.connection(), self._counter(spec))

    # the Providers panel -------------------------------------------------------------------------
    def listing(self) -> Listing | None:
        """What the endpoint lists (fetched once, on first use); None when nothing is fetched."""
        if self._discovery is None or self.needs_key():
            return None
        return self._discovery.get()

    def refresh(self) -> ProviderStatus:
        """Ask the endpoint again for its models."""
        if self._discovery is not None and not self.needs_key():
            self._discovery.refresh()
        return self.status()

    def status(self) -> ProviderStatus:
        listing = self.listing()
        configured = not self.needs_key()
        if not configured:
            error = f"set {self.endpoint.api_key_env} (in the environment or .env)"
        else:
            error = listing.error if listing is not None else ""
        return ProviderStatus(
            name=self.name,
            label=self.endpoint.title,
            kind=self.endpoint.kind,
            url=self.endpoint.public_url,
            key_env=self.endpoint.api_key_env,
            key_set=self.key() is not None,
            configured=configured,
            reachable=None if listing is None else listing.ok,
            models=tuple(s.id for s in self.specs()),
            error=error,
            note=self.endpoint.note,
            checked_at=listing.checked_at if listing is not None else None,
        )

    # helpers -------------------------------------------------------------------------------------
    def connection(self, *, timeout_s: float | None = None) -> Connection:
        env = self._env
        return Connection(
            endpoint=self.endpoint,
            key=self.key(),
            headers=self.endpoint.resolved_headers(env),
            header_secrets=tuple(self.endpoint.header_secrets(env)),
            timeout_s=timeout_s or self._timeout_s,
            retry=self._retry,
            models_dir=self._models_dir,
            available=self._available,
        )

    def _model_class(self) -> type[CloudModel]:
        if self.endpoint.kind == "azure-ai":
            from .azure_inference import AzureInferenceModel

            return AzureInferenceModel
        from .openai_compat import OpenAICompatModel

        return OpenAICompatModel

    def _counter(self, spec: ModelSpec) -> TokenCounter:
        if spec.id not in self._counters:
            self._counters[spec.id] = TokenCounter(tokenizer_folder(spec, self._models_dir))
        return self._counters[spec.id]

    def _available(self) -> list[str]:
        """Model ids for a 404 message: asked again where the endpoint lists them, else as configured."""
        if self._discovery is not None:
            listing = self._discovery.refresh()
            if not listing.ok:
                raise ProviderError(listing.error, provider=self.name)
            return list(listing.ids)
        return [m.id for m in self.endpoint.models] + [wire for wire, _ in self._index.listed()]

    def _discover(self) -> list[Found]:
        connection = self.connection(timeout_s=self._discovery_timeout_s)
        ctx = error_context(connection, model="", timeout_env="PLAYGROUND_DISCOVERY_TIMEOUT_S")
        try:
            with cloud_errors(ctx):
                return self._fetch(connection)
        except ModelNotFoundError:
            where = "PLAYGROUND_AZURE_AI_DEPLOYMENTS" if self.name == "azure-ai" else "its `models` list"
            raise ProviderError(
                f"{self.endpoint.title} does not say which models it serves (404): name them in {where}.",
                provider=self.name,
            ) from None
        except PlaygroundError as exc:
            log.info("%s: discovery failed: %s", self.name, exc)
            raise

    def _fetch(self, connection: Connection) -> list[Found]:
        timeout = self._discovery_timeout_s
        if self.endpoint.kind == "ollama":
            import httpx2

            with httpx2.Client(base_url=self.endpoint.display_url, timeout=timeout) as http:
                return ollama_tags(http, self.endpoint.matches)
        if self.endpoint.kind == "azure-ai":
            from .azure_inference import azure_client

            with azure_client(connection, timeout_s=timeout) as client:
                info = client.get_model_info()
                return [Found(str(info.model_name))] if self.endpoint.matches(str(info.model_name)) else []
        from .openai_compat import openai_client

        with openai_client(connection, timeout_s=timeout) as client:
            return openai_models(client, self.endpoint.matches)
