"""Identifiers that travel over the wire to Slack and back.

Posted messages and the app manifest keep these strings long after a release, so they are
literal constants, never derived from class or function names; a test checks them against
`manifest.yml`.
"""

from typing import Final

from commands.outages.messages import ACK_ALL_ACTION, RESOLVE_ALL_ACTION

SLASH_COMMAND: Final = "/integ"

# Message shortcut declared in manifest.yml: log a message as a change.
LOG_CHANGE_SHORTCUT: Final = "integ_log_change"

# Block Kit action ids on alert messages.
ACK_ACTION: Final = "integ_alert_ack"
RESOLVE_ACTION: Final = "integ_alert_resolve"
SILENCE_ACTION: Final = "integ_alert_silence"
RUNBOOK_ACTION: Final = "integ_alert_runbook"

# The buttons on a system outage's messages (defined with the message, which commands/
# renders outside any listener).
OUTAGE_ACK_ACTION: Final = ACK_ALL_ACTION
OUTAGE_RESOLVE_ACTION: Final = RESOLVE_ALL_ACTION

# Review nudge actions.
REVIEW_DONE_ACTION: Final = "integ_review_done"
REVIEW_SNOOZE_ACTION: Final = "integ_review_snooze"
REVIEW_REASSIGN_ACTION: Final = "integ_review_reassign"

# The Older and Newer buttons under `/integ changes`. Both open the page their value names;
# there are two only because Slack wants an action id once per block.
CHANGES_PAGE_ACTION: Final = "integ_changes_page"
CHANGES_PAGE_NEWER_ACTION: Final = "integ_changes_page_newer"

# The Home tab's own controls (its alert buttons are the alert messages' ack and resolve).
HOME_REVIEW_ACTION: Final = "integ_home_review"
HOME_SYSTEM_ACTION: Final = "integ_home_system"

# Modal callback ids.
RESOLVE_VIEW: Final = "integ_resolve_view"
REVIEW_VIEW: Final = "integ_review_view"
LOG_CHANGE_VIEW: Final = "integ_log_change_view"

# Bot events subscribed in manifest.yml.
BOT_EVENTS: Final = ("reaction_added", "message.channels", "message.groups", "app_home_opened")
