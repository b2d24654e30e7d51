"""HTTP bodies read with a byte cap: a server that answers without end (or with a compression bomb) is an error,
never a leak. Bodies are read raw (``accept-encoding: identity`` is asked for, and a compressed answer is refused),
so the cap counts the bytes that are held in memory."""

from __future__ import annotations

import httpx

IDENTITY = {"accept-encoding": "identity"}


class BodyTooLarge(ValueError):
    """The body passed its cap, or came compressed; the message says which."""


def _check_encoding(response: httpx.Response) -> None:
    encoding = response.headers.get("content-encoding", "identity").lower()
    if encoding not in ("", "identity"):
        raise BodyTooLarge(f"compressed answer ({encoding}) not accepted")


def _add(body: bytearray, piece: bytes, max_bytes: int) -> None:
    body += piece
    if len(body) > max_bytes:
        raise BodyTooLarge(f"answer larger than {max_bytes} bytes")


def read_body(response: httpx.Response, max_bytes: int) -> bytes:
    """The body of a streamed ``response`` (``client.stream(...)``), at most ``max_bytes``."""
    _check_encoding(response)
    body = bytearray()
    for piece in response.iter_raw():
        _add(body, piece, max_bytes)
    return bytes(body)


async def aread_body(response: httpx.Response, max_bytes: int) -> bytes:
    """``read_body`` for an ``httpx.AsyncClient``'s streamed response."""
    _check_encoding(response)
    body = bytearray()
    async for piece in response.aiter_raw():
        _add(body, piece, max_bytes)
    return bytes(body)
