# Static, non-root PDS image.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/pds ./cmd/pds

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/pds /pds
ENV PDS_DATA_DIRECTORY=/data PDS_PORT=2583 PDS_BIND_ADDRESS=0.0.0.0
VOLUME /data
EXPOSE 2583
USER nonroot:nonroot
ENTRYPOINT ["/pds", "serve"]
