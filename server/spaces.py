"""Search spaces named in requests: a built-in name or a spec mapping, as a :class:`~searchspace.SpaceSpec`."""

from __future__ import annotations

from typing import Any

from searchspace import BUILTIN_SPACES, SpaceSpec, SpecError, load_space

from .errors import ApiError

__all__ = ["resolve_space"]


def resolve_space(space: str | dict[str, Any], resolution: int | None, where: str = "space") -> SpaceSpec:
    """A built-in space by name, or a spec mapping; 422 naming the field otherwise."""
    try:
        if isinstance(space, str):
            if space not in BUILTIN_SPACES:
                raise SpecError(f"unknown space {space!r}; built in: {', '.join(BUILTIN_SPACES)} (or give a spec)")
            return load_space(space, resolution=resolution)
        spec = SpaceSpec.from_dict(space)
        if resolution is not None and resolution != spec.resolution:
            spec = SpaceSpec.from_dict({**spec.to_dict(), "resolution": resolution})
        return spec
    except (SpecError, ValueError, TypeError) as exc:
        raise ApiError(422, ["body", where], str(exc)) from None
