# The revocation service. Embedded store by default (mount /data); set MONGODB_URI
# (and the same REVOCATION_MASTER_KEY on every instance) to use MongoDB 7+.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /srv
COPY pyproject.toml README.md ./
COPY app ./app
RUN pip install . && useradd --system --uid 10001 --home /srv revocation \
    && mkdir /data && chown revocation /data
COPY tenants ./tenants
COPY plugins ./plugins

USER revocation
VOLUME ["/data"]
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s CMD python -c "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/readyz').status != 200)"
# Uploaded tenant plugins run in sandboxed worker processes: Docker's default seccomp
# profile refuses user namespaces, so there the sandbox runs without them (chroot off;
# rlimits, Landlock and seccomp still on); the start-up log line plugin_sandbox says which
# layers work. docs/PLUGINS.md ("The sandbox") says what to add in production.
ENTRYPOINT ["revocation-service", "serve", "--host", "0.0.0.0", "--port", "8000", "--data-dir", "/data", "--tenants", "/srv/tenants", "--plugins-dir", "/srv/plugins"]
