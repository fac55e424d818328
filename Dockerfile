# The cellgate binary on a small Debian image; temporal-compose.yml builds it.
#   docker build -t cellgate:local .

FROM golang:1.26.8-bookworm AS build
WORKDIR /src
# Modules first, so a source change does not download them again.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /cellgate ./cmd/cellgate

FROM debian:bookworm-20260824-slim
# ca-certificates: webhooks to HTTPS endpoints; curl: the compose healthchecks.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/*
RUN useradd --system --uid 10001 --user-group --no-create-home --shell /usr/sbin/nologin cellgate
COPY --from=build /cellgate /usr/local/bin/cellgate
USER cellgate
# api, worker /healthz, the api's internal listener (/internal/v1, for relays)
EXPOSE 8080 8081 8090
ENTRYPOINT ["/usr/local/bin/cellgate"]
