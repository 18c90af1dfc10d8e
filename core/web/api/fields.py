"""What an API call takes: typed fields of a JSON body or a query string, checked strictly.

One definition gives both the check and its JSON Schema in the OpenAPI document, so the
document says exactly what the code enforces. The checks here are about shape (types,
lengths, bounds, unknown names); the core functions called afterwards check meaning.
A wrong shape is a :class:`core.errors.ValidationError` naming the field (a 400 answer).
"""

from __future__ import annotations

import datetime as dt

from flask import request

from core import validate
from core.errors import ValidationError
from core.money import Money, MoneyError
from core.validate import INT64_MAX

# Dates outside these years are typing mistakes, and would overflow period arithmetic.
FIRST_DATE = dt.date(2000, 1, 1)
LAST_DATE = dt.date(2099, 12, 31)

# Text may hold tabs and line breaks but no other control characters (as core.validate.text).
TEXT_PATTERN = r"^[^\x00-\x08\x0b-\x1f]*$"

MONEY_SCHEMA = {
    "type": "object", "additionalProperties": False, "required": ["minor", "currency"],
    "properties": {"minor": {"type": "integer", "minimum": 0, "maximum": INT64_MAX,
                             "description": "Whole minor units (cents)."},
                   "currency": {"type": "string", "minLength": 3, "maxLength": 3, "pattern": "^[A-Za-z]{3}$",
                                "description": "ISO 4217 code."}},
}


class Field:
    """One named value: ``kind`` is ``string``, ``integer``, ``boolean``, ``date``, ``money`` or ``strings``."""

    def __init__(self, name, kind="string", *, required=False, nullable=None, max_length=200, minimum=None,
                 maximum=None, enum=None, description=""):
        self.name, self.kind, self.required = name, kind, required
        self.nullable = (not required) if nullable is None else nullable
        self.max_length, self.enum, self.description = max_length, enum, description
        if kind == "integer":
            minimum = -INT64_MAX if minimum is None else minimum
            maximum = INT64_MAX if maximum is None else maximum
        if kind == "money" and minimum is None:
            minimum = 0
        self.minimum, self.maximum = minimum, maximum

    # --- the document ---------------------------------------------------------------
    def schema(self) -> dict:
        """This field's JSON Schema."""
        if self.kind == "money":
            out = {**MONEY_SCHEMA, "properties": {**MONEY_SCHEMA["properties"],
                                                  "minor": {**MONEY_SCHEMA["properties"]["minor"],
                                                            "minimum": self.minimum}}}
        elif self.kind == "strings":
            out = {"type": "array", "items": {"type": "string", "enum": list(self.enum)} if self.enum
                   else {"type": "string", "maxLength": self.max_length}, "uniqueItems": True,
                   "maxItems": len(self.enum) if self.enum else 50}
        elif self.kind == "date":
            out = {"type": "string", "format": "date", "description": f"Between {FIRST_DATE} and {LAST_DATE}."}
        elif self.kind == "integer":
            out = {"type": "integer", "minimum": self.minimum, "maximum": self.maximum}
        elif self.kind == "boolean":
            out = {"type": "boolean"}
        else:
            out = {"type": "string", "maxLength": self.max_length, "pattern": TEXT_PATTERN}
            if self.enum:
                out = {"type": "string", "enum": list(self.enum)}
        if self.description:
            out["description"] = (self.description + " " + out.get("description", "")).strip()
        if self.nullable:
            out = {"anyOf": [out, {"type": "null"}]} if "anyOf" not in out else out
        return out

    # --- the check --------------------------------------------------------------------
    def _bad(self, what: str):
        return ValidationError(f"{self.name} {what}", self.name)

    def clean(self, value):
        """``value`` from a JSON body, type-checked; ``None`` stays ``None`` when allowed."""
        if value is None:
            if not self.nullable:
                raise self._bad("may not be null")
            return None
        if self.kind in ("string", "date"):
            if not isinstance(value, str):
                raise self._bad("must be a string")
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                raise self._bad("is not valid text") from None
            if self.kind == "date":
                return self._date(value)
            if len(value) > self.max_length:
                raise self._bad(f"is longer than {self.max_length} characters")
            if any(ord(c) < 32 and c not in "\t\n" for c in value):
                raise self._bad("contains control characters")
            if self.enum and value not in self.enum:
                raise self._bad(f"must be one of {', '.join(self.enum)}")
            return value
        if self.kind == "integer":
            if isinstance(value, bool) or not isinstance(value, int):
                raise self._bad("must be a whole number")
            return self._bounded(value)
        if self.kind == "boolean":
            if not isinstance(value, bool):
                raise self._bad("must be true or false")
            return value
        if self.kind == "money":
            return self._money(value)
        if self.kind == "strings":
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise self._bad("must be a list of strings")
            if self.enum and not set(value) <= set(self.enum):
                raise self._bad(f"may hold only {', '.join(self.enum)}")
            if len(value) > (len(self.enum) if self.enum else 50):
                raise self._bad("has too many items")
            return value
        raise AssertionError(self.kind)

    def from_text(self, text: str):
        """``text`` from a query string, converted to this field's kind."""
        if self.kind == "integer":
            return self._bounded(validate.integer(text, self.name))
        if self.kind == "boolean":
            if text not in ("true", "false"):
                raise self._bad("must be true or false")
            return text == "true"
        if self.kind == "date":
            return self._date(text)
        return self.clean(text)

    def _bounded(self, number: int) -> int:
        if number < self.minimum:
            raise self._bad(f"must be at least {self.minimum}")
        if number > self.maximum:
            raise self._bad(f"must be at most {self.maximum}")
        return number

    def _date(self, text: str) -> dt.date:
        try:
            day = dt.date.fromisoformat(text.strip())
        except ValueError:
            raise self._bad("must be a date like 2026-03-01") from None
        if not FIRST_DATE <= day <= LAST_DATE:
            raise self._bad(f"must be between {FIRST_DATE} and {LAST_DATE}")
        return day

    def _money(self, value) -> Money:
        if not isinstance(value, dict) or set(value) != {"minor", "currency"}:
            raise self._bad('must be an object {"minor": whole number, "currency": "ISO code"}')
        minor, code = value["minor"], value["currency"]
        if isinstance(minor, bool) or not isinstance(minor, int):
            raise self._bad("minor must be a whole number")
        if not self.minimum <= minor <= INT64_MAX:
            raise self._bad(f"minor must be between {self.minimum} and {INT64_MAX}")
        if not isinstance(code, str) or len(code) != 3:
            raise self._bad("currency must be a three-letter ISO 4217 code")
        try:
            return Money(minor, validate.currency(code, self.name))
        except MoneyError as exc:
            raise self._bad(str(exc)) from None


