"""Get code: a runnable script making the same call with the provider's own SDK or engine.

Generated code is code. Untrusted text (model names and ids as endpoints list them, endpoints, prompts,
system prompts, stop sequences, header values, paths) reaches a script only through `literal`, which
writes Python literals with repr(): never into a docstring, a comment or a name. Docstrings and the
statements around the literals are fixed text. The cloud requests come from the builders the adapters
send (`chat_request`, `complete_request`), the local ones mirror the engines' option mapping, so Get code
and the wire cannot drift apart. A script never contains a key: only the name of the variable that holds it.
"""

from __future__ import annotations

import keyword
import math
import re
import secrets
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .catalog import entry_for, sampling_for
from .errors import PlaygroundError
from .options import GenerationOptions
from .providers.cloud.azure_inference import complete_request
from .providers.cloud.openai_compat import KEYLESS, chat_request
from .providers.cloud.wire import MAX_STOPS
from .providers.local.hf import sampling_kwargs
from .providers.local.onnx import search_options
from .types import Message, ModelSpec, Sdk

if TYPE_CHECKING:
    from .answers import Request
    from .registry import Registry

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_SAFE_WORD = re.compile(r"[A-Za-z0-9._/-]*")  # the only text a comment may quote (catalog repo names)


def snippet(
    spec: ModelSpec,
    messages: Sequence[Message],
    options: GenerationOptions,
    *,
    model_dir: str | Path | None = None,
) -> tuple[str, str]:
    """(language, code) reproducing this request; `model_dir`: where a local model lies, if known."""
    if spec.sdk is Sdk.ONNXRUNTIME_GENAI:
        return "python", _onnx(spec, messages, options, model_dir)
    if spec.sdk is Sdk.TRANSFORMERS:
        return "python", _transformers(spec, messages, options, model_dir)
    if spec.sdk is Sdk.AZURE_AI_INFERENCE:
        return "python", _azure(spec, messages, options)
    return "python", _openai(spec, messages, options)


EMPTY = (
    "# The conversation is empty: ask a question (or type one in the box), then press the button again:\n"
    "# Get code writes the script that sends that question with these settings.\n"
)


def code_for(registry: Registry, request: Request) -> tuple[str, str]:
    """The script for the answer on screen: the request the page would send for it (the conversation up
    to its last question, the model's sampling defaults where none is set), with where the model lies
    here and how to get it elsewhere. The page's Get code and `python -m playground code` both call this."""
    spec = registry.resolve(request.model, request.provider)
    messages = list(request.messages)
    while messages and messages[-1].role == "assistant":  # the answer on screen is what the script prints
        messages.pop()
    if not any(m.role == "user" for m in messages):
        return "python", EMPTY
    sampling = sampling_for(spec)
    options = sampling.apply(request.options) if sampling is not None else request.options
    model_dir: Path | None = None
    if spec.local:
        try:
            model_dir = registry.folder(spec)
        except PlaygroundError:  # not on this disk: the script says how to get it
            model_dir = None
    return snippet(spec, messages, options, model_dir=model_dir)


# Literals ----------------------------------------------------------------------------------------------


class _Literals:
    """Writes values as Python literals; image URLs become `data_url(path)` calls, read when the script runs.

    While a request is built, each image stands as a marker holding a random tag that no prompt can know.
    """

    def __init__(self) -> None:
        tag = secrets.token_hex(8)
        self._marker = f"\x00image-{tag}-{{}}\x00"
        self._pattern = re.compile(f"\x00image-{tag}-(\\d+)\x00")
        self.images: list[str] = []

    def image_url(self, image: str, limit: int | None) -> str:
        """Stands in for wire.data_url while a request is built."""
        self.images.append(image)
        return self._marker.format(len(self.images) - 1)

    def __call__(self, value: object) -> str:
        if isinstance(value, str):
            return self._text(value)
        if value is None or isinstance(value, bool | int):
            return repr(value)
        if isinstance(value, float):
            if not math.isfinite(value):
                raise ValueError(f"not a finite number: {value!r}")
            return repr(value)
        if isinstance(value, list | tuple):
            return "[" + ", ".join(self(v) for v in value) + "]"
        if isinstance(value, Mapping):
            return "{" + ", ".join(f"{self(k)}: {self(v)}" for k, v in value.items()) + "}"
        raise TypeError(f"no literal for {type(value).__name__}")

    def _text(self, text: str) -> str:
        parts = self._pattern.split(text)
        if len(parts) == 1:
            return repr(text)
        pieces = [
            f"data_url({self.images[int(part)]!r})" if odd else repr(part)
            for odd, part in ((i % 2 == 1, p) for i, p in enumerate(parts))
            if odd or part
        ]
        return " + ".join(pieces)


