"""Block Kit as Slack checks it, so that the fake Web API refuses what Slack would refuse.

Slack refuses a whole message (`invalid_blocks`) or view (`invalid_arguments`) for one bad
block, and our builders truncate rather than trust their input; a fake that took anything
would let a test pass on blocks that production cannot send. Each error names its path:
`blocks[3].text.text: must be at most 3000 characters`.

Where each limit comes from, in Slack's reference:
- 50 blocks in a message, 100 in a modal or a Home tab:
  https://docs.slack.dev/reference/block-kit/blocks
- section: text or fields; text up to 3000 characters; up to 10 fields of up to 2000;
  block_id up to 255 (the same on every block's page):
  https://docs.slack.dev/reference/block-kit/blocks/section-block
- header: plain_text only, up to 150:
  https://docs.slack.dev/reference/block-kit/blocks/header-block
- context: up to 10 image elements and text objects:
  https://docs.slack.dev/reference/block-kit/blocks/context-block
- actions: up to 25 elements:
  https://docs.slack.dev/reference/block-kit/blocks/actions-block
- image block: image_url (up to 3000) or slack_file; alt_text up to 2000; title up to 2000:
  https://docs.slack.dev/reference/block-kit/blocks/image-block
- input: plain_text label and hint up to 2000; block_id unique "for each message or view":
  https://docs.slack.dev/reference/block-kit/blocks/input-block
- which element goes in which block (section, actions, context, input):
  https://docs.slack.dev/reference/block-kit/block-elements
- text objects: plain_text or mrkdwn, 1 to 3000 characters, emoji only on plain_text,
  verbatim only on mrkdwn:
  https://docs.slack.dev/reference/block-kit/composition-objects/text-object
- confirm: plain_text title up to 100, text up to 300, confirm and deny up to 30:
  https://docs.slack.dev/reference/block-kit/composition-objects/confirmation-dialog-object
- option: text up to 75 (plain_text except in checkboxes and radio buttons), value up to 150,
  description up to 75, url (overflow menus only) up to 3000:
  https://docs.slack.dev/reference/block-kit/composition-objects/option-object
- option group: plain_text label up to 75; up to 100 groups of up to 100 options:
  https://docs.slack.dev/reference/block-kit/composition-objects/option-group-object
- button: plain_text up to 75, action_id up to 255 (every element's page), value up to 2000,
  url up to 3000, style primary or danger:
  https://docs.slack.dev/reference/block-kit/block-elements/button-element
- select menus: placeholder up to 150, options or option_groups (up to 100), an
  initial_option that exactly matches one of the options:
  https://docs.slack.dev/reference/block-kit/block-elements/select-menu-element
- overflow menu: up to five options (slack_sdk's OverflowMenuElement checks 1 to 5):
  https://docs.slack.dev/reference/block-kit/block-elements/overflow-menu-element
- checkboxes and radio buttons: up to 10 options:
  https://docs.slack.dev/reference/block-kit/block-elements/checkboxes-element
  https://docs.slack.dev/reference/block-kit/block-elements/radio-button-group-element
- date picker: initial_date as YYYY-MM-DD:
  https://docs.slack.dev/reference/block-kit/block-elements/date-picker-element
- plain-text input: min_length 0 to 3000, max_length 1 to 3000:
  https://docs.slack.dev/reference/block-kit/block-elements/plain-text-input-element
- modal: plain_text title up to 24 (required), submit and close up to 24, submit required
  with an input block, private_metadata up to 3000, callback_id up to 255:
  https://docs.slack.dev/reference/views/modal-views
- Home tab: no title at all; the same blocks, private_metadata and callback_id limits:
  https://docs.slack.dev/reference/views/home-tab-views
- external_id: Slack documents no maximum; 255 is assumed, as for callback_id.

rich_text and markdown blocks are accepted as they come: our code sends neither, and
their nested formats are large. Elements that only need an action_id checked (user and
conversation selects, the multi-selects, time pickers, other text inputs) get just that.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

Errors = Iterator[str]
Check = Callable[[str, dict[str, Any]], Errors]

MESSAGE_BLOCKS = 50
VIEW_BLOCKS = 100
ID_LENGTH = 255
STYLES = ("primary", "danger")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def message_errors(blocks: list[Any]) -> list[str]:
    """Why Slack would refuse these blocks in a message (chat.postMessage, chat.update,
    chat.postEphemeral, a response_url); empty when it would take them."""
    return list(_blocks("blocks", blocks, MESSAGE_BLOCKS))


def view_errors(view: dict[str, Any]) -> list[str]:
    """Why Slack would refuse this view (views.publish, views.open, views.update);
    empty when it would take it."""
    if not isinstance(view, dict):
        return ["view: must be an object"]
    return list(_view(view))


def _view(view: dict[str, Any]) -> Errors:
    kind = view.get("type")
    if kind not in ("home", "modal"):
        yield f"type: must be home or modal, not {kind!r}"
    blocks = view.get("blocks")
    yield from _blocks("blocks", blocks, VIEW_BLOCKS)
    yield from _string("callback_id", view.get("callback_id"), ID_LENGTH)
    yield from _string("private_metadata", view.get("private_metadata"), 3000)
    yield from _string("external_id", view.get("external_id"), ID_LENGTH)
    if kind != "modal":
        return
    yield from _text("title", view.get("title"), 24, plain=True)
    yield from _text("submit", view.get("submit"), 24, plain=True, required=False)
    yield from _text("close", view.get("close"), 24, plain=True, required=False)
    # Without a submit button the modal's inputs could never be sent.
    if "submit" not in view and any(_is(block, "input") for block in _list(blocks)):
        yield "submit: is required when the modal has an input block"


def _blocks(path: str, blocks: Any, most: int) -> Errors:
    if not isinstance(blocks, list):
        yield f"{path}: must be an array"
        return
    yield from _count(path, blocks, 0, most)
    seen: set[str] = set()
    for n, block in enumerate(blocks):
        here = f"{path}[{n}]"
        if not isinstance(block, dict):
            yield f"{here}: must be an object"
            continue
        block_id = block.get("block_id")
        yield from _string(f"{here}.block_id", block_id, ID_LENGTH)
        if isinstance(block_id, str):
            # Interactions name their block by block_id, so two alike would be ambiguous.
            if block_id in seen:
                yield f"{here}.block_id: {block_id!r} is already used by an earlier block"
            seen.add(block_id)
        kind = block.get("type")
        check = _BLOCKS.get(kind) if isinstance(kind, str) else None
        if check is None:
            yield f"{here}.type: unknown block type {kind!r}"
        else:
            yield from check(here, block)


# Blocks


def _section(path: str, block: dict[str, Any]) -> Errors:
    text, fields = block.get("text"), block.get("fields")
    if text is None and not fields:
        yield f"{path}: needs text or fields"
    yield from _text(f"{path}.text", text, 3000, required=False)
    if fields is not None:
        yield from _count(f"{path}.fields", fields, 1, 10)
        for n, field in enumerate(_list(fields)):
            yield from _text(f"{path}.fields[{n}]", field, 2000)
    if "accessory" in block:
        yield from _element(f"{path}.accessory", block["accessory"], _IN_SECTION)


def _header(path: str, block: dict[str, Any]) -> Errors:
    yield from _text(f"{path}.text", block.get("text"), 150, plain=True)


def _context(path: str, block: dict[str, Any]) -> Errors:
    elements = block.get("elements")
    yield from _count(f"{path}.elements", elements, 1, 10)
    for n, element in enumerate(_list(elements)):
        if _is(element, "image"):
            yield from _image(f"{path}.elements[{n}]", element)
        else:
            yield from _text(f"{path}.elements[{n}]", element, 3000)


def _actions(path: str, block: dict[str, Any]) -> Errors:
    elements = _list(block.get("elements"))
    yield from _count(f"{path}.elements", block.get("elements"), 1, 25)
    seen: set[str] = set()
    for n, element in enumerate(elements):
        here = f"{path}.elements[{n}]"
        yield from _element(here, element, _IN_ACTIONS)
        action_id = element.get("action_id") if isinstance(element, dict) else None
        # The block_actions payload tells elements of one block apart by action_id alone.
        if isinstance(action_id, str):
            if action_id in seen:
                yield f"{here}.action_id: {action_id!r} is already used in this block"
            seen.add(action_id)


def _input(path: str, block: dict[str, Any]) -> Errors:
    yield from _text(f"{path}.label", block.get("label"), 2000, plain=True)
    yield from _text(f"{path}.hint", block.get("hint"), 2000, plain=True, required=False)
    yield from _element(f"{path}.element", block.get("element"), _IN_INPUT)


def _image_block(path: str, block: dict[str, Any]) -> Errors:
    yield from _image(path, block)
    yield from _text(f"{path}.title", block.get("title"), 2000, plain=True, required=False)


def _unchecked(path: str, item: dict[str, Any]) -> Errors:
    yield from ()


# Elements


def _element(path: str, element: Any, allowed: frozenset[str]) -> Errors:
    if not isinstance(element, dict):
        yield f"{path}: is required" if element is None else f"{path}: must be an object"
        return
    kind = element.get("type")
    if not isinstance(kind, str) or kind not in _ALL_ELEMENTS:
        yield f"{path}.type: unknown element type {kind!r}"
        return
    if kind not in allowed:
        yield f"{path}.type: {kind} cannot be used in this block"
        return
    yield from _string(f"{path}.action_id", element.get("action_id"), ID_LENGTH)
    yield from _confirm(f"{path}.confirm", element.get("confirm"))
    placeholder = element.get("placeholder")
    yield from _text(f"{path}.placeholder", placeholder, 150, plain=True, required=False)
    yield from _ELEMENTS.get(kind, _unchecked)(path, element)


def _button(path: str, button: dict[str, Any]) -> Errors:
    yield from _text(f"{path}.text", button.get("text"), 75, plain=True)
    yield from _string(f"{path}.value", button.get("value"), 2000)
    yield from _string(f"{path}.url", button.get("url"), 3000)
    yield from _string(f"{path}.accessibility_label", button.get("accessibility_label"), 75)
    if "style" in button and button["style"] not in STYLES:
        yield f"{path}.style: must be primary or danger"


def _static_select(path: str, select: dict[str, Any]) -> Errors:
    options, groups = select.get("options"), select.get("option_groups")
    if (options is None) == (groups is None):
        yield f"{path}: needs either options or option_groups"
    choices = list(_list(options))
    if options is not None:
        yield from _options(f"{path}.options", options, 100)
    if groups is not None:
        yield from _count(f"{path}.option_groups", groups, 1, 100)
        for n, group in enumerate(_list(groups)):
            here = f"{path}.option_groups[{n}]"
            if not isinstance(group, dict):
                yield f"{here}: must be an object"
                continue
            yield from _text(f"{here}.label", group.get("label"), 75, plain=True)
            yield from _options(f"{here}.options", group.get("options"), 100)
            choices += _list(group.get("options"))
    yield from _initial(path, select, choices)


def _overflow(path: str, overflow: dict[str, Any]) -> Errors:
    yield from _options(f"{path}.options", overflow.get("options"), 5, urls=True)


def _choices(path: str, element: dict[str, Any]) -> Errors:
    """Checkboxes and radio buttons, whose options may be mrkdwn."""
    options = element.get("options")
    yield from _options(f"{path}.options", options, 10, plain=False)
    yield from _initial(path, element, _list(options))


def _datepicker(path: str, picker: dict[str, Any]) -> Errors:
    date = picker.get("initial_date")
    if date is not None and not (isinstance(date, str) and _DATE.fullmatch(date)):
        yield f"{path}.initial_date: must be YYYY-MM-DD"


def _text_input(path: str, field: dict[str, Any]) -> Errors:
    for key, least in (("min_length", 0), ("max_length", 1)):
        value = field.get(key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or not least <= value <= 3000:
            yield f"{path}.{key}: must be a whole number from {least} to 3000"


def _image(path: str, image: dict[str, Any]) -> Errors:
    if "image_url" not in image and "slack_file" not in image:
        yield f"{path}: needs image_url or slack_file"
    yield from _string(f"{path}.image_url", image.get("image_url"), 3000)
    yield from _string(f"{path}.alt_text", image.get("alt_text"), 2000, required=True)


# Composition objects


def _text(path: str, obj: Any, most: int, *, plain: bool = False, required: bool = True) -> Errors:
    if obj is None:
        if required:
            yield f"{path}: is required"
        return
    if not isinstance(obj, dict):
        yield f"{path}: must be a text object"
        return
    kind = obj.get("type")
    if kind not in ("plain_text", "mrkdwn"):
        yield f"{path}.type: must be plain_text or mrkdwn"
    elif plain and kind != "plain_text":
        yield f"{path}.type: must be plain_text, not {kind}"
    text = obj.get("text")
    if not isinstance(text, str) or not text:
        yield f"{path}.text: must be a non-empty string"
    elif len(text) > most:
        yield f"{path}.text: must be at most {most} characters"
    if "emoji" in obj and kind != "plain_text":
        yield f"{path}.emoji: is only allowed on plain_text"
    if "verbatim" in obj and kind != "mrkdwn":
        yield f"{path}.verbatim: is only allowed on mrkdwn"


def _confirm(path: str, confirm: Any) -> Errors:
    if confirm is None:
        return
    if not isinstance(confirm, dict):
        yield f"{path}: must be an object"
        return
    yield from _text(f"{path}.title", confirm.get("title"), 100, plain=True)
    yield from _text(f"{path}.text", confirm.get("text"), 300)
    yield from _text(f"{path}.confirm", confirm.get("confirm"), 30, plain=True)
    yield from _text(f"{path}.deny", confirm.get("deny"), 30, plain=True)
    if "style" in confirm and confirm["style"] not in STYLES:
        yield f"{path}.style: must be primary or danger"


def _options(
    path: str, options: Any, most: int, *, plain: bool = True, urls: bool = False
) -> Errors:
    yield from _count(path, options, 1, most)
    for n, option in enumerate(_list(options)):
        here = f"{path}[{n}]"
        if not isinstance(option, dict):
            yield f"{here}: must be an object"
            continue
        yield from _text(f"{here}.text", option.get("text"), 75, plain=plain)
        yield from _string(f"{here}.value", option.get("value"), 150, required=True)
        description = option.get("description")
        yield from _text(f"{here}.description", description, 75, plain=plain, required=False)
        if urls:
            yield from _string(f"{here}.url", option.get("url"), 3000)
        elif "url" in option:
            yield f"{here}.url: only options of an overflow menu take a url"


def _initial(path: str, element: dict[str, Any], choices: list[Any]) -> Errors:
    # Slack compares whole option objects, so a changed label or emoji flag is refused too.
    if "initial_option" in element and element["initial_option"] not in choices:
        yield f"{path}.initial_option: must be one of the options"
    for n, chosen in enumerate(_list(element.get("initial_options"))):
        if chosen not in choices:
            yield f"{path}.initial_options[{n}]: must be one of the options"


# Plain values


def _string(path: str, value: Any, most: int, *, required: bool = False) -> Errors:
    if value is None:
        if required:
            yield f"{path}: is required"
    elif not isinstance(value, str):
        yield f"{path}: must be a string"
    elif len(value) > most:
        yield f"{path}: must be at most {most} characters"


def _count(path: str, items: Any, least: int, most: int) -> Errors:
    if not isinstance(items, list):
        yield f"{path}: must be an array"
    elif len(items) < least:
        yield f"{path}: must have at least {least} item{'s' if least > 1 else ''}"
    elif len(items) > most:
        yield f"{path}: must have at most {most} items"


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _is(item: Any, kind: str) -> bool:
    return isinstance(item, dict) and item.get("type") == kind


_BLOCKS: dict[str, Check] = {
    "section": _section,
    "header": _header,
    "context": _context,
    "actions": _actions,
    "divider": _unchecked,
    "image": _image_block,
    "input": _input,
    "rich_text": _unchecked,
    "markdown": _unchecked,
}

_ELEMENTS: dict[str, Check] = {
    "button": _button,
    "static_select": _static_select,
    "multi_static_select": _static_select,
    "overflow": _overflow,
    "checkboxes": _choices,
    "radio_buttons": _choices,
    "datepicker": _datepicker,
    "plain_text_input": _text_input,
    "image": _image,
}

_SELECTS = frozenset(
    f"{multi}{source}_select"
    for multi in ("", "multi_")
    for source in ("static", "external", "users", "conversations", "channels")
)
_IN_SECTION = _SELECTS | {
    "button",
    "checkboxes",
    "datepicker",
    "image",
    "overflow",
    "radio_buttons",
    "timepicker",
    "workflow_button",
}
_IN_ACTIONS = (_IN_SECTION - {"image"}) | {"datetimepicker"}
_IN_INPUT = _SELECTS | {
    "checkboxes",
    "datepicker",
    "datetimepicker",
    "email_text_input",
    "file_input",
    "number_input",
    "plain_text_input",
    "radio_buttons",
    "rich_text_input",
    "timepicker",
    "url_text_input",
}
_ALL_ELEMENTS = _IN_SECTION | _IN_ACTIONS | _IN_INPUT
