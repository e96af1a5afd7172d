"""`python -m playground history list|show|export`: the history for the machine's owner (all visitors)."""

from __future__ import annotations

import argparse
import sys

from ..errors import HistoryError
from ..settings import Settings
from .export import to_json, to_markdown
from .integrity import quick_check
from .records import Conversation
from .store import HistoryStore


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add the `history` command and its subcommands to the CLI."""
    history = subparsers.add_parser("history", help="list, show or export the conversation history")
    sub = history.add_subparsers(dest="history_command", required=True)

    listing = sub.add_parser("list", help="conversations, newest first, with their owner")
    listing.add_argument("--owner", help="only this owner's conversations")
    listing.add_argument("--search", help="only conversations whose title or messages contain this text")
    listing.add_argument("--limit", type=int, default=50)
    listing.set_defaults(handler=cmd_list)

    show = sub.add_parser("show", help="one conversation as Markdown")
    show.add_argument("id")
    show.set_defaults(handler=cmd_show)

    export = sub.add_parser("export", help="one conversation, an owner's or everyone's, to stdout")
    export.add_argument("id", nargs="?", help="one conversation (default: all)")
    export.add_argument("--format", choices=["md", "json"], default="md")
    export.add_argument("--owner", help="only this owner's conversations")
    export.set_defaults(handler=cmd_export)


def _open(settings: Settings) -> HistoryStore:
    path = settings.history_path
    if not path.is_file():
        raise HistoryError(
            f"No history yet at {path}: chat in the playground first, or set PLAYGROUND_HISTORY_DB."
        )
    problem = quick_check(path)
    if problem is not None:
        raise HistoryError(
            f"The history database {path} is damaged ({problem}): the playground sets it aside at its "
            f"next start; to recover what can be read now, run `sqlite3 {path} .recover | sqlite3 "
            "recovered.db` and point PLAYGROUND_HISTORY_DB at recovered.db."
        )
    return HistoryStore(path)


def cmd_list(args: argparse.Namespace, settings: Settings) -> int:
    with _open(settings) as store:
        if args.owner:
            rows = store.conversations.list_conversations(args.owner, search=args.search, limit=args.limit)
        else:
            rows = store.conversations.list_all_conversations(search=args.search, limit=args.limit)
    if not rows:
        print("no conversations", file=sys.stderr)
        return 0
    width = max(5, *(len(row.owner) for row in rows))
    print(f"{'ID':<32}  {'UPDATED (UTC)':<19}  {'TAB':<8} {'MSGS':>4}  {'OWNER':<{width}}  TITLE")
    for row in rows:
        print(
            f"{row.id:<32}  {row.updated_utc[:19].replace('T', ' '):<19}  {row.tab:<8} "
            f"{row.message_count:>4}  {row.owner:<{width}}  {row.title}"
        )
    return 0


def cmd_show(args: argparse.Namespace, settings: Settings) -> int:
    with _open(settings) as store:
        conversations = store.conversations
        conversation = conversations.get_conversation(conversations.owner_of(args.id), args.id)
        print(to_markdown([conversation], image_base=f"{store.images.root}/"), end="")
    return 0


def cmd_export(args: argparse.Namespace, settings: Settings) -> int:
    with _open(settings) as store:
        conversations = _selected(store, args.id, args.owner)
        if args.format == "json":
            print(to_json(conversations, store.images, include_owner=True))
        else:
            print(to_markdown(conversations, image_base=f"{store.images.root}/"), end="")
    return 0


def _selected(store: HistoryStore, conversation_id: str | None, owner: str | None) -> list[Conversation]:
    conversations = store.conversations
    if conversation_id:
        found_owner = conversations.owner_of(conversation_id)
        if owner and owner != found_owner:
            raise HistoryError(f"Conversation {conversation_id} does not belong to {owner}.")
        return [conversations.get_conversation(found_owner, conversation_id)]
    rows = (
        conversations.list_conversations(owner, limit=None)
        if owner
        else conversations.list_all_conversations(limit=None)
    )
    return [conversations.get_conversation(row.owner, row.id) for row in rows]
