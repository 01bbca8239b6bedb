"""Lambda entry points: thin adapters from events to ``framework.runtime`` calls."""
