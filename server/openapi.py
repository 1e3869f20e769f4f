"""The OpenAPI schema says what a route needs: a token only where one is required.

Reads (``require_reader``, scheme :data:`server.deps.READ_SCHEME`) are open
unless the server has a read token, so their security is optional
(``[{}, {"HTTPBearer": []}]``); writes keep the bearer requirement; routes
that need nothing (``/health``, ``/ready``) declare none. ``{lut}`` path
parameters show their pattern.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from .deps import READ_SCHEME

__all__ = ["LUT_REF_PATTERN", "document_security"]

#: A LUT reference in a path: a job id or ``latest``.
LUT_REF_PATTERN = r"^(latest|[1-9][0-9]{0,9})$"


def document_security(app: FastAPI) -> None:
    """Make read routes' security optional and constrain ``{lut}`` in the generated schema."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = build()
            for path, item in schema.get("paths", {}).items():
                for op in item.values():
                    if not isinstance(op, dict):
                        continue
                    if op.get("security") == [{READ_SCHEME: []}]:
                        op["security"] = [{}, {"HTTPBearer": []}]
                    if path.endswith(("/results", "/failures")):
                        op.setdefault("responses", {})["429"] = {
                            "description": "Too many uploads (HWLUT_UPLOAD_RATE)",
                            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}},
                        }
                    for param in op.get("parameters", []):
                        if param.get("in") == "path" and param.get("name") == "lut":
                            param["schema"] = {**param.get("schema", {}), "pattern": LUT_REF_PATTERN}
            schemes = schema.get("components", {}).get("securitySchemes", {})
            read = schemes.pop(READ_SCHEME, None)
            if read is not None and "HTTPBearer" not in schemes:
                schemes["HTTPBearer"] = read
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
