# syntax=docker/dockerfile:1
#
# One Dockerfile for every Telltale binary; pick one with --target:
#
#   docker build --target collector -t telltale/collector .
#   docker build --target agent     -t telltale/agent .
#   docker build --target demo      -t telltale/demo .
#
# docker-compose.yml builds all three. Binaries are static (CGO off: the
# deploy log's SQLite is pure Go) and run on distroless.

ARG GO_VERSION=1.26

FROM golang:${GO_VERSION} AS build
WORKDIR /src
ENV CGO_ENABLED=0 GOFLAGS=-trimpath
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .

FROM build AS build-collector
ARG VERSION=dev
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    go build -ldflags "-s -w -X main.version=${VERSION}" -o /out/collector ./collector \
    && mkdir -p /out/data

FROM build AS build-agent
ARG VERSION=dev
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    go build -ldflags "-s -w -X main.version=${VERSION}" -o /out/agent ./agent \
    && mkdir -p /out/spool

FROM build AS build-demo
ARG VERSION=dev
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    go build -ldflags "-s -w -X main.buildVersion=${VERSION}" -o /out/demo ./instrument/demo

# The collector runs as nonroot; its data folder belongs to that user so a
# fresh named volume mounted there is writable.
FROM gcr.io/distroless/static-debian12:nonroot AS collector
COPY --from=build-collector /out/collector /usr/local/bin/telltale-collector
COPY --from=build-collector --chown=65532:65532 /out/data /var/lib/telltale
USER 65532:65532
EXPOSE 9470
VOLUME /var/lib/telltale
ENTRYPOINT ["/usr/local/bin/telltale-collector"]
CMD ["-listen", "0.0.0.0:9470", "-data", "/var/lib/telltale"]

# The agent runs as root: it reads the host's /proc and /sys (mounted
# read-only under /host) and statfs'es the host's filesystems.
FROM gcr.io/distroless/static-debian12 AS agent
COPY --from=build-agent /out/agent /usr/local/bin/telltale-agent
COPY --from=build-agent /out/spool /var/lib/telltale-agent/spool
VOLUME /var/lib/telltale-agent/spool
ENTRYPOINT ["/usr/local/bin/telltale-agent"]

FROM gcr.io/distroless/static-debian12:nonroot AS demo
COPY --from=build-demo /out/demo /usr/local/bin/telltale-demo
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/telltale-demo"]
