"""Helpers the API views share: id routes, paging, JSON answers and the JSON error handlers."""

from __future__ import annotations

from flask import jsonify

from core.errors import NotFound, ValidationError
from core.money import MoneyError
from core.validate import INT64_MAX
from core.web.api import bp
from core.web.api.auth import error
from core.web.api.fields import page_fields

# A path id: digits; one that does not fit a BIGINT is no object at all (404, see ``one``).
ID = "int"
PAGE = page_fields()


def answer(data, status: int = 200):
    """``data`` as a JSON answer."""
    response = jsonify(data)
    response.status_code = status
    return response


def one(model, object_id: int, what: str):
    """The row of ``model`` with ``object_id``, or ``NotFound``."""
    row = model.get_or_none(model.id == object_id) if 0 < object_id <= INT64_MAX else None
    if row is None:
        raise NotFound(f"no {what} {object_id}")
    return row


def paged(query, args: dict, as_dict, default_limit: int = 50) -> dict:
    """One page of ``query`` as ``{"items", "limit", "offset"}``."""
    limit, offset = args.get("limit", default_limit), args.get("offset", 0)
    return {"items": [as_dict(row) for row in query.limit(limit).offset(offset)], "limit": limit, "offset": offset}


def paged_list(rows: list, args: dict, as_dict, default_limit: int = 50) -> dict:
    """One page of an already loaded list of ``rows``."""
    limit, offset = args.get("limit", default_limit), args.get("offset", 0)
    return {"items": [as_dict(row) for row in rows[offset:offset + limit]], "limit": limit, "offset": offset}


@bp.errorhandler(ValidationError)
def _validation_error(exc):
    return error(400, str(exc), getattr(exc, "field", None))


@bp.errorhandler(MoneyError)
def _money_error(exc):
    return error(400, str(exc))


@bp.errorhandler(NotFound)
def _not_found(exc):
    return error(404, str(exc))


@bp.after_request
def _no_store(response):
    response.headers.setdefault("Cache-Control", "no-store")
    return response
