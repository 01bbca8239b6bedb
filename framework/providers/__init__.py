"""Providers: the only code that calls cloud APIs (through ``framework.runtime.clients``)."""
