"""Monitoring: reference and window profiles, drift tests, performance, control charts, reports.

Everything here that the monitor Lambda imports uses only the standard library, numpy and
scipy (see ``framework.package``).
"""
