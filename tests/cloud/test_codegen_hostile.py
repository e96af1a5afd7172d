"""Generated code is code: hostile names, endpoints, prompts and stop sequences only ever become string
literals. Each script parses, has the same statements as for benign values, and the hostile text appears in
no docstring, comment or name: only as the value of a string constant, unchanged."""

from __future__ import annotations

import ast
import io
import json
import tokenize
from dataclasses import dataclass
from pathlib import Path

import pytest

from playground.codegen import snippet
from playground.options import GenerationOptions
from playground.providers.cloud.endpoint import EndpointSpec
from playground.providers.cloud.mapping import model_spec
from playground.providers.local import path_spec
from playground.types import Message, ModelSpec

MARK = "pwned"  # every hostile value carries it; it may only appear inside string tokens
HOSTILE = [
    'x"""\nimport os; os.system("echo pwned")\n"""',
    "x'''\nimport os; os.system('echo pwned')\n'''",
    'pwned " \' \\ \\n \\" \n# pwned comment',
    "pwned\r\nprint('pwned')\r",
    "pwned é 中文 \u2028 \u0085 \U0001f600 \ud800 \x0c",
    "pwned {0} %s $(echo) \x00image-0-0\x00 ${PWNED}",
]
BENIGN = [f"benign {i}" for i in range(len(HOSTILE))]


@dataclass(frozen=True)
class Values:
    """Everything a visitor or an endpoint controls in one request."""

    model: str
    base_url: str
    header: str
    system: str
    prompt: str
    answer: str
    stops: tuple[str, ...]
    folder: str


def values(texts: list[str]) -> Values:
    a, b, c, d, e, f = texts
    return Values(
        model=a,
        base_url=f"http://host.example:8000/v1/{b}",
        header=c,
        system=d,
        prompt=e,
        answer=f,
        stops=tuple(texts),
        folder=f"x{a}",
    )


def cloud_spec(kind: str, v: Values) -> ModelSpec:
    endpoint = EndpointSpec(
        name="lab",
        label=v.model,
        kind=kind,  # type: ignore[arg-type]
        base_url=v.base_url,
        api_key_env="LAB_KEY",
        headers={"X-Team": v.header},
        models=({"id": v.model, "name": v.model},),  # type: ignore[arg-type]
        sampling_extras=True,
        api_version="2024-05-01-preview" if kind == "azure-ai" else None,
    )
    return model_spec(endpoint, v.model, None, None, endpoint.models[0])


def local_spec(provider: str, v: Values, root: Path) -> ModelSpec:
    folder = root / v.folder.replace("/", "_")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "genai_config.json").write_text(json.dumps({"model": {"context_length": 2048}}))
    (folder / "config.json").write_text(json.dumps({"max_position_embeddings": 2048}))
    return path_spec(folder, provider)


KINDS = ["openai", "ollama", "azure-ai", "onnx", "transformers"]


def script(kind: str, v: Values, stops: int, root: Path, *, images: bool = False) -> str:
    spec = cloud_spec(kind, v) if kind in ("openai", "ollama", "azure-ai") else local_spec(kind, v, root)
    pictures = (str(root / f"{v.prompt[:20].replace('/', '_')}.png"),) if images else ()
    messages = [
        Message("system", v.system),
        Message("user", v.prompt, images=pictures),
        Message("assistant", v.answer),
        Message("user", v.prompt),
    ]
    options = GenerationOptions(
        temperature=0.5, top_k=7, repetition_penalty=1.2, seed=4, stop=v.stops[:stops], max_new_tokens=9
    )
    language, code = snippet(spec, messages, options)
    assert language == "python"
    return code


def shape(tree: ast.AST) -> str:
    """The tree with every string constant emptied: the statements, calls and names, not the text."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            node.value = ""
    return ast.dump(tree, include_attributes=False)


def strings(tree: ast.AST) -> set[str]:
    return {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)}


def docstrings(tree: ast.AST) -> list[str]:
    found = []
    for node in ast.walk(tree):
        body = getattr(node, "body", [])
        for statement in body if isinstance(body, list) else []:
            if (
                isinstance(statement, ast.Expr)
                and isinstance(statement.value, ast.Constant)
                and isinstance(statement.value.value, str)
            ):
                found.append(statement.value.value)
    return found


@pytest.mark.parametrize("stops", [2, 6])
@pytest.mark.parametrize("kind", KINDS)
def test_hostile_values_only_ever_become_string_literals(kind: str, stops: int, tmp_path: Path) -> None:
    hostile, benign = values(HOSTILE), values(BENIGN)
    code = script(kind, hostile, stops, tmp_path / "h")
    tree = ast.parse(code)  # a SyntaxError here is the injection
    assert shape(tree) == shape(ast.parse(script(kind, benign, stops, tmp_path / "b"))), (
        "the hostile script has other statements than the benign one"
    )
    tokens = list(tokenize.generate_tokens(io.StringIO(code).readline))
    outside = [t for t in tokens if MARK in t.string and t.type != tokenize.STRING]
    assert outside == [], f"hostile text outside a string literal: {outside}"
    assert [d for d in docstrings(ast.parse(code)) if MARK in d] == [], "hostile text in a docstring"
    literals = strings(ast.parse(code))
    expected = {hostile.system, hostile.prompt, hostile.answer, *hostile.stops[:stops]}
    if kind in ("openai", "ollama", "azure-ai"):
        expected |= {hostile.model, hostile.base_url, hostile.header}
    else:
        expected.add(str(tmp_path / "h" / hostile.folder))
    assert expected - literals == set(), "each value arrives in the script unchanged, as one literal"


@pytest.mark.parametrize("kind", ["openai", "azure-ai"])
def test_image_paths_are_literals_too(kind: str, tmp_path: Path) -> None:
    """Images are read when the script runs: data_url(<path literal>), the path a hostile file name."""
    hostile, benign = values(HOSTILE), values(BENIGN)
    code = script(kind, hostile, 2, tmp_path, images=True)
    tree = ast.parse(code)
    assert shape(tree) == shape(ast.parse(script(kind, benign, 2, tmp_path, images=True)))
    calls = [
        n
        for n in ast.walk(ast.parse(code))
        if isinstance(n, ast.Call) and getattr(n.func, "id", "") == "data_url"
    ]
    assert [ast.literal_eval(c.args[0]) for c in calls] == [str(tmp_path / f"{hostile.prompt[:20]}.png")]
    tokens = list(tokenize.generate_tokens(io.StringIO(code).readline))
    assert [t for t in tokens if MARK in t.string and t.type != tokenize.STRING] == []
