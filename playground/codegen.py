"""Get code: a runnable script making the same call in the provider's own SDK, key read from the environment.

The script never contains a key: only the name of the variable that holds it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from .options import GenerationOptions
from .types import Message, ModelSpec

_OPENAI_KINDS = ("openai", "ollama")
_KEYLESS = "none"


def snippet(
    spec: ModelSpec,
    messages: Sequence[Message],
    options: GenerationOptions,
    *,
    model_dir: str | Path | None = None,
) -> tuple[str, str]:
    """(language, code) reproducing this request; `model_dir`: where a local ONNX model lies, if known."""
    kind = str(spec.extra.get("kind", ""))
    if spec.provider == "onnx":
        return "python", _onnx(spec, messages, options, model_dir)
    if spec.provider == "transformers":
        return "python", _transformers(spec, messages, options)
    if kind == "azure-ai":
        return "python", _azure(spec, messages, options)
    if kind in _OPENAI_KINDS:
        return "python", _openai(spec, messages, options)
    return "text", f"# No code template for {spec.engine_label} ({spec.provider})."


def _py(value: object) -> str:
    """A Python literal (repr, not JSON: True and None, not true and null)."""
    return repr(value)


def _messages_code(messages: Sequence[Message], *, vision: str) -> tuple[str, bool]:
    """The messages as a Python literal; image paths become calls to data_url(path)."""
    lines = ["messages = ["]
    uses_images = False
    for message in messages:
        if not message.images:
            lines.append(f"    {{'role': {message.role!r}, 'content': {message.content!r}}},")
            continue
        uses_images = True
        urls = [f"data_url({image!r})" for image in message.images]
        if vision == "img-tag":
            tags = " + ".join(f"' <img src=\"' + {u} + '\" />'" for u in urls)
            lines.append(f"    {{'role': {message.role!r}, 'content': {message.content!r} + {tags}}},")
            continue
        parts = [f"{{'type': 'text', 'text': {message.content!r}}}"] if message.content else []
        for url in urls:
            image_url = url if vision == "bare-string" else f"{{'url': {url}}}"
            parts.append(f"{{'type': 'image_url', 'image_url': {image_url}}}")
        lines.append(f"    {{'role': {message.role!r}, 'content': [{', '.join(parts)}]}},")
    lines.append("]")
    return "\n".join(lines), uses_images


_DATA_URL = '''

def data_url(path):
    """An image file as a data: URL (http(s) and data: URLs are used as they are)."""
    if path.startswith(("http://", "https://", "data:")):
        return path
    mime = mimetypes.guess_type(path)[0] or "image/png"
    return f"data:{mime};base64," + base64.b64encode(open(path, "rb").read()).decode()
'''


def _params(options: GenerationOptions) -> dict[str, object]:
    params: dict[str, object] = {
        "temperature": options.temperature,
        "top_p": options.top_p,
        "max_tokens": options.max_new_tokens,
    }
    if options.seed is not None:
        params["seed"] = options.seed
    if options.stop:
        params["stop"] = list(options.stop[:4])
    return params


def _kwargs(params: dict[str, object], indent: str = "    ") -> str:
    return "".join(f"{indent}{key}={_py(value)},\n" for key, value in params.items())


def _key_expr(spec: ModelSpec) -> str:
    variable = spec.extra.get("api_key_env")
    if not variable:
        return repr(_KEYLESS)
    if spec.extra.get("key_required", True):
        return f"os.environ[{variable!r}]"
    return f"os.environ.get({variable!r}, {_KEYLESS!r})"


def _headers_expr(spec: ModelSpec) -> str:
    headers = spec.extra.get("headers")
    if not isinstance(headers, dict) or not headers:
        return ""
    items = []
    for name, value in headers.items():
        text = str(value)
        if text.startswith("${") and text.endswith("}"):
            items.append(f"{name!r}: os.environ[{text[2:-1]!r}]")
        else:
            items.append(f"{name!r}: {text!r}")
    return "{" + ", ".join(items) + "}"


def _openai(spec: ModelSpec, messages: Sequence[Message], options: GenerationOptions) -> str:
    vision = str(spec.extra.get("vision_format", "openai"))
    body, images = _messages_code(messages, vision=vision)
    headers = _headers_expr(spec)
    header_line = f"    default_headers={headers},\n" if headers else ""
    imports = "import base64\nimport mimetypes\nimport os\n" if images else "import os\n"
    return (
        f'"""{spec.name} on {spec.engine_label}, streamed with the openai SDK (pip install openai)."""\n\n'
        f"{imports}\nfrom openai import OpenAI\n"
        f"{_DATA_URL if images else ''}\n"
        "client = OpenAI(\n"
        f"    base_url={str(spec.extra.get('base_url', ''))!r},\n"
        f"    api_key={_key_expr(spec)},\n"
        f"{header_line})\n\n"
        f"{body}\n\n"
        "stream = client.chat.completions.create(\n"
        f"    model={str(spec.extra.get('model', spec.source))!r},\n"
        "    messages=messages,\n"
        f"{_kwargs(_params(options))}"
        "    stream=True,\n"
        ")\n"
        "for chunk in stream:\n"
        "    if chunk.choices and chunk.choices[0].delta.content:\n"
        '        print(chunk.choices[0].delta.content, end="", flush=True)\n'
        "print()\n"
    )


def _azure(spec: ModelSpec, messages: Sequence[Message], options: GenerationOptions) -> str:
    body, images = _messages_code(messages, vision=str(spec.extra.get("vision_format", "openai")))
    imports = "import base64\nimport mimetypes\nimport os\n" if images else "import os\n"
    headers = _headers_expr(spec)
    header_line = f"    headers={headers},\n" if headers else ""
    version = spec.extra.get("api_version")
    version_line = f"    api_version={str(version)!r},\n" if version else ""
    return (
        f'"""{spec.name} on {spec.engine_label}, streamed with azure-ai-inference '
        '(pip install azure-ai-inference)."""\n\n'
        f"{imports}\n"
        "from azure.ai.inference import ChatCompletionsClient\n"
        "from azure.core.credentials import AzureKeyCredential\n"
        f"{_DATA_URL if images else ''}\n"
        "client = ChatCompletionsClient(\n"
        f"    endpoint={str(spec.extra.get('base_url', ''))!r},\n"
        f"    credential=AzureKeyCredential({_key_expr(spec)}),\n"
        f"{version_line})\n\n"
        f"{body}\n\n"
        "response = client.complete(\n"
        "    stream=True,\n"
        f"    model={str(spec.extra.get('model', spec.source))!r},\n"
        "    messages=messages,\n"
        f"{_kwargs(_params(options))}"
        f"{header_line}"
        ")\n"
        "for update in response:\n"
        "    if update.choices and update.choices[0].delta.content:\n"
        '        print(update.choices[0].delta.content, end="", flush=True)\n'
        "print()\n"
        "client.close()\n"
    )


