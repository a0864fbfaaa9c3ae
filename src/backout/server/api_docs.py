"""The API's interactive documentation at ``/api/v1/docs``: Swagger UI over the OpenAPI
document, every file of it served by this server (Swagger UI as the ``fastapi-offline``
package ships it),
nothing fetched from a CDN, so the docs work where the server cannot reach the internet.
The page starts Swagger UI from a script of this server too, so it keeps the dashboard's
Content-Security-Policy (no inline script).
"""

from __future__ import annotations

from pathlib import Path

import fastapi_offline
from fastapi import FastAPI
from fastapi.responses import HTMLResponse, Response
from fastapi.staticfiles import StaticFiles

from backout.server.web import CSP

ASSETS = "/api/v1/docs/assets"
STATIC = Path(fastapi_offline.__file__).parent / "static"
PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>backout API</title>
<link rel="stylesheet" href="{assets}/swagger-ui.css">
<link rel="icon" type="image/png" href="{assets}/favicon.png">
</head>
<body>
<div id="swagger-ui"></div>
<script src="{assets}/swagger-ui-bundle.js"></script>
<script src="{assets}/../start.js"></script>
</body>
</html>
"""
START = """window.ui = SwaggerUIBundle({{
  url: {openapi!r},
  dom_id: "#swagger-ui",
  deepLinking: true,
  presets: [SwaggerUIBundle.presets.apis],
  layout: "BaseLayout"
}});
"""
HEADERS = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff"}


def install(app: FastAPI, docs_url: str, openapi_url: str) -> None:
    """Serve Swagger UI at ``docs_url`` for the document at ``openapi_url``."""
    app.mount(ASSETS, StaticFiles(directory=STATIC), name="api-docs-assets")

    @app.get(docs_url, include_in_schema=False)
    def docs() -> HTMLResponse:
        return HTMLResponse(PAGE.format(assets=ASSETS), headers=HEADERS)

    @app.get(f"{docs_url}/start.js", include_in_schema=False)
    def start() -> Response:
        script = START.format(openapi=openapi_url)
        return Response(script, media_type="text/javascript", headers=HEADERS)
