"""Public mode's resource limits, with real components: the models a visitor may load, image size, history
imports (size before reading, count before writing), per-visitor history quotas, export clean-up, and a
Providers Refresh shared by every visitor (counted on a real HTTP server)."""

from __future__ import annotations

import json
import os
import random
import threading
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import gradio as gr
import pytest
from gradio_client import Client
from playwright.sync_api import Page, expect

from playground.answers import AnswerService, Request
from playground.arena.pairing import Side, named
from playground.arena.service import ArenaService
from playground.catalog import load_catalog
from playground.context import AppContext
from playground.conversations import ConversationService
from playground.errors import HistoryFullError, ImportFormatError, InvalidImageError, UnknownModelError
from playground.history import HistoryStore, new_browser_id
from playground.history.export import export_json, import_file, import_json
from playground.history.quota import Quota
from playground.images import ImageLimits, check_size, prepare_messages
from playground.options import GenerationOptions
from playground.providers import build_providers
from playground.registry import Offer, Registry
from playground.settings import Settings
from playground.types import Message
from playground.ui import widgets
from playground.ui.downloads import DownloadFolder
from playground.ui.history_tab import HistoryTab
from playground.ui.providers_tab import ProvidersTab
from tests.cloud.fake_server import FakeServer
from tests.support import make_settings, serving

EMBEDDED = "smollm2-135m-instruct@onnx"
SECOND_COPY = "smollm2-135m-instruct@transformers"


def public_context(data_dir: Path, **env: str) -> AppContext:
    """A public deployment's context, as the app builds it."""
    return AppContext.create(make_settings(data_dir, PLAYGROUND_PUBLIC="1", **env))


@pytest.fixture
def public(tmp_path: Path) -> Iterator[AppContext]:
    context = public_context(tmp_path / "data")
    yield context
    context.close()


def test_the_app_context_wires_the_public_limits(tmp_path: Path) -> None:
    context = AppContext.create(make_settings(tmp_path, PLAYGROUND_PUBLIC="1"))
    try:
        assert context.registry.offer is not None
        assert context.history.quota.limits == Quota(200, 10_000_000, 50_000_000)
        assert context.conversations.image_limits.max_bytes == 10_000_000
        assert context.chat.image_max_bytes == 10_000_000 and context.chat.prompt_chars == 8000
        assert context.answers.slots.limits == {"*": 2}
    finally:
        context.close()


# The models a visitor may load


def test_public_mode_offers_each_model_on_one_local_engine_within_the_budget(public: AppContext) -> None:
    ids = [s.id for s in public.registry.specs()]
    assert EMBEDDED in ids and SECOND_COPY not in ids, "the embedded model once, on its fastest engine"
    local = [s for s in public.registry.specs() if s.provider in ("onnx", "transformers")]
    keys = [str(s.extra["catalog"]) for s in local]
    assert len(keys) == len(set(keys)), f"a model offered on two local engines: {sorted(keys)}"
    budget = public.registry.cache_budget_bytes
    assert all(s.size_bytes <= budget for s in local)
    assert "phi-3.5-moe@transformers" not in ids, "83.8 GB does not fit the default 8.2 GB budget"
    assert "tiny-vision-demo@transformers" in ids, "a model only transformers runs is offered there"
    choices = [value for _, value in widgets.model_choices(public.registry)]
    assert EMBEDDED in choices and SECOND_COPY not in choices


def test_a_model_not_offered_is_refused_with_what_is_offered_and_nothing_loads(public: AppContext) -> None:
    with pytest.raises(UnknownModelError, match="not offered on this public deployment") as refused:
        public.chat.preview(SECOND_COPY, [Message("user", "Hi")], GenerationOptions())
    assert EMBEDDED in str(refused.value)
    spec = next(s for p in public.registry.providers.values() for s in p.specs() if s.id == SECOND_COPY)
    with pytest.raises(UnknownModelError, match="not offered"):
        public.registry.lease(spec)  # a spec from elsewhere does not get past the registry either
    assert not public.registry.loaded() and not public.registry.loads
    assert public.registry.resolve("smollm2-135m-instruct").id == EMBEDDED, "a bare key: the offered one"


def test_an_api_call_for_a_model_not_offered_is_refused_with_the_ready_ones_first(public: AppContext) -> None:
    with serving(public) as url, pytest.raises(Exception, match="is not offered") as refused:
        Client(url, verbose=False).predict("Hi", api_name="/chat", model=SECOND_COPY)
    assert f"it offers ({EMBEDDED}, " in str(refused.value), "the ready model is named first"
    assert not public.registry.loads, "nothing was loaded"


