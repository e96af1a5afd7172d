"""The History tab: the visitor's own conversations: find, continue, rename, delete, export, import."""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr

from ..arena.anonymise import anonymise_summaries
from ..arena.service import ArenaService
from ..context import AppContext
from ..errors import HistoryFullError, InvalidIdentityError, PlaygroundError
from ..history import HistoryStore, IdentityKey, check_owner_id, resolve_owner
from ..history.export import export_json, export_markdown, import_file, import_json
from ..public.address import request_address
from ..public.daily import DailyCounter
from ..settings import Limits
from ..types import ENGINE_LABELS
from .branches import arranged
from .chat_region import RegionUI
from .downloads import DownloadFolder
from .render import Turn, refusal, safe_export, safe_markdown, to_chatbot

log = logging.getLogger(__name__)
HEADERS = ["Title", "Model", "Updated (UTC)", "Messages"]
BLIND_PREVIEW = "A blind arena battle: vote in the Arena tab to see it here with its models' names."
BROWSER_COPY_LIMIT = 30  # conversations kept in the browser's copy (localStorage holds a few MB)


SHOWN_IMAGES = Path(tempfile.gettempdir()) / "slm-playground-shown"


def shown_image(path: Path) -> str:
    """A stored image copied where the page may be sent it (Gradio serves files from the system's temp
    folder, not from the data folder); the copy is named by the content hash, like the original."""
    target = SHOWN_IMAGES / path.name
    if not target.is_file() and path.is_file():
        SHOWN_IMAGES.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
    return str(target if target.is_file() else path)


class VisitorIdentity:
    """Who a page is, settled once on page load from the browser's signed id (and the signed-in user)."""

    def __init__(self, key: IdentityKey) -> None:
        self.key = key

    def load(self, token: Any, profile: gr.OAuthProfile | None) -> tuple[str, str, bool]:
        """Verify the browser's token, or issue a new one: (token for the browser, owner, replaced).

        The owner goes to a server-side gr.State, which no later request can set: every history handler
        reads it from there. `replaced` says a token was presented and refused: forged, or signed with
        a key this server no longer has (a restart without PLAYGROUND_BROWSER_SECRET).
        """
        return identify(self.key, token, profile.username if profile is not None else None)


def identify(key: IdentityKey, token: Any, username: str | None = None) -> tuple[str, str, bool]:
    """(token, owner, replaced) for a page load; see VisitorIdentity.load."""
    replaced = False
    try:
        browser_id = key.verify(token)
    except InvalidIdentityError as exc:
        replaced = token is not None
        if replaced:  # one line, and never the value itself: it would be a usable id
            log.info("visitor id refused on page load (%s); a new one was issued", exc)
        token, browser_id = key.new_token()
    return token, resolve_owner(browser_id, username), replaced


