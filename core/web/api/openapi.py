"""The OpenAPI 3.1 document of the API, built from the app's routes and what each view declares.

Each API view is decorated with :func:`operation` (its summary, query, body and answer);
:func:`document` walks the app's URL map, so a route cannot be left out of the document
and the document cannot describe a route that does not exist.
"""

from __future__ import annotations

import re

from flask import current_app, jsonify
from werkzeug.routing import IntegerConverter

from core import __version__, permissions
from core.validate import INT64_MAX
from core.web.api import bp, schemas
from core.web.api.fields import Fields
from core.web.auth import public

_ERRORS = {
    400: "The input is wrong; `field` names the culprit.",
    401: "No token, or an unknown, expired or revoked one.",
    403: "The token lacks the scope, or its owner's role lacks the permission.",
    404: "No such object.",
    429: "Too many wrong tokens from this address; see `Retry-After`.",
}


def operation(summary: str, *, query: Fields | None = None, body: Fields | None = None, answer=None,
              status: int | tuple = 200, media: str = "application/json", description: str = "", errors=(400, 404)):
    """Describe an API view for the document: ``answer`` is a schema name (or a schema)."""
    def decorate(view):
        view.api_operation = {"summary": summary, "query": query, "body": body, "answer": answer,
                              "status": status, "media": media, "description": description,
                              "errors": tuple(errors)}
        return view
    return decorate


def _ref(answer):
    if answer is None:
        return None
    if isinstance(answer, str):
        return {"$ref": f"#/components/schemas/{answer}"}
    return answer


_PARAM = re.compile(r"<(?:([a-z_]+)(?:\([^)]*\))?:)?([a-z_]+)>")


def _path(rule) -> tuple[str, list[dict]]:
    params = []
    for name, converter in rule._converters.items():
        schema = {"type": "string"}
        if isinstance(converter, IntegerConverter):
            schema = {"type": "integer", "minimum": 1, "maximum": INT64_MAX}  # row ids (see common.one)
        params.append({"name": name, "in": "path", "required": True, "schema": schema})
    return _PARAM.sub(lambda m: "{" + m.group(2) + "}", rule.rule), params


def _operation(endpoint: str, method: str, view, path_params: list[dict]) -> dict:
    info = getattr(view, "api_operation", None)
    if info is None:
        raise LookupError(f"API view {endpoint} has no operation description")
    access = getattr(view, "wispbill_access", ())
    op = {"operationId": endpoint.split(".", 1)[1], "summary": info["summary"],
          "tags": [view.__module__.rsplit(".", 1)[-1]]}
    if info["description"]:
        op["description"] = info["description"]
    params = list(path_params) + (info["query"].parameters() if info["query"] else [])
    if params:
        op["parameters"] = params
    if info["body"] is not None:
        op["requestBody"] = {"required": True,
                             "content": {"application/json": {"schema": info["body"].body_schema()}}}
    content = {info["media"]: {"schema": _ref(info["answer"])}} if info["media"] == "application/json" \
        else {info["media"]: {"schema": {"type": "string", "format": "binary"}}}
    statuses = info["status"] if isinstance(info["status"], tuple) else (info["status"],)
    responses = {str(code): {"description": "Done." if i == 0 else "Done before: the same answer again.",
                             "content": content} for i, code in enumerate(statuses)}
    if access and access[0] == "api":
        scope = access[1]
        op["security"] = [{"bearer": [scope]}]
        op["x-scope"] = scope
        op["x-permission"] = permissions.SCOPES[scope]
        codes = sorted(set(info["errors"]) | {401, 403, 429} | ({400} if params or info["body"] else set()))
    else:
        op["security"] = []
        codes = []
    for code in codes:
        responses[str(code)] = {"description": _ERRORS[code], "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
    op["responses"] = responses
    return op


def document(app=None) -> dict:
    """The OpenAPI document of every route of the ``api`` blueprint in ``app``."""
    app = app or current_app
    paths: dict[str, dict] = {}
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.rule):
        if not rule.endpoint.startswith(f"{bp.name}."):
            continue
        path, params = _path(rule)
        view = app.view_functions[rule.endpoint]
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            paths.setdefault(path, {})[method.lower()] = _operation(rule.endpoint, method, view, params)
    return {
        "openapi": "3.1.0",
        "info": {"title": "wispbill API", "version": __version__,
                 "description": "Customers, plans, services, invoices, payments, usage and routers. "
                                "Every call needs a staff API token with the scope named on it; money is "
                                '`{"minor": whole minor units, "currency": "ISO 4217 code"}`.'},
        "servers": [{"url": "/"}],
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer",
                                           "description": "A staff API token (`wb_...`); its scopes: "
                                                          + ", ".join(permissions.SCOPES) + "."}},
            "schemas": schemas.COMPONENTS,
        },
    }


@bp.route("/openapi.json")
@public
@operation("This document", answer={"type": "object"})
def openapi_json():
    """The OpenAPI document (open to anyone: it holds no data)."""
    return jsonify(document())
