"""Per-token views that stream by delta: each update sends only the new tokens' rows, and the page appends
them. Nothing per update grows with the answer's length (DESIGN.md: "per-token records stream by delta").

A view is a `gr.HTML` made by `delta_html()`. Its value is a small JSON payload, not the view itself:

    redraw(shell, rows, parts)   the whole view: the shell (its frame, with an empty element marked
                                 `data-rows` and empty elements marked `data-part="NAME"`), then its rows
    append(start, rows, parts)   rows `start`, `start + 1`, ... added at the end of the `data-rows` element

`rows` are HTML strings (one per token, escaped by whoever renders them); `parts` set the text of the
`data-part` elements (a count, a caption). A plain string that is not JSON is drawn as it is.

In the page, a small script (APPENDER, the component's `js_on_load`) keeps what it was given: the
component's template never changes, so Gradio leaves the drawn rows alone, and the script applies each new
value as it arrives (`watch('value', ...)`). It counts the rows it holds: rows it already has are skipped,
so a payload applied twice adds nothing; rows after a gap (an update the page never saw) are still added,
and the view says that rows are missing (an element marked `data-gap`, if the shell has one, is shown).

A handler draws a view by delta with one object per answer that remembers how many rows it sent (the MoE
tab's `LiveMap`), and redraws it whole when a conversation is opened or a new one starts. `DeltaPage` is
what the script does, in Python: what the page shows after a series of values (for tests and benchmarks).
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping, Sequence
from typing import Any

import gradio as gr

TEMPLATE = '<div class="delta-view"></div>'  # never depends on the value: Gradio never redraws it
ROWS = "data-rows"  # the attribute of the element rows are appended to
PART = "data-part"  # the attribute of an element whose text a payload sets
APPENDER = """
const root = element.querySelector('.delta-view') || element;
let count = 0;
const setParts = (parts) => {
  for (const [name, text] of Object.entries(parts || {})) {
    const part = root.querySelector('[data-part="' + name + '"]');
    if (part) part.textContent = text;
  }
};
const show = (raw) => {
  let payload = null;
  try { payload = raw ? JSON.parse(raw) : {shell: ''}; } catch (error) { payload = null; }
  if (payload === null || typeof payload !== 'object') { root.innerHTML = raw || ''; count = 0; return; }
  if (typeof payload.shell === 'string') { root.innerHTML = payload.shell; count = 0; }
  const target = root.querySelector('[data-rows]');
  const rows = payload.rows || [];
  const start = payload.start || 0;
  if (target && start + rows.length > count) {
    if (start > count) {
      root.dataset.missed = String(start - count + Number(root.dataset.missed || 0));
      const gap = root.querySelector('[data-gap]');
      if (gap) gap.hidden = false;
    }
    const box = target.closest('[data-follow]');
    const atEnd = box && box.scrollTop + box.clientHeight >= box.scrollHeight - 4;
    target.insertAdjacentHTML('beforeend', rows.slice(Math.max(0, count - start)).join(''));
    count = start + rows.length;
    if (atEnd) box.scrollTop = box.scrollHeight;
  }
  setParts(payload.parts);
};
show(props.value);
watch('value', () => show(props.value));
"""


def delta_html(value: str = "", *, script: str = "", **kwargs: Any) -> gr.HTML:
    """A view that takes `redraw`/`append` payloads (gr.HTML's own options in `kwargs`: elem_id, ...);
    `script`: more of the page's code for it (its own events, sent with `trigger`)."""
    return gr.HTML(value, html_template=TEMPLATE, js_on_load=APPENDER + script, **kwargs)


def _payload(value: dict[str, Any], parts: Mapping[str, str] | None) -> str:
    if parts:
        value["parts"] = dict(parts)
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def redraw(shell: str, rows: Sequence[str] = (), parts: Mapping[str, str] | None = None) -> str:
    """The whole view: its shell, then its rows (from row 0)."""
    value: dict[str, Any] = {"shell": shell}
    if rows:
        value.update(start=0, rows=list(rows))
    return _payload(value, parts)


def append(start: int, rows: Sequence[str], parts: Mapping[str, str] | None = None) -> str:
    """Rows `start`, `start + 1`, ... added to the view (and its parts' texts set)."""
    return _payload({"start": start, "rows": list(rows)}, parts)


class DeltaPage:
    """What the page shows after a series of payloads: APPENDER's rules, in Python."""

    def __init__(self) -> None:
        self.shell = ""
        self.rows: list[str] = []
        self.parts: dict[str, str] = {}
        self.missed = 0

    def apply(self, raw: str | None) -> None:
        try:
            payload = json.loads(raw) if raw else {"shell": ""}
        except ValueError:
            payload = None
        if not isinstance(payload, dict):
            self.shell, self.rows, self.parts = str(raw or ""), [], {}
            return
        if isinstance(payload.get("shell"), str):
            self.shell, self.rows, self.parts = payload["shell"], [], {}
        start, rows = int(payload.get("start") or 0), list(payload.get("rows") or [])
        if ROWS in self.shell and start + len(rows) > len(self.rows) + self.missed:
            count = len(self.rows) + self.missed
            self.missed += max(0, start - count)
            self.rows += rows[max(0, count - start) :]
        self.parts.update(payload.get("parts") or {})

    @property
    def html(self) -> str:
        """The view's HTML as the page holds it: the rows inside the `data-rows` element, the parts' texts."""
        shown = self.shell.replace(f"{ROWS}>", f"{ROWS}>{''.join(self.rows)}", 1)
        for name, text in self.parts.items():
            shown = shown.replace(f'{PART}="{name}"></', f'{PART}="{name}">{html.escape(text)}</', 1)
        return shown
