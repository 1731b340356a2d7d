# Multi-stage: build a static binary, run it as a non-root user on a
# minimal base.
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/orderflow ./cmd/orderflow

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/orderflow /orderflow
USER nonroot:nonroot
WORKDIR /home/nonroot
EXPOSE 8080 4222
ENTRYPOINT ["/orderflow"]
# Alone, it runs the embedded server with the demo; the compose file
# points it at a cluster instead.
CMD ["serve", "--demo", "--http", "0.0.0.0:8080", "--nats-listen", "0.0.0.0:4222", "--data-dir", "/home/nonroot/data"]
