# Watchtower gateway image: build with the Rust toolchain, run on a slim Debian.
FROM rust:1-bookworm AS build
WORKDIR /src
# The whole source tree (see .dockerignore): manifest targets such as benches/ must exist.
COPY . .
RUN cargo build --release --locked --bin watchtower \
 && cp target/release/watchtower /usr/local/bin/watchtower

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --no-create-home watchtower
COPY --from=build /usr/local/bin/watchtower /usr/local/bin/watchtower
COPY compose/watchtower/config.yaml /etc/watchtower/config.yaml
USER 10001
# OTLP gRPC, OTLP HTTP, health, self-metrics
EXPOSE 4317 4318 13133 8888
ENTRYPOINT ["/usr/local/bin/watchtower"]
CMD ["run", "--config", "/etc/watchtower/config.yaml"]
