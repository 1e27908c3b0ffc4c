# Multi-stage build: a release binary on a slim Debian base, run as a non-root user.
# Default command: the scheduler service on the job files mounted at /jobs, outputs and the
# run ledger in /var/lib/abreport/out (the working directory's `out`); see docs/deploy.md.
# /jobs is meant to be mounted read-only: job files name their `outbox` and `dir` destinations
# under /var/lib/abreport/out (`abreport validate /jobs` exits 7 when one cannot be written).
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock rustfmt.toml ./
COPY src src
COPY templates templates
RUN cargo build --release --locked && strip target/release/abreport

FROM debian:bookworm-slim
# ca-certificates: TLS to object stores; tzdata: the jobs' time zones for logs and tools
# (abreport itself carries the zone rules it schedules with).
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates tzdata \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /var/lib/abreport --create-home abreport \
    && mkdir -p /jobs /var/lib/abreport/out && chown abreport /var/lib/abreport/out
COPY --from=build /src/target/release/abreport /usr/local/bin/abreport
USER abreport
WORKDIR /var/lib/abreport
VOLUME ["/var/lib/abreport/out"]
EXPOSE 9184
ENTRYPOINT ["abreport"]
CMD ["serve", "--jobs", "/jobs"]
