# brew-bridge: one process per consumer-group member. Build from the repo root:
#   docker build -t brew-bridge .
# The wheel is built once, then installed with the versions CI tested (constraints.txt);
# the runtime image holds no source tree. It runs as a non-root user and works with a
# read-only root filesystem: the only writes go to the outbox volume.

FROM python:3.11-slim-bookworm AS build
WORKDIR /src
COPY pyproject.toml constraints.txt README.md ./
COPY src ./src
RUN python -m pip wheel --no-cache-dir --no-deps --wheel-dir /wheels . \
 && python -m venv /opt/brew-bridge \
 && /opt/brew-bridge/bin/pip install --no-cache-dir -c constraints.txt /wheels/*.whl

FROM python:3.11-slim-bookworm
LABEL org.opencontainers.image.title="brew-bridge" \
      org.opencontainers.image.description="Kafka and webhook events to Brew automation runs, each watched to its end"
RUN groupadd --system --gid 10001 bridge \
 && useradd --system --uid 10001 --gid bridge --home-dir /var/lib/brew-bridge --create-home bridge
COPY --from=build /opt/brew-bridge /opt/brew-bridge
COPY config/example.yaml /etc/brew-bridge/config.yaml
# No .pyc writes at run time (the root filesystem may be read-only); tmp stays on /tmp,
# which the manifests mount as an emptyDir.
ENV PATH="/opt/brew-bridge/bin:${PATH}" \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    BREW_BRIDGE_OUTBOX__PATH=/var/lib/brew-bridge/outbox.db \
    BREW_BRIDGE_SERVER__PORT=9400
USER 10001:10001
WORKDIR /var/lib/brew-bridge
# The outbox must outlive the container: mount a volume here (see deploy/).
VOLUME ["/var/lib/brew-bridge"]
EXPOSE 9400
ENTRYPOINT ["brew-bridge"]
CMD ["run", "--config", "/etc/brew-bridge/config.yaml"]
