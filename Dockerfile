# syntax=docker/dockerfile:1.10
#
# Vigie's images: one target per service, all from one build stage.
#
#   docker build --target ingest \
#     --build-arg VERSION=$(git describe --tags --always --dirty) --build-arg REVISION=$(git rev-parse HEAD) \
#     -t vigie/ingest .
#
# Targets: ingest (with ingest-credentials), enricher, writer, correlator, vigiectl, simulator.
# Each image is FROM scratch: one static binary (CGO_ENABLED=0), the CA certificates, the
# healthcheck probe and secretcopy (Kubernetes init container: deploy/k8s), an /etc/passwd naming the non-root user 65532, nothing else (no shell).
# Admin port 9090 (/healthz, /readyz, /metrics) in every service image; ingest's events API
# on 8080. deploy/validate assembles the same images without a daemon and checks them.

ARG GO_VERSION=1.26.8

FROM golang:${GO_VERSION}-bookworm AS build
WORKDIR /src
ARG VERSION=dev
ARG REVISION=unknown
ENV CGO_ENABLED=0 GOFLAGS=-buildvcs=false
# The workspace (go.work) builds every binary against the pkg/ and schemas/ of this tree.
RUN --mount=type=bind,target=/src \
    --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    go build -trimpath \
      -ldflags "-s -w -X github.com/vigie/vigie/pkg/service.version=${VERSION} -X github.com/vigie/vigie/pkg/service.revision=${REVISION}" \
      -o /out/ \
      ./services/ingest/cmd/ingest \
      ./services/ingest/cmd/ingest-credentials \
      ./services/enricher/cmd/enricher \
      ./services/writer/cmd/writer \
      ./services/correlator/cmd/correlator \
      ./services/vigiectl/cmd/vigiectl \
      ./services/simulator/cmd/simulator \
      ./deploy/validate/cmd/healthcheck \
      ./deploy/validate/cmd/secretcopy
RUN echo 'vigie:x:65532:65532:vigie:/nonexistent:/sbin/nologin' > /out/passwd \
 && echo 'vigie:x:65532:' > /out/group

# The common runtime: no shell, no package manager, a non-root user.
FROM scratch AS runtime
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=build /out/passwd /etc/passwd
COPY --from=build /out/group /etc/group
COPY --from=build /out/healthcheck /out/secretcopy /usr/local/bin/
USER 65532:65532

FROM runtime AS ingest
ARG VERSION=dev
ARG REVISION=unknown
LABEL org.opencontainers.image.title="vigie-ingest" \
      org.opencontainers.image.description="Vigie ingest: the detectors' events API (auth, validation, pseudonyms) to Kafka" \
      org.opencontainers.image.source="https://github.com/vigie/vigie" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}"
COPY --from=build /out/ingest /out/ingest-credentials /usr/local/bin/
ENV VIGIE_INGEST_LISTEN=0.0.0.0:8080 VIGIE_INGEST_ADMIN_LISTEN=0.0.0.0:9090
EXPOSE 8080 9090
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 CMD ["/usr/local/bin/healthcheck", "http://127.0.0.1:9090/healthz"]
ENTRYPOINT ["/usr/local/bin/ingest"]

FROM runtime AS enricher
ARG VERSION=dev
ARG REVISION=unknown
LABEL org.opencontainers.image.title="vigie-enricher" \
      org.opencontainers.image.description="Vigie enricher: reference data joined to raw detections" \
      org.opencontainers.image.source="https://github.com/vigie/vigie" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}"
COPY --from=build /out/enricher /usr/local/bin/
ENV VIGIE_ENRICHER_ADMIN_LISTEN=0.0.0.0:9090
EXPOSE 9090
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 CMD ["/usr/local/bin/healthcheck", "http://127.0.0.1:9090/healthz"]
ENTRYPOINT ["/usr/local/bin/enricher"]

FROM runtime AS writer
ARG VERSION=dev
ARG REVISION=unknown
LABEL org.opencontainers.image.title="vigie-writer" \
      org.opencontainers.image.description="Vigie writer: enriched detections into ClickHouse, exactly once in effect" \
      org.opencontainers.image.source="https://github.com/vigie/vigie" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}"
COPY --from=build /out/writer /usr/local/bin/
ENV VIGIE_WRITER_ADMIN_LISTEN=0.0.0.0:9090
EXPOSE 9090
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 CMD ["/usr/local/bin/healthcheck", "http://127.0.0.1:9090/healthz"]
ENTRYPOINT ["/usr/local/bin/writer"]

FROM runtime AS correlator
ARG VERSION=dev
ARG REVISION=unknown
LABEL org.opencontainers.image.title="vigie-correlator" \
      org.opencontainers.image.description="Vigie correlator: streaming and scheduled correlation rules to alerts" \
      org.opencontainers.image.source="https://github.com/vigie/vigie" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}"
COPY --from=build /out/correlator /usr/local/bin/
ENV VIGIE_CORRELATOR_ADMIN_LISTEN=0.0.0.0:9090
EXPOSE 9090
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 CMD ["/usr/local/bin/healthcheck", "http://127.0.0.1:9090/healthz"]
ENTRYPOINT ["/usr/local/bin/correlator"]

FROM runtime AS simulator
ARG VERSION=dev
ARG REVISION=unknown
LABEL org.opencontainers.image.title="vigie-simulator" \
      org.opencontainers.image.description="Vigie simulator: realistic detector traffic with planted scenarios (demo, tests)" \
      org.opencontainers.image.source="https://github.com/vigie/vigie" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}"
COPY --from=build /out/simulator /usr/local/bin/
# A batch job, not a server: nothing to probe.
HEALTHCHECK NONE
ENTRYPOINT ["/usr/local/bin/simulator"]

# The admin command, last: the default target. One-shot jobs (migrate, topics apply).
FROM runtime AS vigiectl
ARG VERSION=dev
ARG REVISION=unknown
LABEL org.opencontainers.image.title="vigie-vigiectl" \
      org.opencontainers.image.description="Vigie admin command: migrations, topics, rules" \
      org.opencontainers.image.source="https://github.com/vigie/vigie" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}"
COPY --from=build /out/vigiectl /usr/local/bin/
# A one-shot command, not a server: nothing to probe.
HEALTHCHECK NONE
ENTRYPOINT ["/usr/local/bin/vigiectl"]