class Fields:
    """A set of fields: a JSON body (``parse_body``) or a query string (``parse_query``)."""

    def __init__(self, *fields: Field, description: str = ""):
        self.fields = {f.name: f for f in fields}
        self.description = description

    def body_schema(self) -> dict:
        """The JSON Schema of a body of these fields: an object, nothing else allowed."""
        schema = {"type": "object", "additionalProperties": False,
                  "properties": {n: f.schema() for n, f in self.fields.items()}}
        required = [n for n, f in self.fields.items() if f.required]
        if required:
            schema["required"] = required
        if self.description:
            schema["description"] = self.description
        return schema

    def parameters(self) -> list[dict]:
        """These fields as OpenAPI query parameters."""
        out = []
        for name, f in self.fields.items():
            schema = f.schema()
            if "anyOf" in schema:
                schema = schema["anyOf"][0]
            schema = {k: v for k, v in schema.items() if k != "description"}
            param = {"name": name, "in": "query", "required": f.required, "schema": schema}
            if f.description:
                param["description"] = f.description
            out.append(param)
        return out

    def parse_body(self) -> dict:
        """The request's JSON body, checked: ``{name: value}`` for the names it gives."""
        data = request.get_json(force=True, silent=True, cache=True)
        if not isinstance(data, dict):
            raise ValidationError("the request body must be a JSON object", "body")
        return self._check(data, lambda f, v: f.clean(v))

    def parse_query(self) -> dict:
        """The query string, checked: ``{name: value}`` for the names it gives."""
        data = {}
        for name in request.args:
            values = request.args.getlist(name)
            if len(values) > 1:
                raise ValidationError(f"{name} is given more than once", name)
            data[name] = values[0]
        return self._check(data, lambda f, v: f.from_text(v))

    def _check(self, data: dict, convert) -> dict:
        unknown = sorted(set(data) - set(self.fields))
        if unknown:
            raise ValidationError(f"unknown field {unknown[0]!r} (known: {', '.join(self.fields) or 'none'})",
                                  unknown[0])
        out = {}
        for name, f in self.fields.items():
            if name not in data:
                if f.required:
                    raise ValidationError(f"{name} is required", name)
                continue
            out[name] = convert(f, data[name])
        return out


NO_QUERY = Fields()


def page_fields(*extra: Field, default_limit=50) -> Fields:
    """A listing's query: ``limit`` and ``offset`` plus ``extra`` filters."""
    return Fields(Field("limit", "integer", minimum=1, maximum=500, description=f"Default {default_limit}."),
                  Field("offset", "integer", minimum=0, maximum=1_000_000_000, description="Default 0."), *extra)
