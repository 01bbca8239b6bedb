"""Free ports on 127.0.0.1 for the servers the tests start.

Under pytest-xdist each worker takes its ports from a block of its own, below the kernel's
ephemeral range (32768 and up): between a port being chosen and its server binding it, no
other worker chooses it, and no client connection is given it as its local port.
"""

from __future__ import annotations

import os
import random
import socket

_FIRST = 20000  # blocks of _BLOCK ports from here, one per worker (12 fit below 32768)
_BLOCK = 1000
_WORKER = os.environ.get("PYTEST_XDIST_WORKER", "")
_START = _FIRST + int(_WORKER[2:]) % 12 * _BLOCK if _WORKER.startswith("gw") else None
_next = random.randrange(_BLOCK)  # another session's workers start elsewhere in the block


def _bindable(port: int) -> bool:
    try:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port))
    except OSError:
        return False
    return True


def _from_block(count: int) -> int:
    """The first of ``count`` consecutive free ports of this worker's block."""
    global _next
    assert _START is not None
    for _ in range(_BLOCK):
        if _next + count > _BLOCK:
            _next = 0
        port = _START + _next
        _next += count
        if all(_bindable(port + i) for i in range(count)):
            return port
    raise RuntimeError(f"no {count} free port(s) in {_START}-{_START + _BLOCK - 1}")


def free_port() -> int:
    if _START is not None:
        return _from_block(1)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def free_port_pair() -> int:
    """A port P such that P and P+1 are free (a local AWS: control plane and gateway)."""
    if _START is not None:
        return _from_block(2)
    for _ in range(50):
        port = free_port()
        if _bindable(port + 1):
            return port
    raise RuntimeError("no free port pair")