def test_the_owners_list_is_exactly_what_is_offered(tmp_path: Path) -> None:
    context = public_context(
        tmp_path, PLAYGROUND_PUBLIC_MODELS=f"{SECOND_COPY},tiny-vision-demo@transformers"
    )
    try:
        assert sorted(s.id for s in context.registry.specs()) == [
            SECOND_COPY,
            "tiny-vision-demo@transformers",
        ]
        assert context.registry.resolve("smollm2-135m-instruct").id == SECOND_COPY
        with pytest.raises(UnknownModelError, match=f"offers \\({SECOND_COPY}"):
            context.registry.resolve(EMBEDDED)
        assert widgets.default_model(widgets.model_choices(context.registry)) == SECOND_COPY
    finally:
        context.close()


def test_on_a_zerogpu_the_offer_prefers_transformers(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, PLAYGROUND_PUBLIC="1", SPACES_ZERO_GPU="1")
    offer = Offer.from_settings(settings)
    assert offer is not None and offer.engines[0] == "transformers"
    registry = Registry(build_providers(settings, load_catalog()), offer=offer)
    ids = {s.id for s in registry.specs()}
    assert SECOND_COPY in ids and EMBEDDED not in ids


def test_private_mode_offers_every_model(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    assert Offer.from_settings(settings) is None
    registry = Registry(build_providers(settings, load_catalog()), offer=Offer.from_settings(settings))
    ids = {s.id for s in registry.specs()}
    assert {EMBEDDED, SECOND_COPY, "phi-3.5-moe@transformers"} <= ids
    assert registry.resolve(SECOND_COPY).id == SECOND_COPY


# Image size


def noise_png(path: Path, side: int = 200) -> Path:
    """A real PNG that does not compress (random pixels): about side*side*3 bytes."""
    from PIL import Image

    rng = random.Random(7)
    image = Image.frombytes("RGB", (side, side), bytes(rng.getrandbits(8) for _ in range(side * side * 3)))
    image.save(path, format="PNG")
    return path


def test_an_image_over_the_limit_is_refused_before_it_is_read_or_stored(
    tmp_path: Path, public: AppContext
) -> None:
    picture = noise_png(tmp_path / "noise.png")
    size = picture.stat().st_size
    assert size > 100_000
    vision = public.registry.resolve("tiny-vision-demo@transformers")
    with pytest.raises(InvalidImageError, match=r"MB, more than the 0.1 MB an image may be here: scale it"):
        prepare_messages(vision, [Message("user", "What is it?", (str(picture),))], max_bytes=100_000)
    assert prepare_messages(vision, [Message("user", "What is it?", (str(picture),))], max_bytes=size)
    with pytest.raises(InvalidImageError):
        check_size(str(picture), ImageLimits(max_bytes=size - 1))

    small = ConversationService(public.history, image_max_bytes=100_000)
    owner = new_browser_id()
    with pytest.raises(InvalidImageError, match="scale it down"):
        small.ask(owner, None, "What is it?", vision.id, tab="vision", images=[str(picture)])
    assert public.history.conversations.list_conversations(owner) == []
    assert not public.history.images.root.exists() or not any(public.history.images.root.iterdir())

    arena = ArenaService(public.answers, public.history, conversations=small)
    pair = named(Side(vision.id), Side(vision.id))
    with pytest.raises(InvalidImageError, match="scale it down"):
        arena.start(owner, pair, "What is it?", images=[picture])
    assert public.history.conversations.list_conversations(owner) == [], (
        "the arena refuses it before storing too"
    )
    assert not public.history.images.root.exists() or not any(public.history.images.root.iterdir())
    assert ArenaService.from_context(public).conversations is public.conversations, "the app's limits"


# History imports: size before reading, count before writing, all or nothing


def export_of(count: int, text: str = "Hello") -> str:
    """A real JSON export of `count` conversations."""
    with HistoryStore(
        Path(os.environ.get("TMPDIR", "/tmp")) / f"source-{os.getpid()}-{time.time_ns()}.db"
    ) as src:
        owner = new_browser_id()
        for n in range(count):
            conversation = src.conversations.create_conversation(
                owner, "instruct", f"Conversation {n}", EMBEDDED
            )
            src.conversations.add_message(owner, conversation.id, "user", f"{text} {n}")
        exported = export_json(src, owner)
        src.path.unlink(missing_ok=True)
    return exported


def test_an_import_larger_than_the_limit_is_refused_before_it_is_read(tmp_path: Path) -> None:
    huge = tmp_path / "huge.json"
    with huge.open("wb") as out:
        out.truncate(512_000_000)  # a 512 MB file (sparse: no disk used)
    owner = new_browser_id()
    with HistoryStore(tmp_path / "h.db") as store:
        tracemalloc.start()
        try:
            with pytest.raises(ImportFormatError, match=r"512\.0 MB; this server imports files up to 5 MB"):
                import_file(store, owner, huge, max_bytes=5_000_000)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert peak < 1_000_000, f"{peak:,} bytes allocated: the file was read"
        assert store.conversations.list_conversations(owner) == []


def test_the_history_tab_applies_the_public_import_limits(tmp_path: Path, public: AppContext) -> None:
    tab = HistoryTab(public)
    owner = new_browser_id()
    big = tmp_path / "big.json"
    big.write_text(export_of(1, "x" * 6_000_000))  # over the public default of 5 MB
    with pytest.raises(gr.Error, match="imports files up to 5 MB"):
        tab.import_file(str(big), owner, "")
    many = tmp_path / "many.json"
    many.write_text(export_of(201))  # over the public default of 200 per import
    with pytest.raises(gr.Error, match="holds 201 conversations; this server imports at most 200"):
        tab.import_file(str(many), owner, "")
    assert public.history.conversations.list_conversations(owner) == [], "nothing half-imported"
    fine = tmp_path / "fine.json"
    fine.write_text(export_of(3))
    _, ids, status = tab.import_file(str(fine), owner, "")
    assert len(ids) == 3 and "Imported 3" in status


def test_imports_count_against_the_quota_and_a_refused_one_writes_nothing(tmp_path: Path) -> None:
    with HistoryStore(tmp_path / "h.db", quota=Quota(conversations=4)) as store:
        owner = new_browser_id()
        import_json(store, owner, export_of(3))
        with pytest.raises(HistoryFullError, match=r"holds 3 conversation\(s\) \(this adds 2\).* at most 4"):
            import_json(store, owner, export_of(2))
        assert len(store.conversations.list_conversations(owner)) == 3
        other = new_browser_id()
        import_json(store, other, export_of(4))  # another visitor has a quota of their own
        assert len(store.conversations.list_conversations(other)) == 4


def test_the_browser_copy_is_restored_only_within_the_import_limits(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, PLAYGROUND_PUBLIC="1", PLAYGROUND_IMPORT_CONVERSATIONS="2")
    with HistoryStore(tmp_path / "h.db") as store:
        tab = HistoryTab(SimpleNamespace(history=store, settings=settings))  # type: ignore[arg-type]
        owner = new_browser_id()
        notice = tab.on_load(owner, False, export_of(3))
        assert "was not restored" in notice and "at most 2" in notice
        assert store.conversations.list_conversations(owner) == []
        huge = json.dumps({"format": "slm-playground-history", "pad": "x" * 5_000_001})
        assert "larger than the 5 MB" in tab.on_load(owner, False, huge)
        assert (
            tab.on_load(owner, False, export_of(2))
            == "ℹ Restored 2 conversation(s) from this browser's copy."
        )


# Per-visitor history quotas


def test_a_new_conversation_past_the_count_is_refused_with_what_to_do(tmp_path: Path) -> None:
    with HistoryStore(tmp_path / "h.db", quota=Quota(conversations=2)) as store:
        alice, bob = new_browser_id(), new_browser_id()
        for n in range(2):
            store.conversations.create_conversation(alice, "instruct", f"c{n}")
        with pytest.raises(HistoryFullError, match=r"at most 2 per visitor\. Delete old conversations"):
            store.conversations.create_conversation(alice, "instruct", "one more")
        with pytest.raises(HistoryFullError, match="this adds 2"):
            store.battles.create_battle(
                alice, "Hi", EMBEDDED, SECOND_COPY
            )  # an arena battle is two conversations
        store.conversations.create_conversation(bob, "instruct", "bob's own")
        first = store.conversations.list_conversations(alice)[0]
        store.conversations.delete_conversation(alice, first.id)
        store.conversations.create_conversation(alice, "instruct", "room again")
        assert store.quota.usage(alice).conversations == 2


def test_the_byte_quota_counts_texts_and_images_and_never_refuses_an_answer(tmp_path: Path) -> None:
    picture = noise_png(tmp_path / "p.png", side=20)  # about 1.2 kB
    with HistoryStore(tmp_path / "h.db", quota=Quota(bytes=5_000)) as store:
        owner = new_browser_id()
        conversation = store.conversations.create_conversation(owner, "vision", "pictures").id
        ref = store.images.store_image_file(picture)
        store.conversations.add_message(owner, conversation, "user", "a" * 1000, images=[ref])
        used = store.quota.usage(owner).bytes
        assert used == 1000 + picture.stat().st_size
        store.conversations.add_message(owner, conversation, "user", "the same picture again", images=[ref])
        assert store.quota.usage(owner).bytes == used + len("the same picture again"), "an image counts once"
        answer = store.conversations.start_answer(owner, conversation)
        answer.update("b" * 10_000)  # past the quota: an answer is kept whole
        answer.finish(None, text="b" * 10_000)
        with pytest.raises(HistoryFullError, match=r"holds 0.01 MB.*at most 0.01 MB per visitor"):
            store.conversations.add_message(owner, conversation, "user", "one more question")
        assert store.quota.usage(owner).bytes > 5_000


def test_a_full_history_still_answers_and_says_it_was_not_saved(tmp_path: Path, ctx: AppContext) -> None:
    """The session's real embedded model answers; the full store keeps nothing new."""
    with HistoryStore(tmp_path / "h.db", quota=Quota(conversations=1)) as store:
        owner = new_browser_id()
        store.conversations.create_conversation(owner, "instruct", "the only one")
        service = ConversationService(store)
        with pytest.raises(HistoryFullError, match=r"^Your history holds 1 conversation\(s\)"):
            service.ask(owner, None, "Say hello.", EMBEDDED)
        # the chat tabs then answer as if incognito (no recording), saying "Not saved"
        answers = AnswerService(ctx.chat)
        result = answers.complete(
            Request(EMBEDDED, [Message("user", "Say hello.")], GenerationOptions(max_new_tokens=8))
        )
        assert result.text.strip(), "the answer is shown"
        assert [c.title for c in store.conversations.list_conversations(owner)] == ["the only one"]


# Exports are kept a while, in one folder per app


def test_exports_go_to_one_folder_per_app_and_old_ones_are_deleted(tmp_path: Path) -> None:
    folder = DownloadFolder("exports", 60.0, parent=tmp_path)
    stale_run = tmp_path / "slm-playground-exports-earlier"
    (stale_run / "x").mkdir(parents=True)
    (stale_run / "x" / "old.json").write_text("{}")
    long_ago = time.time() - 3600
    for path in (stale_run / "x" / "old.json", stale_run / "x", stale_run):
        os.utime(path, (long_ago, long_ago))
    first = folder.write("a.json", "{}")
    assert first.parent.parent == folder.root and first.read_text() == "{}"
    assert not stale_run.exists(), "an earlier run's old exports are deleted"
    second = folder.write("a.json", "[]")
    assert second != first and first.exists(), "two exports never clash"
    assert folder.prune(now=time.time() + 61) == 2
    assert not first.exists() and not second.exists() and folder.root.is_dir()


def test_the_history_tab_writes_exports_into_its_pruned_folder(public: AppContext) -> None:
    tab = HistoryTab(public)
    owner = new_browser_id()
    conversation = public.history.conversations.create_conversation(owner, "instruct", "To export")
    public.history.conversations.add_message(owner, conversation.id, "user", "Hello")
    path = Path(tab.export("all-json", None, owner))
    assert path.parent.parent.name.startswith("slm-playground-exports-")
    assert tab.downloads.max_age_s == 60 * 60, "public mode: PLAYGROUND_FILES_MAX_AGE_MIN=60"
    assert "Hello" in path.read_text()


# Providers Refresh: shared, rate-limited


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeServer]:
    server = FakeServer()
    yield server
    server.close()