class HistoryTab:
    """Handlers over the history store; every one of them reads the owner from the BrowserState."""

    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx
        self.store = ctx.history
        self.conversations = ctx.history.conversations  # the part most handlers read and change
        self.imported = AddressImports(ctx.settings.limits)  # public mode: bytes a day per address

    @property
    def limits(self) -> Limits:
        return self.ctx.settings.limits

    @functools.cached_property
    def downloads(self) -> DownloadFolder:
        """Where exports are written: one folder for this app, pruned by age."""
        age = self.limits.files_max_age_min
        return DownloadFolder("exports", None if age is None else age * 60)

    @functools.cached_property
    def arena(self) -> ArenaService:
        """Which blind arena rounds are not voted on yet (built on first use, then kept)."""
        return ArenaService(self.ctx.answers, self.store)

    def rows(self, owner_value: Any, search: str | None = "") -> tuple[list[list[Any]], list[str]]:
        """The visitor's conversations (newest first) and their ids, in the same order."""
        try:
            owner = check_owner_id(owner_value)
        except InvalidIdentityError:
            return [], []
        found = self.conversations.list_conversations(owner, search=(search or "").strip() or None, limit=200)
        found = anonymise_summaries(found, self.hidden(owner))  # blind arena battles before the vote
        table = [[c.title, c.model, c.updated_utc[:19].replace("T", " "), c.message_count] for c in found]
        return table, [c.id for c in found]

    def hidden(self, owner: str) -> dict[str, str]:
        """This visitor's blind arena conversations not yet voted on: id -> "Model A"/"Model B"."""
        return self.arena.hidden_conversations(owner)

    def refresh(self, owner_value: Any, search: str | None) -> tuple[list[list[Any]], list[str]]:
        return self.rows(owner_value, search)

    def select(self, ids: list[str], owner_value: Any, event: gr.SelectData) -> tuple[str | None, str]:
        """A click on a row: remember its id and show the conversation."""
        row = event.index[0] if isinstance(event.index, list | tuple) else event.index
        if not isinstance(row, int) or not 0 <= row < len(ids):
            return None, ""
        try:
            owner = check_owner_id(owner_value)
            if ids[row] in self.hidden(owner):
                return ids[row], BLIND_PREVIEW
            return ids[row], safe_export(export_markdown(self.store, owner, [ids[row]]))
        except PlaygroundError as exc:
            return None, f"⚠ {exc}"

    def open(self, regions: Sequence[RegionUI], selected: str | None, owner_value: Any) -> tuple[Any, ...]:
        """Continue a past conversation in the tab it came from (Instruct, Vision or MoE), with its images
        and its expert map; the other tabs are left as they are. A tab this page lacks opens in the first
        of `regions` (the chat tabs, the default one first: the app's builder binds them)."""
        if not selected:
            raise refusal("Pick a conversation in the list first.")
        try:
            owner = check_owner_id(owner_value)
            self._not_blind([selected], self.hidden(owner))
            conversation = self.conversations.get_conversation(owner, selected)
        except PlaygroundError as exc:
            raise refusal(exc) from None
        turns = arranged([turn_of(self.store, m) for m in conversation.messages])
        tabs = [region.tab for region in regions]
        target = conversation.summary.tab if conversation.summary.tab in tabs else tabs[0]
        outputs: list[Any] = []
        for region in regions:
            if region.tab != target:
                outputs += [gr.update() for _ in region.opened]
                continue
            notice = f"ℹ Continuing “{safe_markdown(conversation.title)}”."
            outputs += [turns, selected, to_chatbot(turns), "", notice, *region.shown(turns)]
        return (*outputs, gr.Tabs(selected=target))

    def rename(self, selected: str | None, title: str, owner_value: Any, search: str) -> tuple[Any, ...]:
        return self._act(
            lambda o: self.conversations.rename_conversation(o, self._need(selected), title),
            owner_value,
            search,
            "Renamed.",
        )

    def delete(self, selected: str | None, owner_value: Any, search: str) -> tuple[Any, ...]:
        delete = self.conversations.delete_conversation
        return self._act(lambda o: delete(o, self._need(selected)), owner_value, search, "Deleted.")

    def delete_all(self, confirmed: bool, owner_value: Any, search: str) -> tuple[Any, ...]:
        if not confirmed:
            raise refusal("Tick the box to confirm: this deletes every conversation of this browser.")
        return self._act(self.store.delete_owner_data, owner_value, search, "All your data was deleted.")

    def _act(self, action: Any, owner_value: Any, search: str, done: str) -> tuple[Any, ...]:
        try:
            action(check_owner_id(owner_value))
        except PlaygroundError as exc:
            raise refusal(exc) from None
        table, ids = self.rows(owner_value, search)
        return table, ids, f"✅ {done}"

    @staticmethod
    def _not_blind(ids: Sequence[str], hidden: Mapping[str, str]) -> None:
        """Refuse a blind arena round before its vote (`hidden`): opening or exporting it would name its
        model."""
        if any(i in hidden for i in ids):
            raise PlaygroundError(
                "This conversation is a blind arena round: vote in the Arena tab first, then it opens here."
            )

    @staticmethod
    def _need(selected: str | None) -> str:
        if not selected:
            raise refusal("Pick a conversation in the list first.")
        return selected

    def export(self, kind: str, selected: str | None, owner_value: Any) -> str:
        """Write an export file for download: the selected conversation, or all ('all-md', 'all-json')."""
        owner = check_owner_id(owner_value)
        ids = None if kind.startswith("all") else [self._need(selected)]
        hidden = self.hidden(owner)
        if ids is None and hidden:  # everything but blind arena rounds not voted on yet
            listed = self.conversations.list_conversations(owner, limit=None)
            ids = [c.id for c in listed if c.id not in hidden]
        try:
            self._not_blind(ids or [], hidden)
        except PlaygroundError as exc:
            raise refusal(exc) from None
        if kind.endswith("json"):
            text, suffix = export_json(self.store, owner, ids), ".json"
        else:
            text, suffix = export_markdown(self.store, owner, ids), ".md"
        return str(self.downloads.write(f"slm-playground-history{suffix}", text))

    def import_file(
        self, file: str | None, owner_value: Any, search: str, request: gr.Request | None = None
    ) -> tuple[Any, ...]:
        """Import an uploaded export: its size checked before it is read, its conversations counted
        before any is written, the visitor's and (AddressImports) the address's quotas; all or nothing."""
        if not file:
            raise refusal("Choose a JSON export to import.")
        try:
            owner = check_owner_id(owner_value)
            self.ctx.note_address(owner, request)
            with self.imported.counted(file, request):
                result = import_file(
                    self.store,
                    owner,
                    file,
                    max_bytes=int(self.limits.import_mb * 1e6),
                    max_conversations=self.limits.import_conversations,
                )
        except PlaygroundError as exc:
            raise refusal(exc) from None
        table, ids = self.rows(owner_value, search)
        return table, ids, f"✅ Imported {len(result.conversation_ids)} conversation(s)."

    # The browser's copy (on a Space, whose disk does not survive a restart)

    def browser_copy(self, owner_value: Any) -> str | None:
        """The visitor's latest conversations as a JSON export, to keep in their browser."""
        try:
            owner = check_owner_id(owner_value)
        except InvalidIdentityError:
            return None
        ids = [c.id for c in self.conversations.list_conversations(owner, limit=BROWSER_COPY_LIMIT)]
        return export_json(self.store, owner, ids, include_images=False) if ids else None

    def restore(self, owner_value: Any, copy: str | None) -> int:
        """After a restart the store is empty: bring the visitor's conversations back from the browser.

        The copy is the visitor's own data from their own browser: whatever it holds can only land in
        their own (empty) history. The number of conversations restored.
        """
        return self._restore(owner_value, copy)[0]

    def _restore(self, owner_value: Any, copy: str | None) -> tuple[int, str]:
        """(conversations restored, why the copy was refused or "") under the same limits as an import."""
        try:
            owner = check_owner_id(owner_value)
        except InvalidIdentityError:
            return 0, ""
        if not copy or self.conversations.list_conversations(owner, limit=1):
            return 0, ""
        max_bytes = int(self.limits.import_mb * 1e6)
        try:
            if len(copy) > max_bytes:  # a character is at least a byte: too large before any parsing
                raise PlaygroundError(
                    f"it is larger than the {max_bytes / 1e6:g} MB this server imports at a time"
                )
            result = import_json(self.store, owner, copy, max_conversations=self.limits.import_conversations)
        except PlaygroundError as exc:
            log.info("the browser's copy of a visitor's history was not restored: %s", exc)
            return 0, str(exc)
        return len(result.conversation_ids), ""

    def on_load(self, owner_value: Any, replaced: bool, copy: str | None = None) -> str:
        """On page load: restore from the browser's copy where needed, and say what happened."""
        notices: list[str] = []
        damage = self.store.damage
        if damage is not None:
            notices.append(damage.public_notice() if self.ctx.settings.public else damage.message())
        restored, refused = self._restore(owner_value, copy)
        if refused:
            notices.append(f"This browser's copy of your history was not restored: {refused}")
        if replaced:
            notices.append(
                "This server did not recognise this browser's visitor id (its signing key changed, for "
                "example after a restart without PLAYGROUND_BROWSER_SECRET, or the id was altered), so "
                "this browser has a new one. "
                + (
                    f"Your {restored} latest conversation(s) were restored from this browser's copy."
                    if restored
                    else "Conversations kept under the old id are not shown."
                )
            )
        elif restored:
            notices.append(f"Restored {restored} conversation(s) from this browser's copy.")
        return "\n\n".join(f"ℹ {n}" for n in notices)

    # Layout and events

    def build(self, owner: gr.State, tabs: gr.Tabs) -> HistoryUI:
        """Lay the tab out and wire its own events; the app's builder wires `open` into the chat tabs."""
        gr.Markdown(
            "Your conversations, kept on this server for this browser. Nobody else can see them. "
            "Incognito conversations are never written."
        )
        ui = HistoryUI(
            gr.State([]), gr.State(None), *self.render_list(), *self.render_actions(), *self.render_import()
        )
        self.wire(owner, tabs, ui)
        return ui

    def render_list(self) -> tuple[Any, ...]:
        with gr.Row():
            search = gr.Textbox(
                label="Search", placeholder="words in a title or a message", scale=4, elem_id="history-search"
            )
            refresh = gr.Button("Refresh", scale=1, elem_id="history-refresh")
        table = gr.Dataframe(headers=HEADERS, interactive=False, elem_id="history-list", wrap=True)
        status = gr.Markdown(elem_id="history-status")
        self.notice = gr.Markdown(elem_id="history-notice")  # the page-load notice (the app wires it)
        return search, refresh, table, status

    def render_actions(self) -> tuple[Any, ...]:
        with gr.Row():
            open_button = gr.Button("Continue this conversation", variant="primary", elem_id="history-open")
            title = gr.Textbox(label="New title", scale=2)
            rename = gr.Button("Rename")
            delete = gr.Button("Delete", variant="stop", elem_id="history-delete")
        with gr.Row():
            exports = {kind: gr.Button(label, size="sm") for kind, label in EXPORTS}
        download = gr.File(label="Export", interactive=False, elem_id="history-export", height=80)
        preview = gr.Markdown(elem_id="history-preview")
        return open_button, title, rename, delete, exports, download, preview

    def render_import(self) -> tuple[Any, ...]:
        with gr.Accordion("Import and delete", open=False):
            upload = gr.File(label="Import a JSON export", file_types=[".json"], type="filepath")
            confirm = gr.Checkbox(False, label="I want to delete all my conversations")
            wipe = gr.Button("Delete my data", variant="stop")
        return upload, confirm, wipe

    def wire(self, owner: gr.State, tabs: gr.Tabs, ui: HistoryUI) -> None:
        listed = [ui.table, ui.ids, ui.status]
        listing: dict[str, Any] = {
            "fn": self.refresh,
            "inputs": [owner, ui.search],
            "outputs": [ui.table, ui.ids],
        }
        ui.refresh.click(**listing, **PRIVATE)
        ui.search.submit(**listing, **PRIVATE)
        tabs.select(**listing, **PRIVATE)
        ui.table.select(self.select, [ui.ids, owner], [ui.selected, ui.preview], **PRIVATE)
        ui.rename.click(self.rename, [ui.selected, ui.title, owner, ui.search], listed, **PRIVATE)
        ui.delete.click(self.delete, [ui.selected, owner, ui.search], listed, **PRIVATE)
        ui.wipe.click(self.delete_all, [ui.confirm, owner, ui.search], listed, **PRIVATE)
        ui.upload.upload(self.import_file, [ui.upload, owner, ui.search], listed, **PRIVATE)
        for kind, button in ui.exports.items():
            button.click(
                lambda s, o, k=kind: self.export(k, s, o), [ui.selected, owner], ui.download, **PRIVATE
            )


