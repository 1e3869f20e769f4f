"""Types and models every resource's schemas share: names, ids, latencies, free JSON, errors."""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from searchspace.fields import MAX_LATENCY_US

__all__ = [
    "MAX_ID",
    "ErrorResponse",
    "Health",
    "Id",
    "JsonDict",
    "Latency",
    "Name",
    "Problem",
    "SmallText",
    "Strict",
    "finite",
]

Name = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")]
Latency = Annotated[float, Field(ge=0, le=MAX_LATENCY_US, allow_inf_nan=False, description="µs")]
SmallText = Annotated[str, StringConstraints(max_length=4000)]
MAX_ID = 2**31 - 1  # row ids are 32-bit integers on PostgreSQL
Id = Annotated[int, Field(ge=1, le=MAX_ID)]


def finite(value: Any, path: str = "") -> Any:
    """Refuse NaN and infinities anywhere in a free-form JSON value (no database stores them as JSON)."""
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{path or 'value'}: NaN and infinity are not allowed")
    if isinstance(value, dict):
        for k, v in value.items():
            finite(v, f"{path}.{k}" if path else str(k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            finite(v, f"{path}[{i}]")
    return value


JsonDict = Annotated[dict[str, Any], AfterValidator(finite)]


class Strict(BaseModel):
    """Requests reject unknown fields, so a typo is an error, not a silent default.

    Strict types: ``true`` is no number and ``"5"`` no float (JSON integers still pass as floats).
    """

    model_config = ConfigDict(extra="forbid", strict=True)


class Problem(BaseModel):
    """One thing wrong with a request: where (``loc``) and what (``msg``)."""

    loc: list[str | int]
    msg: str
    type: str


class ErrorResponse(BaseModel):
    """Every 4xx answer of the API."""

    detail: list[Problem]


class Health(BaseModel):
    """The server is up; its schema revision."""

    status: Literal["ok"] = "ok"
    schema_revision: str
