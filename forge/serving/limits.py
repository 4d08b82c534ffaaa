"""Limits applied before any parsing or auth work: the request body's size.

A pure ASGI middleware: a `Content-Length` over the limit is answered 413 without reading a byte; a chunked
body is counted as it streams and refused the moment it passes the limit. Only then does FastAPI see the body.
"""

from __future__ import annotations

import json
from collections.abc import Callable


class BodyLimit:
    """413 for bodies over `max_bytes`; `on_reject` counts each refusal."""

    def __init__(self, app, max_bytes: int, on_reject: Callable[[], None] = lambda: None):
        self.app = app
        self.max_bytes = max_bytes
        self.on_reject = on_reject

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_bytes):
            return await self._reject(send)
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                return await self._reject(send)
            chunks.append(chunk)
            if not message.get("more_body"):
                break
        body, replayed = b"".join(chunks), False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        return await self.app(scope, replay, send)

    async def _reject(self, send) -> None:
        self.on_reject()
        payload = json.dumps({"detail": f"request body too large: at most {self.max_bytes} bytes"}).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode()),
                                (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": payload})