def _search(options: GenerationOptions) -> dict[str, object]:
    """Sampling settings as the local engines pass them; top_k only where it filters (0 means off)."""
    search: dict[str, object] = {
        "do_sample": not options.greedy,
        "repetition_penalty": options.repetition_penalty,
    }
    if not options.greedy:
        search.update(temperature=options.temperature, top_p=options.top_p)
        if options.top_k:
            search["top_k"] = options.top_k
    return search


def _onnx(
    spec: ModelSpec, messages: Sequence[Message], options: GenerationOptions, model_dir: str | Path | None
) -> str:
    folder = str(model_dir or spec.extra.get("path") or "path/to/the/onnx/model/folder")
    chat = json.dumps([m.to_dict() for m in messages], ensure_ascii=False)
    search = _search(options)
    if options.seed is not None:
        search["random_seed"] = options.seed
    search_code = ", ".join(f"{k}={_py(v)}" for k, v in search.items())
    where = ""
    if not model_dir and "path" not in spec.extra and spec.extra.get("repo"):
        pattern = f"{spec.extra.get('subfolder', '')}/*"
        where = f"# Download it first: hf download {spec.extra['repo']} --include '{pattern}'\n"
    return (
        f'"""{spec.name} with ONNX Runtime GenAI (pip install onnxruntime-genai)."""\n\n'
        "import json\nimport os\n\nimport onnxruntime_genai as og\n\n"
        f"{where}"
        f'model = og.Model(og.Config(os.environ.get("MODEL_DIR", {folder!r})))\n'
        "tokenizer = og.Tokenizer(model)\n"
        f"messages = {chat!r}\n"
        "prompt = tokenizer.apply_chat_template(messages, add_generation_prompt=True)\n"
        "tokens = tokenizer.encode(prompt)\n\n"
        "params = og.GeneratorParams(model)\n"
        f"params.set_search_options(max_length=len(tokens) + {options.max_new_tokens}, {search_code})\n"
        "generator = og.Generator(model, params)\n"
        "generator.append_tokens(tokens)\n"
        "stream = tokenizer.create_stream()\n"
        "while not generator.is_done():\n"
        "    generator.generate_next_token()\n"
        '    print(stream.decode(generator.get_next_tokens()[0]), end="", flush=True)\n'
        "print()\n"
    )


def _transformers(spec: ModelSpec, messages: Sequence[Message], options: GenerationOptions) -> str:
    source = str(spec.extra.get("path") or spec.extra.get("repo") or spec.source or "path/to/model")
    remote = bool(spec.extra.get("trust_remote_code"))
    chat = [m.to_dict() for m in messages]
    kwargs = {"max_new_tokens": options.max_new_tokens, **_search(options)}
    seed = f"torch.manual_seed({options.seed})\n" if options.seed is not None else ""
    return (
        f'"""{spec.name} with transformers (pip install transformers torch)."""\n\n'
        "import torch\nfrom transformers import AutoModelForCausalLM, AutoTokenizer, TextStreamer\n\n"
        f"source = {source!r}\n"
        f"tokenizer = AutoTokenizer.from_pretrained(source, trust_remote_code={remote})\n"
        f'model = AutoModelForCausalLM.from_pretrained(source, dtype="auto", trust_remote_code={remote})\n'
        f"messages = {chat!r}\n"
        "inputs = tokenizer.apply_chat_template(\n"
        '    messages, add_generation_prompt=True, return_tensors="pt", return_dict=True\n'
        ").to(model.device)\n"
        f"{seed}"
        "model.generate(\n"
        "    **inputs,\n"
        f"{_kwargs(kwargs)}"
        "    streamer=TextStreamer(tokenizer, skip_prompt=True, skip_special_tokens=True),\n"
        ")\n"
    )
