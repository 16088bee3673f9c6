# One image for the sidecar (python -m processors) and the gateway (python -m app).
FROM python:3.11-slim
WORKDIR /srv
COPY pyproject.toml README.md ./
COPY app app
COPY processors processors
RUN pip install --no-cache-dir . && useradd --system llm
USER llm
