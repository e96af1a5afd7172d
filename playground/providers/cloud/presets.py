"""The built-in endpoints, made from the providers' own variables (read through Settings.env)."""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import urlsplit

from ...errors import ConfigError
from ...settings import Settings
from .config_file import load_endpoints
from .endpoint import EndpointSpec

NVIDIA_URL = "https://integrate.api.nvidia.com/v1"
GITHUB_URL = "https://models.github.ai/inference"
OLLAMA_URL = "http://localhost:11434"
GITHUB_RETIRED = "2026-07-30"
AZURE_AI_INFERENCE_RETIRED = "2026-08-26"

# NVIDIA takes images three ways; the Phi-3 and Phi-3.5 vision models want an inline <img> tag.
NVIDIA_VISION_FORMATS = {
    "microsoft/phi-3-vision-128k-instruct": "img-tag",
    "microsoft/phi-3.5-vision-instruct": "img-tag",
    "microsoft/phi-4-multimodal-instruct": "openai",
}


def cloud_endpoints(settings: Settings) -> list[EndpointSpec]:
    """Every endpoint this configuration enables: the presets, then the endpoints file."""
    env = settings.env
    found = [
        p
        for p in (
            openai_compatible(env),
            nvidia(env),
            azure_openai(env),
            ollama(env),
            github(env) if settings.github_models else None,
            azure_ai(env),
        )
        if p is not None
    ]
    if settings.endpoints_file is not None:
        taken = {p.name for p in found}
        for endpoint in load_endpoints(settings.endpoints_file):
            if endpoint.name in taken:
                raise ConfigError(
                    f"{settings.endpoints_file}: endpoint name {endpoint.name!r} is a built-in provider's; "
                    "pick another name."
                )
            found.append(endpoint)
    return found


def openai_compatible(env: Mapping[str, str]) -> EndpointSpec | None:
    """Any server named by the openai SDK's own OPENAI_BASE_URL (key optional: local servers need none)."""
    url = env.get("OPENAI_BASE_URL", "").strip()
    if not url:
        return None
    return _spec(
        "OPENAI_BASE_URL",
        name="openai-compatible",
        label="OpenAI-compatible server",
        base_url=url,
        base_url_env="OPENAI_BASE_URL",
        api_key_env="OPENAI_API_KEY",
        key_required=False,
    )


def nvidia(env: Mapping[str, str]) -> EndpointSpec:
    """NVIDIA's hosted catalog: listed at start-up, filtered to Phi models."""
    return _spec(
        "NVIDIA_BASE_URL",
        name="nvidia",
        label="NVIDIA NIM",
        base_url=env.get("NVIDIA_BASE_URL", "").strip() or NVIDIA_URL,
        base_url_env="NVIDIA_BASE_URL",
        api_key_env="NVIDIA_API_KEY",
        discover=r"^microsoft/phi",
        catalog_source="nvidia",
        vision_formats=NVIDIA_VISION_FORMATS,
        note="The hosted catalog changes often: models are listed from the service.",
    )


def azure_openai(env: Mapping[str, str]) -> EndpointSpec | None:
    """Azure OpenAI's v1 API through the openai SDK; deployment names are the model ids."""
    endpoint = env.get("AZURE_OPENAI_ENDPOINT", "").strip().rstrip("/")
    if not endpoint:
        return None
    base = endpoint if endpoint.endswith("/openai/v1") else f"{endpoint}/openai/v1"
    deployments = _names(env.get("PLAYGROUND_AZURE_OPENAI_DEPLOYMENTS", ""))
    return _spec(
        "AZURE_OPENAI_ENDPOINT",
        name="azure-openai",
        label="Azure OpenAI",
        base_url=base,
        base_url_env="AZURE_OPENAI_ENDPOINT",
        api_key_env="AZURE_OPENAI_API_KEY",
        models=deployments,
        discover=None if deployments else r"(?i)phi",
        catalog_source="azure",
    )


def ollama(env: Mapping[str, str]) -> EndpointSpec:
    """The local Ollama server (OLLAMA_HOST, default localhost:11434); keyless."""
    return _spec(
        "OLLAMA_HOST",
        name="ollama",
        label="Ollama",
        kind="ollama",
        base_url=f"{ollama_host(env.get('OLLAMA_HOST', ''))}/v1",
        base_url_env="OLLAMA_HOST",
        catalog_source="ollama",
        vision_format="openai",
        note="Phi tags on Ollama are text-only.",
    )


def github(env: Mapping[str, str]) -> EndpointSpec:
    """GitHub Models, a legacy endpoint (retired on 2026-07-30); on with PLAYGROUND_GITHUB_MODELS=1."""
    return _spec(
        "PLAYGROUND_GITHUB_MODELS",
        name="github",
        label="GitHub Models",
        base_url=GITHUB_URL,
        api_key_env="GITHUB_TOKEN",
        catalog_source="github",
        retired=GITHUB_RETIRED,
        note=f"Retired by GitHub on {GITHUB_RETIRED}: calls answer 410. Kept for reference only.",
    )


def azure_ai(env: Mapping[str, str]) -> EndpointSpec | None:
    """Azure AI Foundry (services.ai.azure.com/models) and serverless endpoints, via azure-ai-inference."""
    url = env.get("AZURE_AI_CHAT_ENDPOINT", "").strip()
    if not url:
        return None
    return _spec(
        "AZURE_AI_CHAT_ENDPOINT",
        name="azure-ai",
        label="Azure AI Foundry",
        kind="azure-ai",
        base_url=url,
        base_url_env="AZURE_AI_CHAT_ENDPOINT",
        api_key_env="AZURE_AI_CHAT_KEY",
        models=_names(env.get("PLAYGROUND_AZURE_AI_DEPLOYMENTS", "")),
        catalog_source="azure",
        note=f"The azure-ai-inference SDK was retired on {AZURE_AI_INFERENCE_RETIRED}; "
        "prefer AZURE_OPENAI_ENDPOINT (the openai SDK) where the deployment supports it.",
    )


def ollama_host(raw: str) -> str:
    """OLLAMA_HOST as Ollama's own client reads it ("host", "host:port", "https://host"), as a URL."""
    value = raw.strip().rstrip("/") or OLLAMA_URL
    parts = urlsplit(value if "://" in value else f"http://{value}")
    host = parts.hostname or "localhost"
    host = "localhost" if host == "0.0.0.0" else host
    port = parts.port or (443 if parts.scheme == "https" else 11434)
    return f"{parts.scheme}://{host}:{port}{parts.path}"


def _names(raw: str) -> list[str]:
    return [n.strip() for n in raw.split(",") if n.strip()]


def _spec(variable: str, **fields: object) -> EndpointSpec:
    """Build a preset; an invalid value becomes a ConfigError naming the variable."""
    from pydantic import ValidationError

    try:
        return EndpointSpec.model_validate(fields)
    except ValidationError as exc:
        problems = "; ".join(str(e["msg"]).removeprefix("Value error, ") for e in exc.errors())
        raise ConfigError(f"{variable}: {problems}.") from None
