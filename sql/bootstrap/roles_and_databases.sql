-- Roles, databases and privileges of OpenPipe (idempotent; run by psql as a superuser
-- connected to database `postgres`). Used by the local stack (openpipe/stack/postgres.py)
-- and by the TimescaleDB container's init script, with these psql variables:
--   app, app_password, reader, reader_password, app_db, dagster_db
-- and optionally timescaledb (database.timescaledb: auto | on | off; default auto).
--
-- The app role owns both databases and schema public of the app database. The reader role
-- may CONNECT to the app database only, USE schema public and SELECT every table the app
-- role creates there; it cannot create anything (not even temporary tables), its sessions
-- are read-only by default, and nobody else gets CONNECT, TEMP or CREATE.
\set ON_ERROR_STOP on
\if :{?timescaledb}
\else
\set timescaledb auto
\endif

SELECT format('CREATE ROLE %I', :'app')
WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'app') \gexec
SELECT format('CREATE ROLE %I', :'reader')
WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'reader') \gexec
ALTER ROLE :"app" LOGIN PASSWORD :'app_password' NOSUPERUSER NOCREATEDB NOCREATEROLE;
ALTER ROLE :"reader" LOGIN PASSWORD :'reader_password' NOSUPERUSER NOCREATEDB NOCREATEROLE
    CONNECTION LIMIT 32;
ALTER ROLE :"reader" SET default_transaction_read_only = on;

SELECT format('CREATE DATABASE %I OWNER %I', :'app_db', :'app')
WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'app_db') \gexec
SELECT format('CREATE DATABASE %I OWNER %I', :'dagster_db', :'app')
WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'dagster_db') \gexec
REVOKE ALL ON DATABASE :"app_db" FROM PUBLIC;
REVOKE ALL ON DATABASE :"dagster_db" FROM PUBLIC;
GRANT CONNECT ON DATABASE :"app_db" TO :"reader";

\connect :"app_db"
-- The app role is no superuser, so the extension is created here and the migrations then
-- find it installed. `auto` creates it only when the server has it and preloads it (without
-- the preload CREATE EXTENSION fails with "must be preloaded"), `on` always (a missing
-- extension is an error), `off` never.
SELECT 'CREATE EXTENSION IF NOT EXISTS timescaledb'
WHERE :'timescaledb' = 'on'
   OR (:'timescaledb' = 'auto'
       AND EXISTS (SELECT FROM pg_available_extensions WHERE name = 'timescaledb')
       AND 'timescaledb' = ANY (string_to_array(
               replace(current_setting('shared_preload_libraries'), ' ', ''), ','))) \gexec
ALTER SCHEMA public OWNER TO :"app";
REVOKE ALL ON SCHEMA public FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO :"reader";
GRANT SELECT ON ALL TABLES IN SCHEMA public TO :"reader";
ALTER DEFAULT PRIVILEGES FOR ROLE :"app" IN SCHEMA public GRANT SELECT ON TABLES TO :"reader";
-- A role may signal its own backends by default; the reader must not end the viewer's.
REVOKE EXECUTE ON FUNCTION pg_terminate_backend(integer, bigint) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION pg_cancel_backend(integer) FROM PUBLIC;
