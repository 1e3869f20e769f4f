"""hwlut's HTTP service (FastAPI). Never imports torch; reaches the data through :mod:`lut_store`."""

from .main import create_app
from .settings import Settings, get_settings

__all__ = ["Settings", "create_app", "get_settings"]
