"""The ASGI app that ``hwlut serve`` (uvicorn) loads: settings from the environment."""

from .main import create_app

app = create_app()
