#!/usr/bin/env bash
# First-start initialisation of the TimescaleDB container (runs once, on an empty volume,
# after the image's own scripts have installed the timescaledb extension).
# Runs the same sql/bootstrap/roles_and_databases.sql as the local stack (mounted at
# /openpipe/roles_and_databases.sql).
# Names and passwords come from the OPENPIPE__DATABASE__* variables of docker-compose.yml.
set -euo pipefail

for name in NAME DAGSTER_NAME USER PASSWORD READER_USER READER_PASSWORD; do
    var="OPENPIPE__DATABASE__${name}"
    if [ -z "${!var:-}" ]; then
        echo "100_openpipe.sh: ${var} is not set; set it in the timescaledb service environment" >&2
        exit 1
    fi
done

psql -v ON_ERROR_STOP=1 --no-psqlrc --username "${POSTGRES_USER}" --dbname postgres \
    -v app="${OPENPIPE__DATABASE__USER}" \
    -v app_password="${OPENPIPE__DATABASE__PASSWORD}" \
    -v reader="${OPENPIPE__DATABASE__READER_USER}" \
    -v reader_password="${OPENPIPE__DATABASE__READER_PASSWORD}" \
    -v app_db="${OPENPIPE__DATABASE__NAME}" \
    -v dagster_db="${OPENPIPE__DATABASE__DAGSTER_NAME}" \
    -f /openpipe/roles_and_databases.sql
