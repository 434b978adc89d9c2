# syntax=docker/dockerfile:1
# One image for every DeepLens process. The default command is the search API; the others are
# arguments (docs/deploying.md):
#   deeplens migrate | deeplens relay
#   dagster api grpc -m deeplens_dagster.definitions -h 0.0.0.0 -p 3030   (the code location)
#   dagster api execute_run ...                                            (run workers: Dagster)
# The built-in models (EfficientNet-Lite0 and -Lite2) ship inside the package. Build: docker build -t deeplens:0.1.0 .

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/deeplens
WORKDIR /src
# The pinned dependency closure first, in a layer of its own: a code change rebuilds from the
# next step on. --no-deps: exactly these versions, nothing resolved here.
COPY deploy/constraints.txt deploy/constraints.txt
RUN /opt/deeplens/bin/pip install --no-deps -r deploy/constraints.txt
COPY pyproject.toml README.md dagster.yaml workspace.yaml ./
COPY deeplens deeplens
COPY deeplens_dagster deeplens_dagster
COPY search_api search_api
COPY deeplens_cli deeplens_cli
COPY deeplens_local deeplens_local
# The project itself (a wheel, bytecode compiled), then proof that the closure is complete.
RUN /opt/deeplens/bin/pip install --no-deps . \
    && /opt/deeplens/bin/pip check \
    && /opt/deeplens/bin/python -c "import deeplens_dagster.definitions, search_api.main, deeplens_cli.main"

FROM ${PYTHON_IMAGE}
RUN groupadd --system --gid 10001 deeplens \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin deeplens \
    && mkdir -p /opt/dagster/dagster_home \
    && chown 10001:10001 /opt/dagster/dagster_home
COPY --from=build /opt/deeplens /opt/deeplens
# Settings a process needs anywhere: the venv first on PATH, logs unbuffered, nothing written
# next to the code (the root filesystem may be read-only), DeepLens' and Dagster's homes.
ENV PATH=/opt/deeplens/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    DEEPLENS_HOME=/tmp/deeplens \
    DAGSTER_HOME=/opt/dagster/dagster_home
WORKDIR /tmp
USER 10001:10001
EXPOSE 8000 3030
# No ENTRYPOINT: Dagster's run launchers pass a run worker's whole command line as arguments.
CMD ["uvicorn", "search_api.main:app", "--host", "0.0.0.0", "--port", "8000", "--no-access-log"]
