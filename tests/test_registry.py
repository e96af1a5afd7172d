"""The registry: ids, lookups, availability reasons, lazy loading once, the cache budget."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from playground.catalog import load_catalog
from playground.context import AppContext
from playground.errors import ModelUnavailableError, PlaygroundError, UnknownModelError
from playground.providers import build_providers
from playground.registry import Registry
from playground.settings import Settings


def fresh_registry(settings: Settings, budget: int = 8 * 10**9) -> Registry:
    return Registry(build_providers(settings, load_catalog()), cache_budget_bytes=budget)


def test_ids_are_unique_and_carry_the_provider(ctx: AppContext) -> None:
    ids = [s.id for s in ctx.registry.specs()]
    assert len(ids) == len(set(ids))
    assert {"smollm2-135m-instruct@onnx", "smollm2-135m-instruct@transformers"} <= set(ids)
    assert all(i.endswith(f"@{s.provider}") for i, s in zip(ids, ctx.registry.specs(), strict=True))


def test_catalog_has_the_phi_family() -> None:
    keys = {e.key for e in load_catalog()}
    assert {
        "phi-3-mini-4k",
        "phi-3-mini-128k",
        "phi-3-medium-4k",
        "phi-3.5-mini",
        "phi-3.5-vision",
        "phi-3.5-moe",
        "phi-4",
        "phi-4-mini",
        "phi-4-multimodal",
        "smollm2-135m-instruct",
    } <= keys
    moe = next(e for e in load_catalog() if e.key == "phi-3.5-moe")
    assert moe.params_active == "6.6B" and moe.experts == 16 and moe.experts_active == 2


def test_embedded_model_is_available_offline(ctx: AppContext) -> None:
    for row in ctx.registry.rows():
        if row.spec.extra.get("embedded"):
            assert row.availability.available, row.availability.reason


def test_hub_models_say_what_to_download(ctx: AppContext) -> None:
    state = ctx.registry.availability(ctx.registry.resolve("phi-3.5-mini@onnx"))
    assert not state.available
    assert state.reason.startswith("download 2.4 GB from microsoft/Phi-3.5-mini-instruct-onnx")


def test_resolve_by_key_provider_and_path(ctx: AppContext, embedded_onnx_folder: Path) -> None:
    assert ctx.registry.resolve("smollm2-135m-instruct").id == "smollm2-135m-instruct@onnx"
    assert ctx.registry.resolve("smollm2-135m-instruct", "transformers").provider == "transformers"
    spec = ctx.registry.resolve(str(embedded_onnx_folder))
    assert spec.provider == "onnx" and spec.context_window == 8192
    assert ctx.registry.availability(spec).available


def test_unknown_model_suggests_close_ids(ctx: AppContext) -> None:
    with pytest.raises(UnknownModelError, match=r"Did you mean .*phi-3.5-mini"):
        ctx.registry.resolve("phi-3.5-mimi")
    with pytest.raises(UnknownModelError, match="Unknown provider"):
        ctx.registry.resolve("phi-3.5-mini", "nosuch")


def test_unavailable_model_is_refused_with_its_reason(ctx: AppContext) -> None:
    with pytest.raises(ModelUnavailableError, match="download"):
        ctx.registry.lease(ctx.registry.resolve("phi-4-mini@onnx"))
    assert not ctx.registry.is_loaded("phi-4-mini@onnx")


def test_two_concurrent_first_requests_load_once(settings: Settings) -> None:
    registry = fresh_registry(settings)
    got: list[object] = []
    barrier = threading.Barrier(2)
    spec = registry.resolve("smollm2-135m-instruct@onnx")

    def first_request() -> None:
        barrier.wait()
        with registry.lease(spec) as lease:
            got.append(lease.model)

    threads = [threading.Thread(target=first_request) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert registry.loads["smollm2-135m-instruct@onnx"] == 1
    assert got[0] is got[1]
    registry.close_all()


def test_cache_budget_evicts_the_least_recently_used(settings: Settings) -> None:
    registry = fresh_registry(settings, budget=600_000_000)  # fits one of the two embedded builds, not both
    onnx, hf = (registry.resolve(f"smollm2-135m-instruct@{e}") for e in ("onnx", "transformers"))
    registry.lease(onnx).release()
    registry.lease(hf).release()
    assert [m.spec.id for m in registry.loaded()] == ["smollm2-135m-instruct@transformers"]
    registry.lease(onnx).release()
    assert registry.loads["smollm2-135m-instruct@onnx"] == 2
    registry.close_all()


def test_local_models_are_listed_with_their_size_and_deleted_by_name(
    settings: Settings, tmp_path: Path
) -> None:
    from playground.providers.local.store import delete_local, list_local

    models = tmp_path / "models"
    (models / "converted" / "mine").mkdir(parents=True)
    (models / "converted" / "mine" / "model.onnx").write_bytes(b"x" * 1234)
    (models / "hub" / "org--repo").mkdir(parents=True)
    found = {m.name: m for m in list_local(models)}
    assert found["mine"].size_bytes == 1234 and found["mine"].kind == "converted"
    assert delete_local(models, "mine").name == "mine"
    assert not (models / "converted" / "mine").exists()
    with pytest.raises(PlaygroundError, match="No local model named"):
        delete_local(models, "../../etc")