def refresh_context(data_dir: Path, fake: FakeServer, scenario: str, **env: str) -> SimpleNamespace:
    settings: Settings = make_settings(data_dir, OPENAI_BASE_URL=fake.url(scenario), **env)
    registry = Registry(build_providers(settings, load_catalog()))
    return SimpleNamespace(settings=settings, registry=registry)


def test_twenty_refresh_clicks_make_one_round_of_requests(tmp_path: Path, fake: FakeServer) -> None:
    scenario = "ok~refresh-public"
    tab = ProvidersTab(refresh_context(tmp_path, fake, scenario, PLAYGROUND_PUBLIC="1"))  # type: ignore[arg-type]
    tab.capabilities = []
    before = len(fake.requests(scenario))
    results: list[tuple[object, ...]] = []
    clicks = [threading.Thread(target=lambda: results.append(tab.refresh([]))) for _ in range(20)]
    for click in clicks:
        click.start()
    for click in clicks:
        click.join(timeout=60)
    assert len(results) == 20
    asked = fake.requests(scenario)[before:]
    assert [r.path for r in asked] == ["/v1/models"], "20 clicks, one request to the one endpoint"
    assert tab.shared.rounds == 1
    notes = [str(r[1]) for r in results]
    assert notes.count("Checked just now.") == 1
    assert all("shared by every visitor" in n and "at most once every 60 s" in n for n in notes if "ago" in n)
    rows = results[0][0]
    assert isinstance(rows, list)
    assert any("alpha" in str(row) for row in rows), "the cached statuses list what the server serves"


