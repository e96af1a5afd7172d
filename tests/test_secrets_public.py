"""No secret set in the environment reaches a visitor of a public deployment, nor the app's logs.

Every secret the playground knows (each provider's key, a custom endpoint's key and a `${VAR}` header,
HF_TOKEN, the visitor-id signing key, Space OAuth's client secret) is set to a distinctive random value;
the app starts in public mode against a local recording server (tests/cloud/fake_server.py) and is used:
the page (as served and as the browser renders it, with its local storage), its Gradio config, the API
description, the health endpoint when there is one, answers and errors through the API (one tiny answer of
the embedded model; the cloud answers come from the recording server, one of whose scenarios echoes the key
back in its error), a chat and an export of the history in the page, and everything the app logged or
printed. None holds a secret, nor its URL-encoded or base64 form.
"""

from __future__ import annotations

import base64
import json
import logging
import secrets
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import quote_plus, urljoin

import httpx
import pytest
from gradio_client import Client
from playwright.sync_api import Browser, expect

from playground.context import AppContext
from tests.browser import pick_model
from tests.cloud.fake_server import FakeServer
from tests.secret_forms import leaked
from tests.support import QUESTION, make_settings, serving

# Every variable that holds a secret (settings.py, providers/cloud/presets.py, and an endpoints file's
# api_key_env and ${VAR} headers; OAUTH_CLIENT_SECRET is set by a Space with sign-in).
SECRET_NAMES = (
    "OPENAI_API_KEY",
    "NVIDIA_API_KEY",
    "AZURE_OPENAI_API_KEY",
    "AZURE_AI_CHAT_KEY",
    "GITHUB_TOKEN",
    "HF_TOKEN",
    "PLAYGROUND_BROWSER_SECRET",
    "OAUTH_CLIENT_SECRET",
    "GATEWAY_KEY",
    "GATEWAY_TENANT",
)
# The core of each value is what the checks look for: found inside any escaping (JSON's "\/", HTML
# entities) of the whole value; the "+/=" make the URL-encoded form differ from the value itself.
CORES = {name: secrets.token_hex(12) for name in SECRET_NAMES}
SECRET_VALUES = {name: f"{name.lower()}-{core}+/={core[:6]}" for name, core in CORES.items()}
# Credentials inside a configured URL (a proxy's user info and key parameter): URL-safe values.
URL_SECRETS = {
    "URL_PASSWORD": f"urlpass-{secrets.token_hex(12)}",
    "URL_QUERY_KEY": f"urlkey-{secrets.token_hex(12)}",
}
LOGGERS = ("", "openai", "httpx", "httpcore", "azure", "gradio", "uvicorn", "playground")
API_OPTIONS = [0, 1, 0, 8, 1, -1, ""]  # temperature ... stop: greedy, 8 new tokens
BOT = '#instruct-chat [data-testid="bot"]'


def leaks(places: dict[str, str]) -> list[str]:
    return leaked(SECRET_VALUES, places, CORES) + leaked(URL_SECRETS, places)


def log_texts(records: Iterable[logging.LogRecord]) -> str:
    found = []
    for record in records:
        found += [record.getMessage(), repr(record.args), record.exc_text or "", str(record.__dict__)]
    return "\n".join(found)


def test_the_base64_and_url_forms_are_found_inside_longer_text() -> None:
    """The checks below can fail: each form of a secret, embedded in other text, is found."""
    value = SECRET_VALUES["OPENAI_API_KEY"]
    for prefix in ("", "a", "ab"):
        encoded = base64.b64encode(f"Bearer {prefix}{value}!".encode()).decode()
        assert leaks({"x": encoded}), prefix
        assert leaks({"x": base64.urlsafe_b64encode(f"{prefix}{value}".encode()).decode()}), prefix
    assert leaks({"x": f"https://a.example/?key={quote_plus(value)}"})
    assert leaks({"x": json.dumps({"key": value}).replace("/", "\\/")})
    assert not leaks({"x": "nothing secret here"})


@pytest.fixture
def fake() -> Iterable[FakeServer]:
    server = FakeServer()
    yield server
    server.close()


