# syntax=docker/dockerfile:1
# alertstream in a container: `docker build -t alertstream .` (BuildKit), then e.g.
#   docker run --network alertstream_default alertstream -b kafka:9092 send my-stream
# The sample alerts and schemas are inside the binary; the image holds nothing else.

FROM rust:1-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends cmake libssl-dev pkg-config \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src src
COPY schemas schemas
COPY sample-alerts sample-alerts
COPY examples examples
COPY benches benches
# Cache mounts keep the crate registry and the build (librdkafka included)
# between builds, so a source change rebuilds only alertstream itself.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin alertstream \
 && cp target/release/alertstream /usr/local/bin/alertstream

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates libssl3 \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --create-home --home-dir /home/alertstream alertstream \
 && mkdir /stamps \
 && chown 10001:10001 /stamps
COPY --from=build /usr/local/bin/alertstream /usr/local/bin/alertstream
# A new named volume mounted on /stamps starts as a copy of this folder,
# owned by the user (compose.yaml's print writes its cutouts there).
USER 10001:10001
WORKDIR /home/alertstream
ENV ALERTSTREAM_BROKERS=kafka:9092
ENTRYPOINT ["alertstream"]
CMD ["--help"]