def _kwargs(literal: _Literals, params: Mapping[str, object], indent: str = "    ") -> str:
    """Keyword arguments, one a line; the names are ours, checked to be plain identifiers."""
    lines = []
    for name, value in params.items():
        if not name.isidentifier() or keyword.iskeyword(name):
            raise ValueError(f"not a keyword argument name: {name!r}")
        lines.append(f"{indent}{name}={literal(value)},\n")
    return "".join(lines)


def _list(literal: _Literals, name: str, items: Sequence[object]) -> str:
    """`name = [...]` with one item a line."""
    body = "".join(f"    {literal(item)},\n" for item in items)
    return f"{name} = [\n{body}]\n"


_DATA_URL = '''

def data_url(path):
    """An image file as a data: URL (http(s) and data: URLs are used as they are)."""
    if path.startswith(("http://", "https://", "data:")):
        return path
    mime = mimetypes.guess_type(path)[0] or "image/png"
    with open(path, "rb") as file:
        return f"data:{mime};base64," + base64.b64encode(file.read()).decode()
'''

_PRINT_UNTIL_STOP = '''

def print_until_stop(pieces, stop):
    """Print streamed text up to the first stop sequence, holding back what could begin one."""
    hold = max((len(s) for s in stop), default=1) - 1
    text, shown = "", 0
    for piece in pieces:
        text += piece
        cuts = [i for i in (text.find(s) for s in stop) if i >= 0]
        if cuts:
            print(text[shown : min(cuts)], end="", flush=True)
            break
        ready = max(shown, len(text) - hold)
        print(text[shown:ready], end="", flush=True)
        shown = ready
    else:
        print(text[shown:], end="")
    print()
'''


# Cloud: from the adapters' own request builders ----------------------------------------------------------


def _key_expr(spec: ModelSpec) -> str:
    variable = spec.extra.get("api_key_env")
    if not variable:
        return repr(KEYLESS)
    if spec.extra.get("key_required", True):
        return f"os.environ[{str(variable)!r}]"
    return f"os.environ.get({str(variable)!r}, {KEYLESS!r})"


def _url_expr(spec: ModelSpec, literal: Callable[[str], str]) -> str:
    """The endpoint's URL: read from its variable when credentials are inside it (never written out)."""
    variable = spec.extra.get("base_url_env")
    if variable:
        return f"os.environ[{str(variable)!r}]"
    return literal(str(spec.extra.get("base_url", "")))


def _header_value(value: str) -> str:
    """A header value; each ${VAR} in it read from the environment when the script runs."""
    parts = _ENV_REF.split(value)
    exprs = [f"os.environ[{p!r}]" if i % 2 else repr(p) for i, p in enumerate(parts) if i % 2 or p]
    return " + ".join(exprs) or "''"


def _headers_expr(spec: ModelSpec, *, key_header: bool) -> str:
    headers = spec.extra.get("headers")
    items = []
    if isinstance(headers, dict):
        items = [f"{str(name)!r}: {_header_value(str(value))}" for name, value in headers.items()]
    name = spec.extra.get("key_header")
    if key_header and name and spec.extra.get("api_key_env"):
        items.append(f"{str(name)!r}: {_key_expr(spec)}")
    return "{" + ", ".join(items) + "}" if items else ""


def _request_parts(
    literal: _Literals,
    build: Callable[..., dict[str, Any]],
    spec: ModelSpec,
    messages: Sequence[Message],
    options: GenerationOptions,
) -> tuple[dict[str, Any], str, str, str]:
    """The request an adapter's builder makes (`chat_request`, `complete_request`) but its messages, and
    (imports, helper functions, `messages = [...]` and, where needed, `stop = [...]`)."""
    request = build(
        str(spec.extra.get("model", spec.source)),
        messages,
        options,
        vision=spec.extra.get("vision_format", "openai"),
        extras=bool(spec.extra.get("sampling_extras")),
        include_usage=False,
        image_url=literal.image_url,
    )
    wire = request.pop("messages")
    assert isinstance(wire, list)
    listing = _list(literal, "messages", wire)
    helpers = _DATA_URL if literal.images else ""
    if len(options.stop) > MAX_STOPS:  # the endpoint takes 4: the rest are applied here, as the adapter does
        helpers += _PRINT_UNTIL_STOP
        listing += f"stop = {literal(list(options.stop))}\n"
    helpers += "\n" if helpers else ""
    imports = "import base64\nimport mimetypes\nimport os\n" if literal.images else "import os\n"
    return request, imports, helpers, listing


