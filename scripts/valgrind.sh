#!/usr/bin/env bash
# Runs every addon entry point (test/native/exercise.mjs) under valgrind memcheck; exits non-zero on
# any error in lunlink's code. Run after each change to addon/ (`npm run valgrind`).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v valgrind >/dev/null || { apt-get update -qq && apt-get install -y -qq valgrind >/dev/null; }
npm run --silent build
valgrind --error-exitcode=9 --leak-check=no --suppressions=test/native/node.supp \
  node --expose-gc test/native/exercise.mjs
