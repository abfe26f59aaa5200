# One image for both roles: the API (the default command) and the worker
# (`command: ["jobsys", "worker"]` in docker-compose.yml).
# Classic-builder compatible on purpose: no BuildKit-only syntax, no `# syntax=` line.
FROM python:3.13-slim

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    REDIS_HOST=redis

RUN groupadd --gid 10001 jobsys \
 && useradd --uid 10001 --gid jobsys --create-home --shell /usr/sbin/nologin jobsys

WORKDIR /app

# Dependencies first, in their own layer: it is rebuilt only when pyproject.toml
# changes, not on every edit under jobsys/. pip honours the environment markers.
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" > /tmp/requirements.txt \
 && pip install --no-cache-dir -r /tmp/requirements.txt \
 && rm /tmp/requirements.txt

COPY README.md ./
COPY jobsys ./jobsys
RUN pip install --no-cache-dir . \
 && rm -rf build ./*.egg-info

USER jobsys
EXPOSE 5001
# With no token set, the API starts on 0.0.0.0 only when told the port is published on
# loopback (JOBSYS_PUBLISHED_HOST=127.0.0.1, as docker-compose.yml sets it by default).
CMD ["jobsys", "api", "--host", "0.0.0.0", "--port", "5001"]
