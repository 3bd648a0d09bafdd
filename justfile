# vp's recipes: thin wrappers over cargo, node and the scripts in scripts/.
# Run `bash scripts/bootstrap.sh` once first (scripts/test.sh and scripts/example.sh do it for you).

set shell := ["bash", "-euo", "pipefail", "-c"]

# List the recipes
default:
    @just --list

# Build every crate and test binary of the workspace (every cargo command shares one RocksDB
# compile per profile: see docs/development.md)
build:
    cargo test --workspace --no-run

# Run every test (unit, trycmd, e2e); uses cargo-nextest when it is installed
test:
    if cargo nextest --version >/dev/null 2>&1; then \
        cargo test --workspace --doc; \
        cargo nextest run --workspace --no-fail-fast; \
    else \
        cargo test --workspace --no-fail-fast; \
    fi

# Run only the end-to-end tests (real Node and Vite in the fixtures/ workspaces)
e2e *ARGS:
    cargo test -p vp --test e2e -- {{ARGS}}

# Build vp and run it twice on the bundled example workspace
example:
    bash scripts/example.sh

# Run the peer benchmark and update its section of docs/benchmarks.md (`--with-peers`: also Turborepo, Nx, wireit, vite-plus)
bench *ARGS:
    cargo build --release -p vp
    bash bench/vp-build-overhead.sh
    bash bench/run-peers.sh {{ARGS}}

# Remote-cache hit of the 100-package fixture, vp (release) vs Turborepo on one local server
bench-remote ROUNDS="7":
    bash bench/remote-hit.sh {{ROUNDS}}

# Measure the tracer's overhead on a real `vite build` (prints a Markdown report)
bench-trace ROUNDS="9":
    cargo build --release -p vp
    bash bench/trace-overhead.sh {{ROUNDS}}

# Format the Rust code
fmt:
    cargo fmt --all

# Lint the Rust code (the workspace lints make clippy's `all` group an error)
lint:
    cargo clippy --workspace --all-targets