EXPORTS = (
    ("md", "Export this (Markdown)"),
    ("json", "Export this (JSON)"),
    ("all-md", "Export all (Markdown)"),
    ("all-json", "Export all (JSON)"),
)
PRIVATE: dict[str, Any] = {"api_visibility": "private"}


@dataclass
class HistoryUI:
    """The History tab's components (the app's builder wires `open_button` into the chat tabs)."""

    ids: gr.State
    selected: gr.State
    search: gr.Textbox
    refresh: gr.Button
    table: gr.Dataframe
    status: gr.Markdown
    open_button: gr.Button
    title: gr.Textbox
    rename: gr.Button
    delete: gr.Button
    exports: dict[str, gr.Button]
    download: gr.File
    preview: gr.Markdown
    upload: gr.File
    confirm: gr.Checkbox
    wipe: gr.Button


def turn_of(store: HistoryStore, message: Any) -> Turn:
    """A stored message as a turn of the page's conversation (its images shown, its views kept)."""
    turn: Turn = {"role": message.role, "content": message.text}
    if message.images:
        turn["images"] = [shown_image(store.images.image_path(ref)) for ref in message.images]
    if message.experts:
        turn["experts"] = message.experts
    if message.tokens:
        turn["tokens"] = message.tokens
    if message.role == "assistant":
        turn.update(
            model=message.model,
            model_name=message.model.split("@")[0],
            engine=ENGINE_LABELS.get(message.engine, message.engine),
            metrics=message.metrics,
            finish=str(message.finish_reason) if message.finish_reason else "interrupted",
            id=message.id,
        )
        if message.branch_at is not None:
            turn["branch_at"] = message.branch_at
        if message.hidden:
            turn["hidden"] = True
    return turn


class AddressImports:
    """The bytes each client address imported today: at most PLAYGROUND_VISITOR_HISTORY_MB (one
    visitor's history) in public mode, so fresh page loads cannot fill the disk with imports."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.today = DailyCounter()

    @contextlib.contextmanager
    def counted(self, file: str, request: gr.Request | None) -> Iterator[None]:
        """Refuse the import past the address's allowance; count its size once it succeeded."""
        cap = self.limits.history_mb
        if cap is None or request is None:
            yield
            return
        address = request_address(request, trust_forwarded=self.limits.trust_forwarded)
        try:
            size = os.path.getsize(file)
        except OSError:
            size = 0  # the import itself says what is wrong with the file
        done = self.today.count(address)
        if done + size > cap * 1e6:
            raise HistoryFullError(
                f"Your network address has imported {done / 1e6:.2f} MB today and this file is "
                f"{size / 1e6:.2f} MB; this server takes at most {cap:g} MB of imports a day per "
                "address. Try again tomorrow (UTC)."
            )
        yield
        self.today.add(address, size)
