"""Slack mrkdwn escaping and the reverse: reading Slack-escaped user input.

Slack needs only `&`, `<` and `>` escaped. HTML escaping would also turn quotes into
entities that Slack shows literally ("We&#39;ve"), so it is not used.
"""

from __future__ import annotations

import html
import re

_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;"})
# Slack's own markup in incoming text: <@U123>, <@U123|name>, <#C123|name>, <!here>,
# <mailto:a@b|a@b>, <https://x|label>.
_SLACK_MARKUP = re.compile(r"<([@#!]?)([^<>|]*)(?:\|([^<>]*))?>")


def escape(text: str) -> str:
    """Make outside text safe to put in mrkdwn: no mentions, no links, no broadcast."""
    return text.translate(_ESCAPES)


def truncate(text: str, limit: int, marker: str = "…") -> str:
    """Cut text to at most `limit` characters, saying it was cut."""
    if len(text) <= limit:
        return text
    cut = text[: max(0, limit - len(marker))]
    # An escape sequence cut in half (`&am`) would show as garbage in Slack.
    amp = cut.rfind("&")
    if amp != -1 and ";" not in cut[amp:] and len(cut) - amp < 5:
        cut = cut[:amp]
    return cut + marker


def from_slack(text: str) -> str:
    """Turn text as Slack delivers it into what the person typed.

    Mentions become their id (`<@U123|ann>` -> `U123`), channel links their name when Slack
    gives one, links their label or URL, and `&amp;`, `&lt;`, `&gt;` become characters again.
    """

    def plain(match: re.Match[str]) -> str:
        sigil, target, label = match.group(1), match.group(2), match.group(3)
        if sigil == "@":
            return target
        if sigil == "#":
            return label or target
        if sigil == "!":
            return label or target
        return label or target.removeprefix("mailto:")

    return html.unescape(_SLACK_MARKUP.sub(plain, text)) if "<" in text or "&" in text else text


CHANNEL_LINK = re.compile(r"<#([CG][A-Z0-9]+)(?:\|[^<>]*)?>")


def typed_words(text: str) -> str:
    """A command's text as words, single-spaced, the way every verb reads its arguments.

    A channel link `<#C123|integ-crm>` stands for the channel's id, which lookups resolve to
    the integration posting there. PostgreSQL refuses NUL in any text parameter, so a name
    holding one would fail the lookup instead of answering "no integration called …"."""
    plain = from_slack(CHANNEL_LINK.sub(lambda m: m.group(1), text))
    return " ".join(plain.replace("\u00a0", " ").replace("\x00", " ").split())


def mention(user: str) -> str:
    """Mention a catalog owner: a Slack id pings them, an e-mail is shown as text."""
    if re.fullmatch(r"[UW][A-Z0-9]{2,}", user):
        return f"<@{user}>"
    return escape(user)


def group_mention(group_id: str) -> str:
    """Mention a Slack user group (`S0123ABCD`), as its @handle."""
    return f"<!subteam^{group_id}>"


def link(url: str, label: str) -> str:
    """A mrkdwn link whose label cannot break out of the link syntax."""
    safe_url = url.replace(">", "%3E").replace("<", "%3C").replace("|", "%7C").replace(" ", "%20")
    return f"<{safe_url}|{escape(label).replace('|', '¦')}>"


_BROADCAST = re.compile(r"<!(channel|here|everyone)(\|[^>]*)?>|<!subteam\^[^>]*>")


def strip_broadcasts(text: str) -> str:
    """Catalog text is trusted mrkdwn, but it must still never page a whole channel."""
    return _BROADCAST.sub(lambda m: "@" + m.group(1) if m.group(1) else "@group", text)
