# Static, non-root PDS image: `docker build -t pds .`, then see compose.yaml and docs/deploy.md.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/pds ./cmd/pds
# distroless has no shell to mkdir/chown at run time: the data directory is made here and copied with its owner.
RUN mkdir -p /out/data

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/pds /pds
# nonroot is uid/gid 65532. A new named volume on /data takes this ownership; a bind-mounted host directory
# must be owned by 65532 (chown 65532:65532 /srv/pds/data).
COPY --from=build --chown=65532:65532 /out/data /data
ENV PDS_DATA_DIRECTORY=/data PDS_PORT=2583 PDS_BIND_ADDRESS=0.0.0.0
VOLUME /data
EXPOSE 2583
USER 65532:65532
HEALTHCHECK --interval=30s --timeout=10s --start-period=30s --retries=3 CMD ["/pds", "health"]
ENTRYPOINT ["/pds"]
CMD ["serve"]
