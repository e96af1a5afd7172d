"""The privacy notice in the page: what is stored, for how long, and what never is; read from the settings."""

from __future__ import annotations

from ..settings import Settings


def _days(value: float | None, otherwise: str) -> str:
    if value is None:
        return otherwise
    return f"{value:g} day" + ("" if value == 1 else "s")


def privacy_notice(settings: Settings) -> str:
    """Markdown for the page's "Privacy" accordion."""
    limits = settings.limits
    kept = _days(settings.history_max_age_days, "until you delete them")
    if settings.history_max_age_days is not None:
        kept = f"for {kept} (older ones are deleted when the app starts)"
    count = (
        f" The server keeps at most {settings.history_max_count} conversations in all."
        if settings.history_max_count is not None
        else ""
    )
    quota = []
    if limits.history_conversations is not None:
        quota.append(f"{limits.history_conversations} conversations")
    if limits.history_mb is not None:
        quota.append(f"{limits.history_mb:g} MB")
    per_visitor = f" Each visitor may keep at most {' and '.join(quota)}." if quota else ""
    lines = [
        "**What this playground stores**",
        f"- **Conversations** (questions, answers, their settings and timings) in a SQLite database on "
        f"the server, {kept}, unless you tick **Incognito**.{count}{per_visitor} The History tab "
        "lists, exports and deletes yours.",
        "- **Arena** battles and votes (the prompts, both answers, your vote), for the leaderboard; they "
        "are anonymous (tied to your browser's id, not to a name)"
        + (
            f"; each voted round's models and vote (no prompt, no answer, no id) are also pushed to the "
            f"dataset `{settings.dataset}`, so the leaderboard survives restarts."
            if settings.dataset
            else "."
        ),
        "- **Your browser** keeps a random, signed visitor id (so the History tab finds your "
        "conversations again)"
        + (", and a copy of your conversations, in its local storage" if settings.browser_history else "")
        + ". Clearing the site's data forgets them.",
    ]
    if limits.files_max_age_min is not None:
        lines.append(
            f"- **Uploaded images and exported files** are temporary files, deleted after about "
            f"{limits.files_max_age_min:g} minutes."
        )
    lines += [
        "",
        "**What is never stored**: the API keys you type (kept in this page's session only, in the "
        "server's memory, and gone when you close the page), and the owner's keys (they never reach the "
        "page). Nothing is sold or shared; the models run here or at the providers the owner configured, "
        "whose own terms apply to what is sent to them.",
    ]
    if settings.public:
        lines.append(
            "\nThis is a public playground: the server counts questions per session and per network "
            "address (in memory, for a minute) to share it fairly."
        )
    return "\n".join(lines)
