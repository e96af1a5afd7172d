"""A run's reproducible card: everything needed to repeat it (the machine, the engine and package
versions, each model's id, variant and file hash, the sampling settings and seed, the prompt set and its
hash) with what came out (every answer, every check, the scores, speed and memory), as JSON, CSV and
Markdown; and the differences when it is repeated (`python -m playground eval --repeat FILE`)."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import platform
import shutil
import subprocess
from collections.abc import Mapping
from datetime import UTC, datetime
from functools import lru_cache
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ImportFormatError

if TYPE_CHECKING:
    from .scores import Report

FORMAT = "slm-playground-eval-card/1"
PACKAGES = ("onnxruntime-genai", "onnxruntime", "torch", "transformers", "gradio", "openai", "playground")
WEIGHTS = (".onnx", ".data", ".safetensors", ".gguf", ".bin", ".pt")


def files_hash(folder: Path) -> str:
    """The hash of a local model's weight files (each file's SHA-256, in name order, hashed again)."""
    files = sorted(p for p in Path(folder).rglob("*") if p.is_file() and p.name.endswith(WEIGHTS))
    if not files:
        return "unknown"
    return "sha256:" + _hash_of(tuple((str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in files))


@lru_cache(maxsize=64)
def _hash_of(files: tuple[tuple[str, int, int], ...]) -> str:
    """Hashed once per file set as it is on disk (its sizes and times are part of the key)."""
    whole = hashlib.sha256()
    for path, _, _ in files:
        one = hashlib.sha256()
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                one.update(block)
        whole.update(f"{Path(path).name}:{one.hexdigest()}\n".encode())
    return whole.hexdigest()


def machine() -> dict[str, Any]:
    """The machine a run ran on: CPU, cores, memory, GPU (if any), Python, the packages."""
    return {
        "cpu": _cpu(),
        "cores": os.cpu_count(),
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "gpu": _gpu(),
        "python": platform.python_version(),
        "system": platform.platform(terse=True),
        "packages": {name: _version(name) for name in PACKAGES},
    }


def _cpu() -> str:
    try:
        with open("/proc/cpuinfo") as info:
            return next((line.split(":", 1)[1].strip() for line in info if line.startswith("model name")), "")
    except OSError:
        return platform.processor()


def _gpu() -> str:
    if shutil.which("nvidia-smi") is None:
        return "none found"
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return ", ".join(line.strip() for line in out.splitlines() if line.strip()) or "none found"


def _version(name: str) -> str:
    if name == "playground":
        return _commit()
    try:
        return version(name)
    except PackageNotFoundError:
        return "-"


def _commit() -> str:
    """This checkout's commit, when it is one (a Space's copy is not)."""
    root = Path(__file__).resolve().parents[2]
    try:
        out = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip() or "not a git checkout"


def card(report: Report) -> dict[str, Any]:
    """The run as a card (JSON-ready)."""
    run = report.run
    return {
        "format": FORMAT,
        "written_utc": datetime.now(UTC).isoformat(timespec="seconds"),
        "run": {"id": run.id, "status": run.status, "created_utc": run.created_utc},
        "machine": machine(),
        "set": {"name": run.set_name, "hash": run.set_hash, "items": run.items},
        "options": run.options,
        "judge": run.judge or None,
        "models": [m.to_dict() for m in report.models],
        "ranking": {
            "by": report.ranked_by,
            "ratings": [
                {"model": r.name, "rating": r.rating, "ci": [r.low, r.high], "games": r.games}
                for r in report.ranking.ratings
            ],
        },
        "judge_agreement": {
            "checks": report.agreement.checks,
            "checks_count": report.agreement.checks_count,
            "humans": report.agreement.humans,
            "humans_count": report.agreement.humans_count,
        },
        "items": [
            {
                "model": r.model,
                "item": r.item,
                "prompt": run.items[r.item]["prompt"],
                "text": r.text,
                "finish_reason": r.finish_reason,
                "check": r.verdict,
                "judge": r.judge,
                "metrics": r.metrics,
            }
            for r in report.results
        ],
    }


def to_json(data: Mapping[str, Any]) -> str:
    return json.dumps(data, ensure_ascii=False, indent=2, sort_keys=False, default=str)


def to_csv(data: Mapping[str, Any]) -> str:
    """One row per answer: model, item, category, check, passed, speed, the prompt and the answer."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(
        [
            "model",
            "item",
            "category",
            "check",
            "passed",
            "detail",
            "ttft_s",
            "tokens_per_s",
            "prompt",
            "answer",
        ]
    )
    for row in data["items"]:
        item = data["set"]["items"][row["item"]]
        check = row["check"] or {}
        metrics = row["metrics"] or {}
        writer.writerow(
            [
                row["model"], row["item"], item.get("category", ""), item.get("check", ""), check.get("passed", ""),
                check.get("detail", ""), metrics.get("ttft_s", ""), metrics.get("tokens_per_s", ""), row["prompt"],
                row["text"],
            ]
        )  # fmt: skip
    return out.getvalue()


