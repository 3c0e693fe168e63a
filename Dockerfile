# One image with both daemons: /beacon-controller and /beacon-speaker.
#   make image                      # docker or podman, tag beacon:dev
#   make image IMAGE=registry.example/beacon:v0.1.0
#   make image IMAGE_OFFLINE=1      # no registry: see Dockerfile.local
# Static binaries (CGO_ENABLED=0) on distroless/static: no shell, no libc.
# The image's default user is nonroot (65532), which the controller keeps;
# the speaker's DaemonSet runs it as uid 0 with only NET_ADMIN and NET_RAW
# (capabilities are not effective for a non-root process in Kubernetes).

ARG GO_VERSION=1.26
FROM golang:${GO_VERSION} AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# Set by BuildKit/podman for --platform builds; empty means the builder's own.
ARG TARGETOS=linux
ARG TARGETARCH
# What --version and beacon_build_info report (make image passes both).
ARG VERSION=dev
ARG COMMIT=""
RUN CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH \
    go build -trimpath -ldflags="-s -w -X github.com/beaconlb/beacon/internal/version.Version=$VERSION -X github.com/beaconlb/beacon/internal/version.Commit=$COMMIT" \
    -o /out/ ./cmd/beacon-controller ./cmd/beacon-speaker

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/beacon-controller /out/beacon-speaker /
USER 65532:65532
ENTRYPOINT ["/beacon-controller"]
