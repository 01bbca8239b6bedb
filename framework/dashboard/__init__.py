"""``mlops dashboard``: a static, self-contained HTML site built from the registry bucket.

``collect`` reads everything through the existing APIs (registry, rollout store, monitoring
store, audit query) into plain data; ``render`` turns that data into pages (pure; inline CSS,
inline SVG charts, no network assets); ``site`` writes the pages to a folder or publishes them
under ``dashboard/`` in the registry bucket, and checks that every internal link resolves.
"""

from framework.dashboard.collect import SiteData, collect
from framework.dashboard.render import render_site
from framework.dashboard.site import broken_links, publish, write

__all__ = ["SiteData", "broken_links", "collect", "publish", "render_site", "write"]
