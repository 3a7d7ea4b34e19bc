"""Web: local web apps (a shop, an issue tracker) on SQLite, and any site of the user's
(`Site-v0`, `site.py`), driven in Chromium through Playwright, observed as accessibility
outlines, checked against the final page, the answer or the app's database."""

from agentgym.registration import register as _register


def register() -> None:
    _register("WebShop-v0", "agentgym.envs.web.env:WebShopEnv")
    _register("WebTracker-v0", "agentgym.envs.web.env:WebTrackerEnv")
    _register("Site-v0", "agentgym.envs.web.site:SiteEnv")
    _register("WebDatasette-v0", "agentgym.envs.web.datasette:WebDatasetteEnv")