def _printing(options: GenerationOptions, stream: str) -> str:
    """The loop that prints the stream's text (cut at every stop sequence where the endpoint takes only 4)."""
    if len(options.stop) > MAX_STOPS:
        return (
            "pieces = (\n"
            f"    part.choices[0].delta.content\n"
            f"    for part in {stream}\n"
            "    if part.choices and part.choices[0].delta.content\n"
            ")\n"
            "print_until_stop(pieces, stop)\n"
        )
    return (
        f"for part in {stream}:\n"
        "    if part.choices and part.choices[0].delta.content:\n"
        '        print(part.choices[0].delta.content, end="", flush=True)\n'
        "print()\n"
    )


def _openai(spec: ModelSpec, messages: Sequence[Message], options: GenerationOptions) -> str:
    literal = _Literals()
    request, imports, helpers, listing = _request_parts(literal, chat_request, spec, messages, options)
    headers = _headers_expr(spec, key_header=True)
    header_line = f"    default_headers={headers},\n" if headers else ""
    arguments = {"model": request.pop("model")}
    return (
        '"""Get code (SLM Playground): this conversation, streamed with the openai SDK (pip install openai)."""\n\n'
        f"{imports}\nfrom openai import OpenAI\n{helpers}\n"
        "client = OpenAI(\n"
        f"    base_url={_url_expr(spec, literal)},\n"
        f"    api_key={_key_expr(spec)},\n"
        f"{header_line})\n\n"
        f"{listing}\n"
        "stream = client.chat.completions.create(\n"
        f"{_kwargs(literal, arguments)}"
        "    messages=messages,\n"
        f"{_kwargs(literal, request)}"
        ")\n"
        f"{_printing(options, 'stream')}"
    )


def _azure(spec: ModelSpec, messages: Sequence[Message], options: GenerationOptions) -> str:
    literal = _Literals()
    request, imports, helpers, listing = _request_parts(literal, complete_request, spec, messages, options)
    headers = _headers_expr(spec, key_header=False)
    header_line = f"    headers={headers},\n" if headers else ""
    version = spec.extra.get("api_version")
    version_line = f"    api_version={literal(str(version))},\n" if version else ""
    arguments = {"model": request.pop("model")}
    return (
        '"""Get code (SLM Playground): this conversation, streamed with azure-ai-inference '
        '(pip install azure-ai-inference)."""\n\n'
        f"{imports}\n"
        "from azure.ai.inference import ChatCompletionsClient\n"
        "from azure.core.credentials import AzureKeyCredential\n"
        f"{helpers}\n"
        "client = ChatCompletionsClient(\n"
        f"    endpoint={_url_expr(spec, literal)},\n"
        f"    credential=AzureKeyCredential({_key_expr(spec)}),\n"
        f"{version_line})\n\n"
        f"{listing}\n"
        "response = client.complete(\n"
        f"{_kwargs(literal, arguments)}"
        "    messages=messages,\n"
        f"{_kwargs(literal, request)}"
        f"{header_line}"
        ")\n"
        f"{_printing(options, 'response')}"
        "client.close()\n"
    )


# Local engines: the options exactly as the engines pass them -----------------------------------------------


def _hub_repo(spec: ModelSpec) -> str:
    """The model's Hugging Face repo (the catalog's `hub_repo`, else its source's `repo`), if a plain name."""
    entry = entry_for(spec)
    repo = (entry.hub_repo if entry is not None else "") or str(spec.extra.get("repo", ""))
    return repo if repo and _SAFE_WORD.fullmatch(repo) else ""


def _download_hint(spec: ModelSpec) -> str:
    """Comments saying how to get the model on another machine, only in plain catalog names."""
    repo, subfolder = _hub_repo(spec), str(spec.extra.get("subfolder", ""))
    if not repo or not _SAFE_WORD.fullmatch(subfolder):
        return ""
    if spec.sdk is Sdk.TRANSFORMERS:
        return (
            f"# On another machine: set MODEL_DIR={repo} (its Hugging Face repo, downloaded on first use).\n"
        )
    if spec.extra.get("repo") and subfolder:
        return f"# On another machine: hf download {repo} --include '{subfolder}/*', then set MODEL_DIR.\n"
    return (
        "# On another machine: `python -m playground prepare` builds this folder, or build it from the\n"
        f"# Hugging Face repo: python -m onnxruntime_genai.models.builder -m {repo} -o FOLDER -p int4 -e cpu,\n"
        "# then set MODEL_DIR=FOLDER.\n"
    )


