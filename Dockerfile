# Ranvier in a container: `docker build -t ranvier .`, then
#   docker run -d -v ranvier-data:/data -e SERVER_NAME=example.org -p 8008:8008 ranvier
# The first start writes /data/homeserver.yaml (and the signing key) for SERVER_NAME, with
# the listener on every address so the published port reaches it; later starts use the
# file as it is. See docs/packaging.md.

ARG PYTHON_VERSION=3.12

FROM python:${PYTHON_VERSION}-slim-bookworm AS build
WORKDIR /src
# the wheel needs the package and what pyproject.toml reads (README.md is the long description)
COPY pyproject.toml README.md ./
COPY ranvier ./ranvier
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:${PYTHON_VERSION}-slim-bookworm
# the UID and GID Synapse's image runs as, so a /data volume moved over keeps its owner
ARG UID=991
ARG GID=991
RUN groupadd --system --gid "${GID}" ranvier \
    && useradd --system --uid "${UID}" --gid ranvier --home-dir /data --no-create-home ranvier \
    && mkdir /data && chown ranvier:ranvier /data
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
COPY contrib/docker/start.sh /usr/local/bin/ranvier-start
COPY contrib/docker/healthcheck.py /usr/local/bin/ranvier-healthcheck

USER ranvier
WORKDIR /data
VOLUME /data
EXPOSE 8008/tcp 8448/tcp
ENV PYTHONUNBUFFERED=1 \
    RANVIER_CONFIG_PATH=/data/homeserver.yaml \
    RANVIER_HEALTH_URL=http://127.0.0.1:8008/health

# GET /health answers 200 while the server serves and its database answers
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "/usr/local/bin/ranvier-healthcheck"]

# exec'd by the script: SIGTERM from `docker stop` reaches Ranvier, which stops in ~2 s
ENTRYPOINT ["/usr/local/bin/ranvier-start"]
