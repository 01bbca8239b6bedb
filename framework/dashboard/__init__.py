"""The team dashboard: one self-contained HTML page per stage, built from the registry bucket.

``data`` holds what the page shows; ``collect`` reads it through the framework's readers (the
CLI, and the end of every ``mlops deploy``); ``refresh`` reads the monitors' runs and the
audit straight from the bucket and rebuilds the page at the end of every monitor run, inside
the monitor function; ``render`` draws the page (pure; inline CSS and SVG); ``site`` writes it
to a folder or to ``dashboard/{project}/{stage}/`` in the private registry bucket and presigns
links to it.

Only ``data``, ``refresh``, ``render`` and ``site`` go into the Lambda zip: they import the
standard library and ``framework.monitoring``, nothing else (this module imports nothing).
"""
