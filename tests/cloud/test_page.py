"""Cloud providers through the real app: the page and its API stream from a real server, failures show
their own message in the page, and no key ever reaches the page."""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator

import pytest
from gradio_client import Client
from playwright.sync_api import Page, expect

from playground.context import AppContext
from playground.ui.widgets import model_label
from tests.cloud.conftest import Served
from tests.cloud.fake_server import ANSWER, FakeServer
from tests.support import QUESTION, make_settings, serving

ENV_KEY = "sk-page-SECRET-9c1e77"
FAIL_KEY = "sk-fail-SECRET-4b2d11"
TYPED_KEY = "sk-typed-SECRET-0a9f3e"
BOT = '#instruct-chat [data-testid="bot"]'
GREEDY = [0, 1, 0, 32, 1, -1, ""]


@pytest.fixture(scope="module")
def cloud_app(
    served: Served, fake: FakeServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[AppContext, str]]:
    folder = tmp_path_factory.mktemp("cloud-app")
    endpoints = folder / "endpoints.toml"
    endpoints.write_text(
        f'[[endpoints]]\nname = "authfail"\nbase_url = "{fake.url("s401")}"\napi_key_env = "AUTHFAIL_KEY"\n'
        'models = ["alpha"]\n\n'
        f'[[endpoints]]\nname = "dropping"\nbase_url = "{fake.url("drop")}"\nmodels = ["alpha"]\n'
    )
    settings = make_settings(
        folder / "data", OPENAI_BASE_URL=served.base_url, OPENAI_API_KEY=ENV_KEY, AUTHFAIL_KEY=FAIL_KEY,
        PLAYGROUND_ENDPOINTS=str(endpoints), OLLAMA_HOST="http://127.0.0.1:9",
    )  # fmt: skip
    ctx = AppContext.create(settings)
    with serving(ctx) as url:
        yield ctx, url
    ctx.close()


def served_id(ctx: AppContext) -> str:
    return next(s.id for s in ctx.registry.specs() if s.provider == "openai-compatible")


def pick_model(page: Page, ctx: AppContext, model_id: str) -> None:
    row = next(r for r in ctx.registry.rows() if r.spec.id == model_id)
    label = model_label(row)
    box = page.locator("#instruct-model input")
    box.click()
    box.fill(row.spec.name[:12])
    page.get_by_role("option", name=label).click()


def test_the_api_streams_from_the_server(cloud_app: tuple[AppContext, str]) -> None:
    ctx, url = cloud_app
    client = Client(url, verbose=False)
    job = client.submit(QUESTION, served_id(ctx), "", *GREEDY, api_name="/chat")
    assert len(list(job)) > 1
    assert "Paris" in job.outputs()[-1]


def test_an_auth_failure_names_the_variable_not_the_key(cloud_app: tuple[AppContext, str]) -> None:
    _, url = cloud_app
    client = Client(url, verbose=False)
    with pytest.raises(Exception, match="AUTHFAIL_KEY") as raised:
        client.submit(QUESTION, "alpha@authfail", "", *GREEDY, api_name="/chat").result()
    assert FAIL_KEY not in str(raised.value)


def test_no_key_reaches_the_page(cloud_app: tuple[AppContext, str], page: Page, fake: FakeServer) -> None:
    ctx, url = cloud_app
    for path in ("", "config", "gradio_api/info"):
        with urllib.request.urlopen(f"{url}{path}", timeout=30) as response:
            body = response.read().decode()
        assert ENV_KEY not in body and FAIL_KEY not in body
    page.goto(url)
    page.get_by_role("tab", name="Providers").click()
    providers = page.locator("#providers-list")
    expect(providers).to_contain_text("OPENAI_API_KEY (set)", timeout=15_000)
    assert ENV_KEY not in page.content()

    page.get_by_role("tab", name="Instruct").click()
    pick_model(page, ctx, "alpha@authfail")
    page.get_by_text("Your own API key (this session only)").click()
    page.fill("#instruct-key input", TYPED_KEY)
    page.press("#instruct-key input", "Enter")
    expect(page.locator("#instruct-key-status")).to_contain_text("authfail", timeout=10_000)
    assert page.locator("#instruct-key input").input_value() == ""
    page.fill("#instruct-input textarea", QUESTION)
    page.press("#instruct-input textarea", "Enter")
    expect(page.locator("#instruct-notice")).to_contain_text("the key you entered", timeout=30_000)
    sent = [r.headers.get("authorization", "") for r in fake.requests("s401")]
    assert f"Bearer {TYPED_KEY}" in sent, "the typed key was used for this visitor's request"
    assert TYPED_KEY not in page.content() and FAIL_KEY not in page.content()


def test_a_dropped_stream_keeps_the_partial_answer_marked_interrupted(
    cloud_app: tuple[AppContext, str], page: Page
) -> None:
    ctx, url = cloud_app
    page.goto(url)
    page.wait_for_selector("#instruct-input textarea")
    pick_model(page, ctx, "alpha@dropping")
    page.fill("#instruct-input textarea", QUESTION)
    page.press("#instruct-input textarea", "Enter")
    expect(page.locator(BOT).nth(1)).to_contain_text("interrupted", timeout=30_000)
    assert page.locator(BOT).first.inner_text().strip() == "".join(ANSWER[:2]).strip()
