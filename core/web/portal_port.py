"""The portal port: where routers send suspended subscribers' web traffic.

A router redirects any plain-HTTP request of a suspended subscriber (``GET
http://example.com/news``) to this server's portal port. There, everything but the
"please pay" page, pay links and their static files is answered with a redirect to
``/suspended``. The redirect is relative on purpose: the subscriber's browser asks
"example.com" again, the router sends it here again, and the page loads.
"""

from __future__ import annotations

PASS_THROUGH = ("/suspended", "/pay/", "/static/")


class PortalRedirect:
    """WSGI middleware: on ``port``, send every other path to ``/suspended``.

    Requests on the portal port go to ``direct`` (the app without the reverse-proxy
    header handling, when there is one): the source address the page recognises a
    subscriber by must be the connection's own.
    """

    def __init__(self, app, port: int, direct=None):
        self.app = app
        self.direct = direct or app
        self.port = str(port)

    def __call__(self, environ, start_response):
        if environ.get("SERVER_PORT") != self.port:
            return self.app(environ, start_response)
        path = environ.get("PATH_INFO") or "/"
        if not any(path == p.rstrip("/") or path.startswith(p) for p in PASS_THROUGH):
            start_response("302 Found", [("Location", "/suspended"), ("Cache-Control", "no-store"),
                                         ("Content-Length", "0")])
            return [b""]
        return self.direct(environ, start_response)
