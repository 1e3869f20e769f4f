"""Devices and their tokens."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from .common import JsonDict, Name, SmallText, Strict

__all__ = ["DeviceCreate", "DevicePublic", "DeviceWithToken", "TokenPublic"]


class DeviceCreate(Strict):
    """Register a device."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "name": "pixel7-cpu-1t",
                    "description": "Pixel 7, big cores, 1 thread",
                    "hardware": {"soc": "Tensor G2", "cpu_model": "Cortex-X1"},
                    "runtime": {"runtime": "tflite", "threads": 1},
                }
            ]
        }
    )

    name: Name
    description: SmallText = ""
    hardware: JsonDict = Field(default_factory=dict, description="CPU model, cores, SoC, ...")
    runtime: JsonDict = Field(default_factory=dict, description="runtime, version, threads, delegate, ...")


class DevicePublic(BaseModel):
    """A device as the API shows it."""

    model_config = ConfigDict(from_attributes=True)

    name: str
    description: str
    hardware: dict[str, Any]
    runtime: dict[str, Any]
    created_at: datetime


class DeviceWithToken(BaseModel):
    """A new device and its token: the only time the token is shown."""

    device: DevicePublic
    token: str


class TokenPublic(BaseModel):
    """A new device token: the only time it is shown."""

    device: str
    token: str
