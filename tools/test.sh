#!/usr/bin/env bash
# The README's test command, on a fresh machine of this kind with nothing
# installed by hand: installs the validators the tests use as oracles
# (xmllint, jq, the official FHIR R4 JSON Schema, fhir.resources; idempotent),
# checks the conformance inputs against them, then runs every test of the
# workspace. `.ci/run` calls exactly this. Extra arguments go to `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/.."

bash tools/install-oracles
export FHIR_PYTHON="$PWD/tools/fhir-validate/.venv/bin/python"
export FHIR_STU3_PYTHON="$PWD/tools/fhir-validate/.venv-stu3/bin/python"

echo "== conformance inputs against the canonical schemas and FHIR validators"
python3 conformance/check-inputs.py

echo "== cargo test --workspace"
cargo test --workspace --locked --no-fail-fast "$@"
