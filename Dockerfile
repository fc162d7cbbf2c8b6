# Coffer as a container image: a static binary (CGO_ENABLED=0; the SQLite
# driver is pure Go) on an empty base, running as an unprivileged user.
#
#   docker build -t coffer --build-arg VERSION=$(git describe --tags --always) .
#   docker run -p 5000:5000 -v coffer-data:/data -e COFFER_ROOT_KEY=... coffer
#
# docs/deploy.md has the configuration for PostgreSQL + S3 and a Kubernetes
# example.

FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/coffer ./cmd/coffer \
	&& mkdir -p /out/data /out/tmp

FROM scratch
# CA roots for TLS to PostgreSQL, S3 and audit webhooks.
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=build /out/coffer /coffer
COPY --from=build --chown=65532:65532 /out/data /data
COPY --from=build --chown=65532:65532 --chmod=1777 /out/tmp /tmp
USER 65532:65532
ENV COFFER_DATA=/data COFFER_LISTEN=0.0.0.0:5000
VOLUME /data
EXPOSE 5000
ENTRYPOINT ["/coffer"]
CMD ["serve"]
