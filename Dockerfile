# syntax=docker/dockerfile:1
#
# bookhub container image: a static binary on distroless, running as non-root.
#
#   docker build --build-arg VERSION=$(git describe --always --dirty) -t bookhub .
#   docker run --rm -p 8080:8080 bookhub          # embedded SQLite + in-process bus
#
# The final image has no shell and no curl, so the health check runs the
# binary's own probe: `bookhub healthcheck --url http://127.0.0.1:8080/readyz`.

ARG GO_VERSION=1.26

FROM golang:${GO_VERSION} AS build
WORKDIR /src
# Dependencies first, so source edits do not invalidate the module cache layer.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
ARG VERSION=dev
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOOS=linux \
    go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/bookhub ./cmd/bookhub \
 && mkdir -p /out/data

# static-debian12 has CA certificates, tzdata and /etc/passwd entries for the
# nonroot user (uid 65532); nothing else.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/bookhub /bookhub
# Embedded mode keeps its SQLite file and generated JWT secret here; it must be
# writable by the non-root user. Clustered mode (MySQL + Redis) never writes it.
COPY --from=build --chown=65532:65532 /out/data /data
ENV BOOKHUB_ADDR=:8080 \
    BOOKHUB_DATA_DIR=/data \
    BOOKHUB_LOG_FORMAT=json
VOLUME ["/data"]
USER 65532:65532
# 8080: REST, WebSocket and web assets. 9090: Prometheus /metrics when
# BOOKHUB_METRICS_ADDR=:9090 (kept off the public port on purpose).
EXPOSE 8080 9090
HEALTHCHECK --interval=10s --timeout=3s --start-period=15s --retries=3 \
    CMD ["/bookhub", "healthcheck", "--url", "http://127.0.0.1:8080/readyz"]
ENTRYPOINT ["/bookhub"]
CMD ["serve"]
