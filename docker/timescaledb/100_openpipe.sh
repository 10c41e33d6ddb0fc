#!/usr/bin/env bash
# First-start initialisation of the TimescaleDB container (runs once, on an empty volume,
# after the image's own scripts have installed the timescaledb extension).
# Mirrors openpipe/stack/postgres.py bootstrap() + grant_reader(): the app role owns both
# databases and schema public of the app database; the reader role may CONNECT to the app
# database only, USE schema public and SELECT every table the app role creates there
# (default privileges); nobody else gets CONNECT, TEMP or CREATE.
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
    -v dagster_db="${OPENPIPE__DATABASE__DAGSTER_NAME}" <<'SQL'
CREATE ROLE :"app" LOGIN PASSWORD :'app_password' NOSUPERUSER NOCREATEDB NOCREATEROLE;
CREATE ROLE :"reader" LOGIN PASSWORD :'reader_password' NOSUPERUSER NOCREATEDB NOCREATEROLE;
CREATE DATABASE :"app_db" OWNER :"app";
CREATE DATABASE :"dagster_db" OWNER :"app";
REVOKE ALL ON DATABASE :"app_db" FROM PUBLIC;
REVOKE ALL ON DATABASE :"dagster_db" FROM PUBLIC;
GRANT CONNECT ON DATABASE :"app_db" TO :"reader";

\connect :"app_db"
-- The app role is no superuser, so the extension is created here when the server has it
-- (the image also puts it in template1); the migrations then find it installed.
SELECT 'CREATE EXTENSION IF NOT EXISTS timescaledb'
WHERE EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb') \gexec
ALTER SCHEMA public OWNER TO :"app";
REVOKE ALL ON SCHEMA public FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO :"reader";
GRANT SELECT ON ALL TABLES IN SCHEMA public TO :"reader";
ALTER DEFAULT PRIVILEGES FOR ROLE :"app" IN SCHEMA public GRANT SELECT ON TABLES TO :"reader";
SQL
