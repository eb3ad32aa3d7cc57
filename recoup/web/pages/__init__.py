"""The back office's pages, one module per area; each has a `router` (recoup.web.ROUTERS)."""
