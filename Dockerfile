# syntax=docker/dockerfile:1
# Maestro's image: the wheel the README installs, on a slim Python, run as a user that is not root.
#   docker build -t maestro:0.1.0 .
# Every service is one command of it: python -m services.guard | services.budget | services.orchestrator |
# services.agents (deploy/k8s sets which); `maestro` is the CLI.

# Build: the wheel of this tree and of every dependency (compilers stay in this stage).
FROM python:3.11-slim AS build
WORKDIR /src
COPY . .
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

# Run: the wheels installed, nothing else of the build.
FROM python:3.11-slim
# Output unbuffered (JSON log lines reach the log collector at once); no .pyc written on a read-only root.
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-cache-dir --no-index --find-links=/wheels maestro \
    && groupadd --gid 10001 maestro \
    && useradd --uid 10001 --gid 10001 --home-dir /home/maestro --create-home --shell /usr/sbin/nologin maestro
USER 10001:10001
WORKDIR /home/maestro
CMD ["maestro", "--help"]
