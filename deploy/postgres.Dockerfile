# PostgreSQL 15 (Debian bookworm's) for docker-compose.yml where no registry offers postgres:16-bookworm: built on
# the same debootstrap base as the other images (apt over plain HTTP, or DEBIAN_MIRROR's mirror in the base's
# sources.list). Its entrypoint keeps the official image's contract as far as compose uses it (POSTGRES_USER,
# POSTGRES_PASSWORD, /docker-entrypoint-initdb.d/*.sh on the first start). docs/docker.md, "docker-compose.yml".
#
#   docker build -f deploy/postgres.Dockerfile -t skriptoteket-postgres:15 deploy/
#   SKRIPTOTEKET_POSTGRES_IMAGE=skriptoteket-postgres:15 in .env
ARG BASE_IMAGE=skriptoteket-base:bookworm
FROM ${BASE_IMAGE}
RUN apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql-15 >/dev/null \
 && rm -rf /var/lib/apt/lists/* \
 && install -d -o postgres -g postgres -m 0700 /var/lib/postgresql/data \
 && install -d -o postgres -g postgres -m 2775 /var/run/postgresql /docker-entrypoint-initdb.d
COPY postgres-entrypoint.sh /usr/local/bin/docker-entrypoint.sh
ENV PATH=/usr/lib/postgresql/15/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    PGDATA=/var/lib/postgresql/data LANG=C.UTF-8
USER postgres
EXPOSE 5432
ENTRYPOINT ["docker-entrypoint.sh"]
CMD ["postgres"]
