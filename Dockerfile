# alertstream in a container: `docker build -t alertstream .`, then e.g.
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
RUN cargo build --release --locked --bin alertstream

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates libssl3 \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --create-home --home-dir /home/alertstream alertstream
COPY --from=build /src/target/release/alertstream /usr/local/bin/alertstream
USER alertstream
WORKDIR /home/alertstream
ENV ALERTSTREAM_BROKERS=kafka:9092
ENTRYPOINT ["alertstream"]
CMD ["--help"]
