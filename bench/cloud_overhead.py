"""What the cloud adapter adds over a bare openai SDK call: time to first token and decode rate.

Run by hand against any OpenAI-compatible server, e.g. `transformers serve <folder> --port 8000`:
    python bench/cloud_overhead.py http://127.0.0.1:8000/v1 [runs]
Both clients stream the same greedy request, interleaved, with a fresh connection pool each.
"""

from __future__ import annotations

import statistics
import sys
import time

from openai import OpenAI

from playground.catalog import load_catalog
from playground.options import GenerationOptions
from playground.providers.base import ChatModel
from playground.providers.cloud import build_cloud_providers
from playground.settings import Settings
from playground.types import Message

QUESTION = "Write three sentences about Paris."
TOKENS = 64


def bare(client: OpenAI, model: str) -> tuple[float, float]:
    start = time.perf_counter()
    first, count = 0.0, 0
    stream = client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": QUESTION}],
        temperature=0.0,
        max_tokens=TOKENS,
        stream=True,
    )
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            count += 1
            if not first:
                first = time.perf_counter()
    end = time.perf_counter()
    return first - start, (count - 1) / (end - first)


def adapter(model: ChatModel) -> tuple[float, float]:
    options = GenerationOptions(temperature=0.0, max_new_tokens=TOKENS)
    metrics = None
    for chunk in model.stream([Message("user", QUESTION)], options):
        metrics = chunk.metrics or metrics
    assert metrics is not None and metrics.ttft_s is not None and metrics.tokens_per_s is not None
    return metrics.ttft_s, metrics.tokens_per_s


def main() -> None:
    base_url = sys.argv[1]
    runs = int(sys.argv[2]) if len(sys.argv) > 2 else 10
    client = OpenAI(base_url=base_url, api_key="none", max_retries=0)
    settings = Settings.from_env({"OPENAI_BASE_URL": base_url, "PLAYGROUND_DATA_DIR": "/tmp/bench-cloud"})
    provider = next(
        p for p in build_cloud_providers(settings, load_catalog()) if p.name == "openai-compatible"
    )
    spec = provider.specs()[0]
    model = provider.load(spec)
    bare(client, str(spec.extra["model"]))  # warm the server and both connection pools
    adapter(model)
    results: dict[str, list[tuple[float, float]]] = {"bare openai SDK": [], "playground adapter": []}
    for _ in range(runs):
        results["bare openai SDK"].append(bare(client, str(spec.extra["model"])))
        results["playground adapter"].append(adapter(model))
    for name, values in results.items():
        ttft = statistics.median(v[0] for v in values) * 1000
        rate = statistics.median(v[1] for v in values)
        print(f"{name:<20} first token {ttft:7.1f} ms   decode {rate:6.1f} tok/s   (median of {runs})")


if __name__ == "__main__":
    main()
