"""Reading request bodies with a size limit and a time limit."""

from __future__ import annotations

import asyncio
from typing import Final

from starlette.requests import ClientDisconnect, Request

MAX_BODY: Final = 1024 * 1024  # 1 MiB: far above any real Slack payload or alert batch.
# A sender has this long to deliver the whole body: 1 MiB in 10 s is 100 kB/s, slow for any
# job, Slack or alerting server, while a client that stalls holds its connection (one of
# uvicorn's LIMIT_CONCURRENCY) for no longer. Read at each call, so a test can shorten it.
BODY_SECONDS: float = 10.0

# An answer given before the body was read whole: the connection cannot carry another
# request (the rest of the body would be parsed as one), so uvicorn is told to close it.
CLOSE: Final = {"connection": "close"}


class BodyRefused(Exception):
    """A body not read; `status` and `reason` are the answer's."""

    status = 400

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class BodyTooLarge(BodyRefused):
    status = 413


class BodyTooSlow(BodyRefused):
    status = 408


class BodyCutOff(BodyRefused):
    # The sender will never read this answer; it exists so that a client hanging up mid-body
    # ends the request quietly rather than as an exception logged with a traceback.
    status = 400


async def read_body(request: Request, limit: int = MAX_BODY, *, keep: int | None = None) -> bytes:
    """The request body, refusing to buffer more than `limit` bytes or to wait more than
    BODY_SECONDS for them. With `keep`, only the first `keep` bytes are buffered and
    returned; the rest is read, counted against `limit`, and dropped."""
    size_text = f"{limit / 1024 / 1024:g} MiB" if limit % (1024 * 1024) == 0 else f"{limit:,} bytes"
    too_large = f"body over {size_text}"
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge(too_large)
    kept = bytearray()
    size = 0
    seconds = BODY_SECONDS
    try:
        # asyncio's own timeout: anyio's cancel scope cost a tenth of a hook's time on the
        # event loop, and the server runs on asyncio.
        async with asyncio.timeout(seconds):
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise BodyTooLarge(too_large)
                if keep is None:
                    kept += chunk
                elif len(kept) < keep:
                    kept += chunk[: keep - len(kept)]
    except TimeoutError:
        raise BodyTooSlow(f"body not received within {seconds:g} s") from None
    except ClientDisconnect:
        raise BodyCutOff("the connection closed before the whole body was sent") from None
    return bytes(kept)
