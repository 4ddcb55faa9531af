#!/bin/sh
# First start of the postgres container: the hub's and the service's databases, each with its own role.
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" <<SQL
CREATE ROLE jupyterhub LOGIN PASSWORD '${SKRIPTOTEKET_HUB_DB_PASSWORD}';
CREATE DATABASE jupyterhub OWNER jupyterhub;
CREATE ROLE skriptoteket LOGIN PASSWORD '${SKRIPTOTEKET_DB_PASSWORD}';
CREATE DATABASE skriptoteket OWNER skriptoteket;
SQL