@pytest.mark.browser
def test_no_secret_reaches_a_visitor_or_the_logs_in_public_mode(
    browser: Browser,
    fake: FakeServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    for name in LOGGERS:
        caplog.set_level(logging.DEBUG, logger=name)
    for name, value in SECRET_VALUES.items():
        monkeypatch.setenv(name, value)  # for any library that reads the environment itself
    endpoints = tmp_path / "endpoints.toml"
    endpoints.write_text(
        f'[[endpoints]]\nname = "gateway"\nbase_url = "{fake.url("s401")}"\napi_key_env = "GATEWAY_KEY"\n'
        'headers = { "X-Tenant" = "${GATEWAY_TENANT}" }\nmodels = ["alpha"]\n'
        '[[endpoints]]\nname = "proxy"\nmodels = ["beta"]\n'
        f'base_url = "http://team:{URL_SECRETS["URL_PASSWORD"]}@127.0.0.1:9/v1?api-key={URL_SECRETS["URL_QUERY_KEY"]}"\n'
    )
    settings = make_settings(
        tmp_path / "data",
        PLAYGROUND_PUBLIC="1",
        PLAYGROUND_ENDPOINTS=str(endpoints),
        OPENAI_BASE_URL=fake.url("ok"),
        NVIDIA_BASE_URL=fake.url("nvidia"),
        AZURE_OPENAI_ENDPOINT=fake.root("s401"),
        PLAYGROUND_AZURE_OPENAI_DEPLOYMENTS="phi-4",
        AZURE_AI_CHAT_ENDPOINT=fake.url("s401"),
        PLAYGROUND_AZURE_AI_DEPLOYMENTS="phi-4",
        OLLAMA_HOST="http://127.0.0.1:9",
        PLAYGROUND_TIMEOUT_S="5",
        **SECRET_VALUES,
    )
    assert settings.public
    ctx = AppContext.create(settings)
    places: dict[str, str] = {}
    outputs: list[str] = []
    errors: list[str] = []
    try:
        with serving(ctx) as url:
            for path in ("", "config", "gradio_api/info", "gradio_api/info?all_endpoints=true", "healthz"):
                response = httpx.get(url + path, timeout=30)
                assert response.status_code == 200, path
                places[f"GET /{path}"] = response.text
            response = httpx.get(url + "gradio_api/openapi.json", timeout=30)
            if response.status_code != 404:  # where Gradio serves it
                assert response.status_code == 200
                places["GET /gradio_api/openapi.json"] = response.text

            # Answers and errors through the API: one tiny answer of the embedded model, then each
            # cloud provider (the recording server answers, or refuses the key and echoes it back).
            client = Client(url, verbose=False)
            by_provider: dict[str, str] = {}
            for spec in ctx.registry.specs():
                by_provider.setdefault(spec.provider, spec.id)
            cloud = ("openai-compatible", "nvidia", "gateway", "azure-openai", "azure-ai", "proxy")
            models = ["smollm2-135m-instruct@onnx", *(by_provider[p] for p in cloud)]
            for model in models:
                job = client.submit(QUESTION, model, "", *API_OPTIONS, api_name="/chat")
                try:
                    job.result(timeout=60)
                except Exception as exc:
                    errors.append(f"{model}: {exc}")
                outputs += [f"{model}: {o}" for o in job.outputs()]
            places["API answers"] = "\n".join(outputs)
            places["API errors"] = "\n".join(errors)

            # The page as a visitor sees it: a chat, a refused key, the Providers tab, an export.
            page = browser.new_context().new_page()
            page.goto(url)
            page.wait_for_selector("#instruct-input textarea")
            box = page.locator("#instruct-max-new-tokens input[type=number]")
            box.fill("16")
            box.press("Enter")
            page.fill("#instruct-input textarea", QUESTION)
            page.press("#instruct-input textarea", "Enter")
            expect(page.locator(BOT).nth(1)).to_contain_text("tok/s", timeout=60_000)
            pick_model(page, ctx, by_provider["gateway"])
            page.fill("#instruct-input textarea", "And of Italy?")
            page.press("#instruct-input textarea", "Enter")
            expect(page.locator("#instruct-notice")).to_contain_text("GATEWAY_KEY", timeout=30_000)
            places["page after a chat"] = page.content()
            page.get_by_role("tab", name="Providers", exact=True).click()
            expect(page.locator("#providers-list")).to_contain_text("NVIDIA_API_KEY", timeout=15_000)
            places["Providers tab"] = page.content()
            page.get_by_role("tab", name="History", exact=True).click()
            page.get_by_role("button", name="Export all (JSON)").click()
            link = page.locator("#history-export a").first
            expect(link).to_be_visible(timeout=15_000)
            export = httpx.get(urljoin(url, link.get_attribute("href") or ""), timeout=30)
            assert export.status_code == 200 and "capital of France" in export.text, export.text[:200]
            places["history export"] = export.text
            places["local storage"] = json.dumps(
                page.evaluate("() => Object.fromEntries(Object.entries(localStorage))")
            )
            page.context.close()
    finally:
        ctx.close()

    out, err = capfd.readouterr()
    places["logs"] = log_texts(caplog.records)
    places["stdout"], places["stderr"] = out, err

    # The test did what it says: answers came, errors came, and the keys reached the server.
    assert any("Paris" in o for o in outputs if o.startswith("smollm2")), outputs
    assert any("Paris" in o for o in outputs if "openai-compatible" in o), outputs
    assert len(errors) >= 3 and any("GATEWAY_KEY" in e for e in errors), errors
    assert any("not reachable at http://***@127.0.0.1:9/v1?api-key=***" in e for e in errors), errors
    assert "http://***@127.0.0.1:9/v1?api-key=***" in places["Providers tab"]
    sent = {r.headers.get("authorization", "") for r in fake.received}
    for name in (
        "OPENAI_API_KEY",
        "NVIDIA_API_KEY",
        "GATEWAY_KEY",
        "AZURE_OPENAI_API_KEY",
        "AZURE_AI_CHAT_KEY",
    ):
        assert f"Bearer {SECRET_VALUES[name]}" in sent, f"{name} was not sent: nothing was tested"
    assert any(r.headers.get("x-tenant") == SECRET_VALUES["GATEWAY_TENANT"] for r in fake.received)
    assert caplog.records and "Paris" in places["history export"]

    found = leaks(places)
    assert not found, found
    # No absolute path of the server's disk reaches a visitor (the data and model folders, the repo).
    visible = {k: v for k, v in places.items() if k not in ("logs", "stdout", "stderr")}
    # (Gradio's own file cache, which serves the example images by path, is Gradio's, not ours.)
    roots = {
        "data folder": str(tmp_path / "data"),
        "endpoints file": str(endpoints),
        "repository": str(Path(__file__).resolve().parent.parent),
    }
    paths = [
        f"{name} in {place}: …{text[max(0, text.index(root) - 80) : text.index(root) + 80]}…"
        for name, root in roots.items()
        for place, text in visible.items()
        if root in text
    ]
    assert not paths, paths