def _onnx(
    spec: ModelSpec, messages: Sequence[Message], options: GenerationOptions, model_dir: str | Path | None
) -> str:
    literal = _Literals()
    folder = str(model_dir or spec.extra.get("path") or "path/to/the/onnx/model/folder")
    where = "" if "path" in spec.extra else _download_hint(spec)
    chat = [m.to_dict() for m in messages]
    stop = f"stop = {literal(list(options.stop))}\n"
    given, feed, first = ("", "", "") if not options.answer_prefix else _ONNX_BRANCH
    return (
        '"""Get code (SLM Playground): this conversation with ONNX Runtime GenAI '
        '(pip install onnxruntime-genai)."""\n\n'
        "import json\nimport os\nfrom pathlib import Path\n\nimport onnxruntime_genai as og\n"
        f"{_PRINT_UNTIL_STOP}\n\n"
        f"{where}"
        f'folder = os.environ.get("MODEL_DIR", {literal(folder)})\n'
        "model = og.Model(og.Config(folder))\n"
        "tokenizer = og.Tokenizer(model)\n"
        'template = Path(folder, "chat_template.jinja")\n'
        f"{_list(literal, 'messages', chat)}"
        f"{stop}\n"
        "template_str = template.read_text() if template.is_file() else None\n"
        "prompt = tokenizer.apply_chat_template(\n"
        "    json.dumps(messages), template_str=template_str, add_generation_prompt=True\n"
        ")\n"
        "tokens = tokenizer.encode(prompt)\n"
        f"{_branch(literal, options)}\n"
        "params = og.GeneratorParams(model)\n"
        "params.set_search_options(\n"
        f"    max_length=min(len(tokens){given} + {options.max_new_tokens!r}, {spec.context_window!r}),\n"
        f"{_kwargs(literal, search_options(options))}"
        ")\n"
        f"{_onnx_guidance(literal, options)}"
        "generator = og.Generator(model, params)\n"
        "generator.append_tokens(tokens)\n"
        f"{feed}"
        "stream = tokenizer.create_stream()\n\n\n"
        "def pieces():\n"
        f"{first}"
        "    while not generator.is_done():\n"
        "        generator.generate_next_token()\n"
        "        yield stream.decode(generator.get_next_tokens()[0])\n\n\n"
        "print_until_stop(pieces(), stop)\n"
    )


_ONNX_BRANCH = (  # a branch: its length in max_length, its tokens fed, its text yielded first
    " + len(branch)",
    "generator.append_tokens(branch)\n",
    '    yield "".join(stream.decode(token) for token in branch)  # the branch\'s text first\n',
)


def _branch(literal: _Literals, options: GenerationOptions) -> str:
    """A branch shown in the page (branching.py): its given tokens, fed after the prompt's."""
    if not options.answer_prefix:
        return ""
    return (
        "# The branch on screen: the answer's first tokens, the last one the alternative picked in the token\n"
        "# view. They go in after the prompt's and the model continues after them, as in the playground.\n"
        f"branch = {literal(list(options.answer_prefix))}\n"
    )


def _transformers_branch(literal: _Literals, options: GenerationOptions) -> str:
    """The branch's given tokens appended to the inputs; their text is printed before the streamer's
    (which skips them with the prompt)."""
    if not options.answer_prefix:
        return ""
    return (
        f"{_branch(literal, options)}"
        "given = torch.tensor([branch], device=device)\n"
        'inputs["input_ids"] = torch.cat([inputs["input_ids"], given], dim=1)\n'
        'inputs["attention_mask"] = torch.cat([inputs["attention_mask"], torch.ones_like(given)], dim=1)\n\n\n'
        "def shown(streamer):\n"
        "    yield tokenizer.decode(branch, skip_special_tokens=True)\n"
        "    yield from streamer\n\n\n"
    )


def _onnx_guidance(literal: _Literals, options: GenerationOptions) -> str:
    """The response format as ONNX Runtime GenAI's guidance (llguidance inside the engine)."""
    if options.response_format is None:
        return ""
    kind, data = options.response_format.guidance()
    return f"params.set_guidance({literal(kind)}, {literal(data)})  # the response format\n"


