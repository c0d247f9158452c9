"""Whether the Hugging Face hub can be reached: a DNS and TCP probe with a short timeout."""

from __future__ import annotations

import functools
import os
import socket
import threading
from urllib.parse import urlparse

from textclf.common.errors import first_line

_OFFLINE_VARIABLES = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE")
_PROXY_VARIABLES = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy")


def hub_offline_requested() -> bool:
    return any(os.environ.get(v, "").strip().lower() in ("1", "true", "yes", "on") for v in _OFFLINE_VARIABLES)


@functools.cache
def hub_unreachable_reason(timeout: float = 2.0) -> str | None:
    """Why the hub cannot be reached within ``2 * timeout`` s (the clients retry for 30-60 s), else None."""
    if hub_offline_requested() or any(os.environ.get(v) for v in _PROXY_VARIABLES):
        return None
    endpoint = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    host = endpoint.hostname or "huggingface.co"
    port = endpoint.port or (80 if endpoint.scheme == "http" else 443)
    found: list = []

    def lookup() -> None:
        try:
            found.append(socket.getaddrinfo(host, port, type=socket.SOCK_STREAM))
        except OSError as exc:
            found.append(exc)

    thread = threading.Thread(target=lookup, daemon=True)  # getaddrinfo has no timeout
    thread.start()
    thread.join(timeout)
    if not found:
        return f"no DNS answer for {host} within {timeout:g} s"
    if isinstance(found[0], OSError):
        return f"DNS lookup of {host} failed: {first_line(found[0])}"
    family, socktype, proto, _, address = found[0][0]
    try:
        with socket.socket(family, socktype, proto) as sock:
            sock.settimeout(timeout)
            sock.connect(address)
    except OSError as exc:
        return f"could not connect to {host}:{port}: {first_line(exc) if str(exc) else 'timed out'}"
    return None
