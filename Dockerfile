# syntax=docker/dockerfile:1
# davgw: static binary on distroless, running as a non-root user.
#
#   docker build -t davgw .
#   docker run -p 8080:8080 -v $PWD/config.toml:/etc/davgw/config.toml:ro davgw
#
# The config must listen on 0.0.0.0:8080 inside the container
# ([server].listen = "0.0.0.0:8080", or pass: serve -listen 0.0.0.0:8080).
# Without Docker, `bash .ci/image OUT` assembles the same image (same
# entrypoint, user, working directory and environment) from local files;
# the test suite builds and runs that one.

FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=""
ARG COMMIT=""
RUN CGO_ENABLED=0 go build -trimpath \
      -ldflags "-s -w -X main.version=${VERSION} -X main.commit=${COMMIT}" \
      -o /out/davgw ./cmd/davgw

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/davgw /davgw
ENV DAVGW_CONFIG=/etc/davgw/config.toml
USER nonroot:nonroot
WORKDIR /home/nonroot
EXPOSE 8080
ENTRYPOINT ["/davgw", "serve"]
