"""JSON in and out with orjson; request bodies are parsed in one place."""

from __future__ import annotations

from typing import Any, TypeVar

import orjson
from aiohttp import web
from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic_core import PydanticCustomError

from ranvier.errors import MatrixError, bad_json, not_json
from ranvier.protocol.json_limits import JSONLimitError, check_json_limits, dumps_for_serving

Model = TypeVar("Model", bound=BaseModel)


def json_response(
    body: Any, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    return web.Response(
        body=dumps_for_serving(body),
        status=status,
        content_type="application/json",
        headers=headers,
    )


def parse_json(raw: bytes | str) -> Any:
    """JSON from a client, held to the limits every stored value must keep
    (protocol/json_limits.py); M_NOT_JSON or M_BAD_JSON otherwise."""
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise not_json() from None
    try:
        check_json_limits(value)
    except JSONLimitError as exc:
        raise bad_json(str(exc)) from None
    return value


async def read_json_object(request: web.Request) -> dict[str, Any]:
    """The body as a JSON object, or M_NOT_JSON / M_BAD_JSON. Size limits apply earlier."""
    body = parse_json(await request.read())
    if not isinstance(body, dict):
        raise bad_json("The request body must be a JSON object.")
    return body


class RequestBody(BaseModel):
    """Base of every request body model: keys clients add (unstable ones, newer spec
    versions) are ignored, and values are not coerced, so `"5"` for an integer or `1` for a
    boolean is refused as the spec's M_BAD_JSON rather than guessed at."""

    model_config = ConfigDict(extra="ignore", strict=True)


def validate_body(value: Any, model: type[Model], *, bad_value: str = "M_BAD_JSON") -> Model:
    """`value` (parsed JSON) as `model`; the first problem becomes M_MISSING_PARAM for an
    absent required key, M_INVALID_PARAM where a validator raised `invalid_param_error`,
    else `bad_value`, naming the field so a client can see what to fix. `bad_value` is
    M_BAD_JSON but for endpoints whose Synapse original answers M_INVALID_PARAM, which
    clients and admin tools have been written against."""
    try:
        return model.model_validate(value)
    except ValidationError as exc:
        raise _first_problem(exc, bad_value) from None


_INVALID_PARAM = "invalid_param"


def invalid_param_error(message: str) -> PydanticCustomError:
    """Raise it from a validator where the spec answers a bad value with M_INVALID_PARAM
    rather than M_BAD_JSON (e.g. a receipt's thread_id)."""
    return PydanticCustomError(_INVALID_PARAM, message)


def _first_problem(exc: ValidationError, bad_value: str) -> MatrixError:
    error = exc.errors()[0]
    where = ".".join(str(part) for part in error["loc"]) or "body"
    if error["type"] == "missing":
        return MatrixError(400, "M_MISSING_PARAM", f"Missing '{where}'")
    if error["type"] == _INVALID_PARAM:
        return MatrixError(400, "M_INVALID_PARAM", f"{where}: {error['msg']}")
    message = error["msg"].removeprefix("Value error, ")
    return MatrixError(400, bad_value, f"{where}: {message}")


async def read_body(
    request: web.Request, model: type[Model], *, bad_value: str = "M_BAD_JSON"
) -> Model:
    """The body, a JSON object, validated against a pydantic model (see `validate_body`)."""
    return validate_body(await read_json_object(request), model, bad_value=bad_value)
