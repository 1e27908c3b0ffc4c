# Multi-stage build: a release binary on a slim Debian base, run as a non-root user.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock rustfmt.toml ./
COPY src src
COPY templates templates
RUN cargo build --release --locked && strip target/release/abreport

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates tzdata \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /var/lib/abreport --create-home abreport
COPY --from=build /src/target/release/abreport /usr/local/bin/abreport
USER abreport
WORKDIR /var/lib/abreport
ENTRYPOINT ["abreport"]
CMD ["demo", "--out", "/var/lib/abreport/demo"]
