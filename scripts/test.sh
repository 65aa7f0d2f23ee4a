#!/usr/bin/env bash
# Set up (idempotent) and run every test: unit tests and the integration tests,
# which start real services (Apache Kafka, Feast online stores, Redis, Triton).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/pytest -q "$@"