def to_markdown(data: Mapping[str, Any]) -> str:
    """The card for a person: what ran where, the table of models, the machine, then every answer."""
    m = data["machine"]
    lines = [
        f"# Evaluation: {data['set']['name']} ({len(data['set']['items'])} items)",
        "",
        f"Set hash `{data['set']['hash']}` · options `{json.dumps(data['options'], sort_keys=True)}`"
        + (f" · judge `{data['judge']['model']}` ({data['judge']['mode']})" if data.get("judge") else ""),
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB, GPU: {m['gpu']}; Python {m['python']}; "
        + ", ".join(f"{k} {v}" for k, v in m["packages"].items()),
        "",
        "| Model | Score (95% CI) | TTFT p50 / p95 | Prompt tok/s | Decode tok/s | Load | Peak memory | File hash |",
        "|---|---|---|---:|---:|---:|---|---|",
    ]
    for model in data["models"]:
        lines.append(_model_row(model))
    lines += ["", "## Answers", ""]
    for row in data["items"]:
        check = row["check"] or {}
        mark = "✓" if check.get("passed") else ("✗" if row["check"] is not None else "–")
        lines.append(f"- {mark} `{row['model']}` #{row['item'] + 1}: {row['text'].strip()[:200]!r}")
    return "\n".join(lines) + "\n"


def _model_row(model: Mapping[str, Any]) -> str:
    score = (
        "–" if model["score"] is None else f"{model['score']:.0%} ({model['ci'][0]:.0%}–{model['ci'][1]:.0%})"
    )
    ttft = model["ttft_s"]
    timing = "–" if ttft["p50"] is None else f"{ttft['p50'] * 1000:.0f} / {ttft['p95'] * 1000:.0f} ms"
    memory = (
        model["memory"]
        if not model["peak_memory_bytes"]
        else f"{model['peak_memory_bytes'] / 1e6:.0f} MB ({model['memory']})"
    )
    return (
        f"| `{model['id']}` | {score} | {timing} | {_num(model['prompt_tokens_per_s'])} | {_num(model['tokens_per_s'])} "
        f"| {_num(model['load_s'], 's')} | {memory} | `{str(model['file_hash'])[:19]}` |"
    )


def _num(value: float | None, unit: str = "") -> str:
    return "–" if value is None else f"{value:.1f}{unit}"


def read(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ImportFormatError(f"{path} cannot be read as an evaluation card: {exc}") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ImportFormatError(f"{path} is not an evaluation card ({FORMAT}): write one with --save-card.")
    return data


def differences(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[str]:
    """What changed when a card was repeated: answers, scores, file hashes (speed always differs a little)."""
    found = []
    was = {(r["model"], r["item"]): r for r in before["items"]}
    for row in after["items"]:
        old = was.get((row["model"], row["item"]))
        if old is None:
            found.append(f"{row['model']} #{row['item'] + 1}: not answered before")
        elif old["text"] != row["text"]:
            found.append(f"{row['model']} #{row['item'] + 1}: the answer differs")
    scores = {m["id"]: m for m in before["models"]}
    for model in after["models"]:
        old_model = scores.get(model["id"], {})
        if old_model.get("score") != model["score"]:
            found.append(f"{model['id']}: score {old_model.get('score')} then, {model['score']} now")
        if old_model.get("file_hash") != model["file_hash"]:
            found.append(f"{model['id']}: its files differ ({old_model.get('file_hash')} then)")
    return found
