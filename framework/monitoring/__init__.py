"""Monitoring: reference and window profiles, drift tests, performance, control charts, reports.

Everything here that the monitor Lambda imports uses only the standard library, numpy,
scipy and the monitor layer's msgspec and isal (see ``framework.layers``); a window's profile
is merged from per-object partial profiles (``partial``), decoded into columns (``columns``).
"""
