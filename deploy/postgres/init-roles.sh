#!/usr/bin/env bash
# Run once by the postgres image (/docker-entrypoint-initdb.d) when it creates its data
# directory, as the superuser: one login per postrunner role, none of them a superuser.
#
#   postrunner_owner      owns the database and the postrunner schema; runs `migrate`
#   postrunner_worker     `postrunner worker`, a member of postrunner_service
#   postrunner_scheduler  `postrunner scheduler`, a member of postrunner_service
#   postrunner_web        `postrunner web`, a member of postrunner_service
#   postrunner_backup     the workers' backups: reads everything (pg_read_all_data,
#                         BYPASSRLS: row-level security must not hide rows) for
#                         pg_dump, and may create the scratch database of the restore check
#
# plus the three NOLOGIN group roles `migrate` grants to (sql/definitions/010_roles.sql creates them
# when missing, but the owner has no CREATEROLE). Passwords come from the environment
# (docker-compose.yml); psql quotes them (:'name'), so any character is safe.
set -euo pipefail

psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
     -v owner_password="$POSTRUNNER_OWNER_PASSWORD" \
     -v worker_password="$POSTRUNNER_WORKER_PASSWORD" \
     -v scheduler_password="$POSTRUNNER_SCHEDULER_PASSWORD" \
     -v web_password="$POSTRUNNER_WEB_PASSWORD" \
     -v backup_password="$POSTRUNNER_BACKUP_PASSWORD" <<'SQL'
CREATE ROLE postrunner_app NOLOGIN;
CREATE ROLE postrunner_reader NOLOGIN;
CREATE ROLE postrunner_service NOLOGIN;
CREATE ROLE postrunner_owner LOGIN PASSWORD :'owner_password';
CREATE ROLE postrunner_worker LOGIN PASSWORD :'worker_password' IN ROLE postrunner_service;
CREATE ROLE postrunner_scheduler LOGIN PASSWORD :'scheduler_password' IN ROLE postrunner_service;
CREATE ROLE postrunner_web LOGIN PASSWORD :'web_password' IN ROLE postrunner_service;
CREATE ROLE postrunner_backup LOGIN CREATEDB BYPASSRLS PASSWORD :'backup_password' IN ROLE pg_read_all_data;
CREATE DATABASE postrunner OWNER postrunner_owner;
SQL
