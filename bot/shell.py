"""`integ-bot shell`: type `/integ status crm`, read the answer, from the same code path
as Slack's slash command."""

from __future__ import annotations

import sys

from bot.deps import Deps
from bot.listeners.home import HOME_ACTIONS
from bot.listeners.slash_commands import answer
from bot.runtime import Runtime, build_runtime
from bot.settings import Settings
from commands.core.render.plain import blocks_to_text
from commands.home.outbox_calls import preview
from commands.outbox.calls import Later, Unsendable
from commands.permissions.people import CONSOLE, Surface
from storage.db import transaction

SHELL_USER = "U0SHELL"
PROMPT = "integ> "


def run_shell(settings: Settings, line: str | None = None, as_user: str = SHELL_USER) -> int:
    runtime = build_runtime(settings)
    try:
        if line is not None:
            print(respond(runtime.deps, line, as_user))
            deliver(runtime)
            return 0
        interactive = sys.stdin.isatty()
        if interactive:
            print("integ-bot shell: type /integ help, or quit.")
        while True:
            if interactive:
                print(PROMPT, end="", flush=True)
            raw = sys.stdin.readline()
            if not raw:
                return 0
            typed = raw.strip()
            if typed in ("quit", "exit", "q"):
                return 0
            if typed:
                print(respond(runtime.deps, typed, as_user), flush=True)
                deliver(runtime)
    finally:
        runtime.close()


def deliver(runtime: Runtime) -> None:
    """Print what the command queued for Slack (local mode), as the server's worker would."""
    if runtime.outbox is not None:
        while runtime.outbox.run_once():
            pass


def respond(deps: Deps, typed: str, as_user: str = SHELL_USER) -> str:
    if typed.strip().lower() == "home":
        return home(deps, as_user)
    text = typed.removeprefix("/integ").strip() if typed.startswith("/integ") else typed
    # Slack escapes these in every command it sends; the console does the same, so that a
    # `<` typed here reaches a change log as a `<`, not as the start of a Slack link.
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    # Whoever runs the console runs the bot: it acts as an admin, and is audited as the shell.
    reply = answer(deps, text, SHELL_USER, None, directory=CONSOLE, surface=Surface.SHELL)
    return blocks_to_text(reply.blocks, reply.text)


def home(deps: Deps, user: str) -> str:
    """The Home tab `user` would see now, as text; with a bot token, Slack says who they
    are (a guest sees no buttons), otherwise they are taken for a full member."""
    try:
        with transaction(deps.sessions) as session:
            view = preview(session, user, deps.directory, deps.clock(), HOME_ACTIONS)
    except (Later, Unsendable) as exc:
        return f"No Home for {user}: {exc}."
    return blocks_to_text(view["blocks"])