def test_in_private_mode_each_refresh_asks_again(tmp_path: Path, fake: FakeServer) -> None:
    scenario = "ok~refresh-private"
    tab = ProvidersTab(refresh_context(tmp_path, fake, scenario))  # type: ignore[arg-type]
    tab.capabilities = []
    before = len(fake.requests(scenario))
    for _ in range(3):
        tab.refresh([])
    assert len(fake.requests(scenario)) - before == 3


def test_a_refresh_after_the_interval_asks_again(tmp_path: Path, fake: FakeServer) -> None:
    from playground.providers_service import SharedRefresh

    scenario = "ok~refresh-interval"
    context = refresh_context(tmp_path, fake, scenario, PLAYGROUND_PUBLIC="1")
    now = [1000.0]
    shared = SharedRefresh(context.registry, 60.0, clock=lambda: now[0])
    before = len(fake.requests(scenario))
    assert shared.refresh().asked
    now[0] += 59
    later = shared.refresh()
    assert not later.asked and "59 s ago" in later.note(60.0, now=now[0])
    now[0] += 2
    assert shared.refresh().asked
    assert len(fake.requests(scenario)) - before == 2


@pytest.mark.browser
def test_twenty_clicks_on_the_page_make_one_round(tmp_path: Path, fake: FakeServer, page: Page) -> None:
    scenario = "ok~refresh-page"
    context = public_context(tmp_path / "data", OPENAI_BASE_URL=fake.url(scenario))
    try:
        with serving(context) as url:
            page.goto(url)
            page.get_by_role("tab", name="Providers", exact=True).click()
            button = page.locator("#providers-refresh")
            before = len(fake.requests(scenario))
            for _ in range(20):
                button.click()
            expect(page.locator("#providers-checked")).to_contain_text(
                "shared by every visitor", timeout=30_000
            )
            page.wait_for_timeout(1000)  # the last clicks' events have run
            assert [r.path for r in fake.requests(scenario)[before:]] == ["/v1/models"]
    finally:
        context.close()


# The owner's default model (PLAYGROUND_DEFAULT_MODEL), e.g. the model a Space preloads


def test_the_default_model_is_the_owners_when_ready_else_the_embedded_one(ctx: AppContext) -> None:
    choices = widgets.model_choices(ctx.registry)
    transformers = "smollm2-135m-instruct@transformers"
    assert widgets.default_model(choices, transformers, ctx.registry) == transformers
    assert widgets.default_model(choices, None, ctx.registry) == EMBEDDED
    not_ready = next(s for s in ctx.registry.specs() if not ctx.registry.availability(s).available)
    assert widgets.default_model(choices, not_ready.id, ctx.registry) == EMBEDDED, "not ready: embedded"
    assert widgets.default_model(choices, "no-such-model", ctx.registry) == EMBEDDED
    settings = Settings.from_env({"PLAYGROUND_DEFAULT_MODEL": " phi-3.5-mini@onnx "})
    assert settings.default_model == "phi-3.5-mini@onnx"
    assert Settings.from_env({"SPACES_ZERO_GPU": "t"}).zerogpu and not Settings.from_env({}).zerogpu
    assert Settings.from_env({"PLAYGROUND_ABANDON_GRACE_S": "2.5"}).limits.abandon_grace_s == 2.5
