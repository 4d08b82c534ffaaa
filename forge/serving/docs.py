"""/docs and /redoc served whole by the app itself, offline.

FastAPI's own pages load Swagger UI's and ReDoc's JavaScript and CSS from a CDN, so they are blank without the
internet and on clusters behind a firewall. Here the assets come from the pinned `fastapi-offline` package (MIT,
which ships Swagger UI's and ReDoc's builds) and are served under /docs-assets; the pages are FastAPI's own HTML
pointed at them, and at /openapi.json under the app's route prefix.
"""

from __future__ import annotations

from importlib import resources

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.staticfiles import StaticFiles

ASSETS = "/docs-assets"


def mount_docs(api: FastAPI) -> None:
    """Add /docs, /redoc and their assets to `api` (whose openapi_url must be set)."""
    static = resources.files("fastapi_offline") / "static"
    api.mount(ASSETS, StaticFiles(directory=str(static)), name="docs-assets")

    @api.get("/docs", include_in_schema=False)
    async def swagger(request: Request):
        root = request.scope.get("root_path", "").rstrip("/")
        return get_swagger_ui_html(openapi_url=f"{root}{api.openapi_url}", title=f"{api.title}: docs",
                                   swagger_js_url=f"{root}{ASSETS}/swagger-ui-bundle.js",
                                   swagger_css_url=f"{root}{ASSETS}/swagger-ui.css",
                                   swagger_favicon_url=f"{root}{ASSETS}/favicon.png")

    @api.get("/redoc", include_in_schema=False)
    async def redoc(request: Request):
        root = request.scope.get("root_path", "").rstrip("/")
        return get_redoc_html(openapi_url=f"{root}{api.openapi_url}", title=f"{api.title}: ReDoc",
                              redoc_js_url=f"{root}{ASSETS}/redoc.standalone.js",
                              redoc_favicon_url=f"{root}{ASSETS}/favicon.png", with_google_fonts=False)
