"""A key set in the environment (or typed by a visitor) appears in no log record, error text or payload."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable

import pytest

from playground.catalog import load_catalog
from playground.codegen import snippet
from playground.errors import PlaygroundError
from playground.options import GenerationOptions
from playground.providers import build_providers
from playground.providers.cloud import CloudProvider, provider_statuses
from playground.registry import Registry
from playground.settings import Settings
from tests.cloud.fake_server import FakeServer
from tests.cloud.helpers import ASK, answer, served_model
from tests.secret_forms import leaked
from tests.support import loaded

ENV_KEY = "sk-env-SECRET-4f9a2c7e1b"
AZURE_KEY = "azure-SECRET-77aa88bb"
VISITOR_KEY = "nvapi-visitor-SECRET-31d5"
LOGGERS = ("", "openai", "httpx", "httpx2", "httpcore", "azure", "playground")


def _texts(caplog: pytest.LogCaptureFixture) -> list[str]:
    found = []
    for record in caplog.records:
        found += [record.getMessage(), repr(record.args), record.exc_text or "", str(record.__dict__)]
    return found


def test_no_key_reaches_logs_errors_or_payloads(
    cloud_settings: Callable[..., Settings], fake: FakeServer, caplog: pytest.LogCaptureFixture
) -> None:
    for name in LOGGERS:
        caplog.set_level(logging.DEBUG, logger=name)
    errors: list[str] = []
    texts: list[str] = []
    payloads: list[str] = []

    def registry_for(scenario: str) -> Registry:
        url = fake.url(scenario)
        settings = cloud_settings(
            OPENAI_BASE_URL=url,
            OPENAI_API_KEY=ENV_KEY,
            AZURE_AI_CHAT_ENDPOINT=url,
            AZURE_AI_CHAT_KEY=AZURE_KEY,
            PLAYGROUND_AZURE_AI_DEPLOYMENTS="phi-4",
            NVIDIA_BASE_URL=url,
            PLAYGROUND_TIMEOUT_S="1",
        )
        return Registry(build_providers(settings, load_catalog()))

    for scenario in ("s401", "s404", "s500", "hang", "drop", "ok"):
        registry = registry_for(scenario)
        openai_compatible = registry.providers["openai-compatible"]
        assert isinstance(openai_compatible, CloudProvider)
        visitor = loaded(registry, "phi-4-mini@nvidia").with_api_key(VISITOR_KEY)
        for model in (served_model(openai_compatible, "alpha"), loaded(registry, "phi-4@azure-ai"), visitor):
            try:
                text, metrics = answer(model)
                texts.append(text + json.dumps(metrics.to_dict()))
            except PlaygroundError as exc:
                errors.append(str(exc))
        rows = [
            {"id": r.spec.id, "extra": r.spec.extra, "reason": r.availability.reason} for r in registry.rows()
        ]
        statuses = [s.to_dict() for s in provider_statuses(registry.providers.values())]
        payloads += [json.dumps(rows, default=str), json.dumps(statuses, default=str)]
        payloads += [snippet(s, ASK, GenerationOptions())[1] for s in registry.specs() if "kind" in s.extra]
        payloads += [repr(p) for p in registry.providers.values()] + [repr(m) for m in registry.loaded()]

    assert any("(401)" in e for e in errors) and any("Paris" in t for t in texts)
    assert len(errors) >= 10, errors
    everything = errors + texts + payloads + _texts(caplog)
    assert caplog.records, "the loggers were listening"
    keys = {"env": ENV_KEY, "azure": AZURE_KEY, "visitor": VISITOR_KEY}
    found = leaked(keys, {f"text {i}: {t[:80]}": t for i, t in enumerate(everything)})
    assert not found, found[:3]  # nor URL-encoded or base64
    assert any("***" in e for e in errors), "the echoed key was redacted, not just absent"
    received = [r.headers.get("authorization", "") for r in fake.requests("s401")]
    assert {f"Bearer {ENV_KEY}", f"Bearer {AZURE_KEY}", f"Bearer {VISITOR_KEY}"} <= set(received), (
        "keys were sent"
    )
