# hwlut's server and CPU agent: slim, non-root, pinned by requirements.lock.
#   docker build -t hwlut .                             # server + onnxruntime agent + export (torch)
#   docker build --build-arg EXTRAS=server -t hwlut .   # the server alone
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
COPY requirements.lock pyproject.toml README.md ./
COPY searchspace ./searchspace
COPY lut_store ./lut_store
COPY lutclient ./lutclient
COPY profiler ./profiler
COPY searcher ./searcher
COPY server ./server
COPY hwlut ./hwlut

ARG EXTRAS=server,runtime,export
# the lock pins every version (constraints): only what EXTRAS needs is installed
RUN pip install -c requirements.lock ".[${EXTRAS}]"

RUN useradd --create-home --uid 10001 hwlut
USER hwlut
ENV HWLUT_HOME=/home/hwlut/.hwlut
EXPOSE 8000
CMD ["hwlut", "serve", "--host", "0.0.0.0", "--port", "8000", "--upgrade"]
