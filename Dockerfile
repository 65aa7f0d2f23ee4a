# syntax=docker/dockerfile:1
# The project's one image: gateway, stream workers, retrainer, init and exporter
# (docker-compose.yml and deploy/base pick the command). Triton runs from NVIDIA's
# official image instead (PyTorch backend), reading the same model repository.
#
#   docker build -t usr-stack:0.1.0 .            (docker compose build does this)
#   docker build --build-arg USR_UID=$(id -u) ... (bind-mounted triton_repo/ stays writable)
FROM python:3.11-slim-bookworm

ARG UV_VERSION=0.13.8
ARG USR_UID=10001
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    UV_LINK_MODE=copy \
    UV_NO_CACHE=1 \
    VIRTUAL_ENV=/opt/usr/venv \
    PATH=/opt/usr/venv/bin:$PATH \
    USR_CONFIG=/etc/usr/config.yaml

# uv at the version scripts/setup.sh pins; the environment exactly as requirements/app.lock
RUN pip install --no-cache-dir "uv==${UV_VERSION}" \
 && uv venv --python /usr/local/bin/python3.11 "$VIRTUAL_ENV"
WORKDIR /opt/usr/src
COPY requirements/app.lock requirements/app.lock
RUN uv pip sync --python "$VIRTUAL_ENV/bin/python" requirements/app.lock

# the project itself (not editable), and its gRPC code generated now, while the tree is writable
COPY pyproject.toml README.md ./
COPY usr usr
COPY features features
COPY streams streams
COPY model model
COPY gateway gateway
RUN uv pip install --python "$VIRTUAL_ENV/bin/python" --no-deps . \
 && python -c "import gateway.proto" \
 && rm -rf /opt/usr/src

# a non-root user owning only its data directories; the default configuration baked in
# (compose and Kubernetes mount deploy/base/usr.yaml over it)
RUN groupadd --gid "$USR_UID" usr \
 && useradd --uid "$USR_UID" --gid usr --home-dir /var/lib/usr --shell /usr/sbin/nologin usr \
 && mkdir -p /var/lib/usr/run /var/lib/usr/cache /models /etc/usr \
 && chown -R usr:usr /var/lib/usr /models
COPY deploy/base/usr.yaml /etc/usr/config.yaml
WORKDIR /var/lib/usr
USER usr
CMD ["usr", "config"]