_GUIDED = """
# The response format, held by llguidance (pip install llguidance): every token that would leave it is
# masked at each step, as the playground does.
import llguidance
import llguidance.hf
import llguidance.torch as lltorch
from transformers import LogitsProcessor, LogitsProcessorList

ll_tokenizer = llguidance.hf.from_tokenizer(tokenizer)
matcher = llguidance.LLMatcher(ll_tokenizer, llguidance.LLMatcher.{grammar}({data}))
mask = lltorch.allocate_token_bitmask(1, ll_tokenizer.vocab_size)


class Guided(LogitsProcessor):
    started = False

    def __call__(self, input_ids, scores):
        if self.started:
            matcher.consume_token(int(input_ids[0, -1]))
        self.started = True
        lltorch.fill_next_token_bitmask(matcher, mask, 0)
        lltorch.apply_token_bitmask_inplace(scores, mask.to(scores.device))
        return scores


"""


def _transformers_guidance(literal: _Literals, options: GenerationOptions) -> str:
    """The response format as a logits processor for generate() (defined before `generation` runs)."""
    if options.response_format is None:
        return ""
    kind, data = options.response_format.guidance()
    grammar = "grammar_from_regex" if kind == "regex" else "grammar_from_json_schema"
    return _GUIDED.format(grammar=grammar, data=literal(data))


def _transformers(
    spec: ModelSpec, messages: Sequence[Message], options: GenerationOptions, model_dir: str | Path | None
) -> str:
    literal = _Literals()
    source = str(
        model_dir or spec.extra.get("path") or spec.extra.get("repo") or spec.source or "path/to/model"
    )
    load: dict[str, object] = {"trust_remote_code": bool(spec.extra.get("trust_remote_code"))}
    if source.endswith(".gguf"):
        path = Path(source)
        source, load = str(path.parent), {**load, "gguf_file": path.name}
    seed = f"torch.manual_seed({options.seed!r})\n" if options.seed is not None else ""
    where = "" if "path" in spec.extra else _download_hint(spec)
    return (
        '"""Get code (SLM Playground): this conversation with transformers '
        '(pip install transformers torch)."""\n\n'
        "import os\nimport threading\n\nimport torch\n"
        "from transformers import AutoModelForCausalLM, AutoTokenizer, TextIteratorStreamer\n"
        f"{_PRINT_UNTIL_STOP}\n\n"
        "if torch.cuda.is_available():\n"
        '    device, dtype = "cuda", torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16\n'
        "else:\n"
        '    device, dtype = "cpu", torch.float32\n'
        f"{where}"
        f'source = os.environ.get("MODEL_DIR", {literal(source)})\n'
        "tokenizer = AutoTokenizer.from_pretrained(\n"
        "    source,\n"
        f"{_kwargs(literal, load)}"
        ")\n"
        "model = AutoModelForCausalLM.from_pretrained(\n"
        "    source,\n"
        "    dtype=dtype,\n"
        f"{_kwargs(literal, load)}"
        ").to(device)\n"
        f"{_list(literal, 'messages', [m.to_dict() for m in messages])}"
        f"stop = {literal(list(options.stop))}\n\n"
        "prompt = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)\n"
        'inputs = tokenizer(prompt, return_tensors="pt", add_special_tokens=False).to(device)\n'
        f"{_transformers_branch(literal, options)}"
        'prompt_length = int(inputs["input_ids"].shape[1])\n'
        "eos = model.generation_config.eos_token_id\n"
        "eos = eos if isinstance(eos, list) else [eos]\n"
        "streamer = TextIteratorStreamer(tokenizer, skip_prompt=True, skip_special_tokens=True)\n"
        f"{seed}"
        f"{_transformers_guidance(literal, options)}"
        "generation = dict(\n"
        "    inputs,\n"
        f"    max_new_tokens=min({options.max_new_tokens!r}, max(1, {spec.context_window!r} - prompt_length)),\n"
        f"{_kwargs(literal, sampling_kwargs(options))}"
        "    pad_token_id=tokenizer.pad_token_id or eos[0],\n"
        f"{'    logits_processor=LogitsProcessorList([Guided()]),' + chr(10) if options.response_format else ''}"
        "    streamer=streamer,\n"
        "    stop_strings=stop or None,\n"
        "    tokenizer=tokenizer,\n"
        ")\n"
        "thread = threading.Thread(target=model.generate, kwargs=generation)\n"
        "thread.start()\n"
        f"print_until_stop({'shown(streamer)' if options.answer_prefix else 'streamer'}, stop)\n"
        "thread.join()\n"
    )
