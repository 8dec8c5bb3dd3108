# The lash gateway image: the `lash-gateway` command, plus `mcp-server-time` (run over stdio inside the
# container by the compose example) and the example notes server (examples/compose/notes_server.py).
#
#   docker build -t lash-gateway .
#   docker run --rm -p 127.0.0.1:8765:8765 -v ./config.json:/etc/lash-gateway/config.json:ro lash-gateway
#
# The config must set "gateway": {"host": "0.0.0.0"} for the published port to reach the gateway; see
# compose.yaml and examples/compose/gateway.json.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# Only what the wheel is built from; the build directory is removed with the same layer.
COPY pyproject.toml README.md /tmp/lash-gateway/
COPY lash_core /tmp/lash-gateway/lash_core
COPY lash_gateway /tmp/lash-gateway/lash_gateway
COPY adapters /tmp/lash-gateway/adapters
RUN pip install /tmp/lash-gateway "mcp-server-time>=2025.1" \
    && rm -rf /tmp/lash-gateway

COPY examples/compose/notes_server.py /opt/lash-gateway/examples/notes_server.py

# An unprivileged user; the state directory is created owned by it, so a fresh named volume mounted
# there inherits that owner.
RUN groupadd --system --gid 10001 lash \
    && useradd --system --uid 10001 --gid lash --home-dir /home/lash --create-home --shell /usr/sbin/nologin lash \
    && install -d -o lash -g lash -m 0700 /var/lib/lash-gateway
USER lash
WORKDIR /home/lash
ENV LASH_GATEWAY_STATE_DIR=/var/lib/lash-gateway

EXPOSE 8765
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8765/healthz', timeout=2)"]
ENTRYPOINT ["lash-gateway"]
CMD ["serve", "--config", "/etc/lash-gateway/config.json"]
