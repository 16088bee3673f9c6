# The llm-otel-pipeline Collector, built from the same pinned ocb manifest `make collector` uses.
FROM golang:1.25-bookworm AS build
ARG OCB_VERSION=v0.145.0
RUN go install go.opentelemetry.io/collector/cmd/builder@${OCB_VERSION}
WORKDIR /src
COPY otel-collector/builder-config.yaml otel-collector/builder-config.yaml
RUN CGO_ENABLED=0 builder --config otel-collector/builder-config.yaml

FROM alpine:3.21
RUN addgroup -S otel && adduser -S -G otel otel && mkdir -p /var/lib/otelcol/file_storage \
    && chown -R otel:otel /var/lib/otelcol
COPY --from=build /src/build/otelcol-llm-src/otelcol-llm /usr/local/bin/otelcol-llm
COPY otel-collector/config.yaml otel-collector/config.native.yaml otel-collector/config.ingest-auth.yaml \
     otel-collector/config.tail-sampling.yaml otel-collector/run.sh /etc/otelcol-llm/
ENV OTELCOL_BIN=/usr/local/bin/otelcol-llm
USER otel
EXPOSE 4317 4318 8889 13133
ENTRYPOINT ["/etc/otelcol-llm/run.sh"]
