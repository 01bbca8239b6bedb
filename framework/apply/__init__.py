"""Apply: executor, state store with lock, audit log. Touches the world through providers."""
