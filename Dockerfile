# One image for every role: `postrunner migrate|worker|scheduler|web`.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock rustfmt.toml ./
COPY crates crates
COPY src src
RUN cargo build --release --locked --bin postrunner

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates postgresql-client-15 && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/postrunner /usr/local/bin/postrunner
COPY crates/postrunner-schema/sql /usr/share/postrunner/sql
USER nobody
ENTRYPOINT ["postrunner"]
