# Crest: one node. Build: docker build -t crest .   Run: docker compose up
FROM rust:1.95-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends cmake && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p crest-server

FROM debian:bookworm-slim
RUN useradd --system --home /var/lib/crest crest
COPY --from=build /src/target/release/crest /usr/local/bin/crest
COPY config /etc/crest
USER crest
EXPOSE 5060/udp 5060/tcp 5061/tcp 8080/tcp
ENTRYPOINT ["crest"]
CMD ["run", "--config", "/etc/crest/crest.yaml"]
