"""The ORM tables of hwlut's database (SQLAlchemy 2, typed).

A *LUT* is a :class:`Job`: a profiling job's measured entries, or a table
imported from a file (``kind == "import"``). Latencies are in microseconds.

Entries keep two keys: ``key`` as the source wrote it (the canonical key for
hwlut's own measurements) and ``entry_key``, the canonical hwlut key, which is
``NULL`` when the source's op is not an hwlut entry (an OFA block with
squeeze-excite or h-swish, OFA's ``Conv_2``). Such entries are kept, served by
their original key, and exported again unchanged.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

__all__ = [
    "Base",
    "Device",
    "DeviceToken",
    "Job",
    "JobStatus",
    "LutEntry",
    "NetworkMeasurement",
    "Space",
    "WorkItem",
    "WorkStatus",
    "utcnow",
]


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A UTC timestamp: stored naive (the same on every database), read back aware."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; hwlut stores aware UTC times")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


class JobStatus:
    """Values of :attr:`Job.status`."""

    PENDING = "pending"
    RUNNING = "running"
    COMPLETE = "complete"
    FAILED = "failed"
    CANCELLED = "cancelled"


class WorkStatus:
    """Values of :attr:`WorkItem.status`."""

    PENDING = "pending"
    LEASED = "leased"
    DONE = "done"
    FAILED = "failed"


class Base(DeclarativeBase):
    """Declarative base of every hwlut table."""

    type_annotation_map: ClassVar[dict[Any, Any]] = {dict[str, Any]: JSON, datetime: UTCDateTime}


class Device(Base):
    """A device that LUTs are measured on (``pixel7-cpu-1t``)."""

    __tablename__ = "devices"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    hardware: Mapped[dict[str, Any]] = mapped_column(default=dict)
    runtime: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    tokens: Mapped[list[DeviceToken]] = relationship(
        back_populates="device", cascade="all, delete-orphan", passive_deletes=True
    )
    jobs: Mapped[list[Job]] = relationship(back_populates="device", cascade="all, delete-orphan", passive_deletes=True)


class DeviceToken(Base):
    """A device's bearer token: only its SHA-256 is stored."""

    __tablename__ = "device_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    device_id: Mapped[int] = mapped_column(ForeignKey("devices.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    hint: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    device: Mapped[Device] = relationship(back_populates="tokens")


class Space(Base):
    """A search-space spec, stored once per spec hash."""

    __tablename__ = "spaces"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(128))
    spec_hash: Mapped[str] = mapped_column(String(64), unique=True)
    spec: Mapped[dict[str, Any]] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Job(Base):
    """A profiling job (its work items and results form a LUT), or an imported LUT."""

    __tablename__ = "jobs"
    __table_args__ = (Index("ix_jobs_device_status", "device_id", "status"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    device_id: Mapped[int] = mapped_column(ForeignKey("devices.id", ondelete="CASCADE"))
    space_id: Mapped[int | None] = mapped_column(ForeignKey("spaces.id", ondelete="RESTRICT"))
    kind: Mapped[str] = mapped_column(String(16), default="profile")
    status: Mapped[str] = mapped_column(String(16), default=JobStatus.PENDING)
    resolution: Mapped[int | None] = mapped_column()
    runtime: Mapped[str] = mapped_column(String(64), default="")
    threads: Mapped[int | None] = mapped_column()
    options: Mapped[dict[str, Any]] = mapped_column(default=dict)
    lease_seconds: Mapped[float] = mapped_column(Float, default=300.0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=3)
    source_format: Mapped[str | None] = mapped_column(String(32))
    provenance: Mapped[dict[str, Any]] = mapped_column(default=dict)
    overhead_us: Mapped[float | None] = mapped_column(Float)
    #: The LUT's accuracy against whole networks (an uploaded validation, without its per-network rows,
    #: which are :class:`NetworkMeasurement` rows); None until one is uploaded.
    accuracy: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    completed_at: Mapped[datetime | None] = mapped_column()

    device: Mapped[Device] = relationship(back_populates="jobs")
    space: Mapped[Space | None] = relationship()


class WorkItem(Base):
    """One distinct entry of a job's space, to be measured under a lease."""

    __tablename__ = "work_items"
    __table_args__ = (
        UniqueConstraint("job_id", "key", name="uq_work_items_job_key"),
        Index("ix_work_items_job_status", "job_id", "status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16), default="entry")
    key: Mapped[str] = mapped_column(String(255))
    fields: Mapped[dict[str, Any]] = mapped_column()
    status: Mapped[str] = mapped_column(String(16), default=WorkStatus.PENDING)
    lease_id: Mapped[str | None] = mapped_column(String(64), index=True)
    leased_by: Mapped[str | None] = mapped_column(String(128))
    lease_expires_at: Mapped[datetime | None] = mapped_column()
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class LutEntry(Base):
    """One latency of a LUT (µs), with its statistics and provenance."""

    __tablename__ = "lut_entries"
    __table_args__ = (
        UniqueConstraint("job_id", "key", name="uq_lut_entries_job_key"),
        Index("ix_lut_entries_job_entry_key", "job_id", "entry_key"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(255))
    entry_key: Mapped[str | None] = mapped_column(String(255))
    op: Mapped[str | None] = mapped_column(String(16))
    cin: Mapped[int | None] = mapped_column()
    cout: Mapped[int | None] = mapped_column()
    h: Mapped[int | None] = mapped_column()
    w: Mapped[int | None] = mapped_column()
    stride: Mapped[int | None] = mapped_column()
    kernel: Mapped[int | None] = mapped_column()
    expansion: Mapped[int | None] = mapped_column()
    groups: Mapped[int | None] = mapped_column()
    latency_us: Mapped[float] = mapped_column(Float)
    stats: Mapped[dict[str, Any]] = mapped_column(default=dict)
    source: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    work_item_id: Mapped[int | None] = mapped_column(ForeignKey("work_items.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class NetworkMeasurement(Base):
    """A whole network measured end to end on a LUT's device (validates the LUT's sums)."""

    __tablename__ = "network_measurements"

    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    arch: Mapped[str] = mapped_column(Text)
    latency_us: Mapped[float] = mapped_column(Float)
    predicted_us: Mapped[float | None] = mapped_column(Float)
    stats: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
