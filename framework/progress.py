"""Progress of long work, said as it happens: library code calls ``say`` (a log record on
the ``mlops.progress`` logger); the CLI prints each on stderr, so stdout stays the result
(``-o json`` documents included) and a pipeline's log shows where the time goes."""

from __future__ import annotations

import logging

log = logging.getLogger("mlops.progress")


def say(text: str) -> None:
    """One step of long work begins (e.g. "resolving the serve layer's packages with pip")."""
    log.info(text)
