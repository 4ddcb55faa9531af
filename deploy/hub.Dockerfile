# Skriptoteket's hub image: JupyterHub + configurable-http-proxy + the Skriptoteket service, for
# docker-compose.yml. Built by `scripts/build-image.sh --hub` from the same context and base as the user image
# (wheelhouse/ (the dependency wheels, requirements-hub.txt), debs/ (iptables and what it needs beyond the base,
# downloaded by the script), node/ (the host's node binary and configurable-http-proxy's node_modules), src/
# (hub_config, migrations, the packages' sources)), so it builds air-gapped too: nothing is downloaded here.
#
# The project runs from its source tree at /srv/skriptoteket (PYTHONPATH), as from a checkout: the launcher
# finds hub_config/, migrations/ and node_modules/ next to the packages. Dependencies come from the wheelhouse.
ARG BASE_IMAGE=python:3.11-slim

FROM ${BASE_IMAGE} AS install
SHELL ["/bin/sh", "-eu", "-c"]
COPY wheelhouse /tmp/wheelhouse
RUN python3 -m venv /opt/skriptoteket \
 && env -u PIP_FIND_LINKS -u PIP_CONSTRAINT PIP_CONFIG_FILE=/dev/null /opt/skriptoteket/bin/pip install --isolated \
      --no-index --find-links /tmp/wheelhouse --no-cache-dir --disable-pip-version-check --quiet --no-compile \
      -r /tmp/wheelhouse/requirements-hub.txt \
 && /opt/skriptoteket/bin/pip uninstall --quiet --yes rfc3987-syntax \
 && /opt/skriptoteket/bin/pip check \
 && /opt/skriptoteket/bin/python -m compileall -q -j0 /opt/skriptoteket/lib >/dev/null

FROM ${BASE_IMAGE}
SHELL ["/bin/sh", "-eu", "-c"]
# iptables: the hub's firewall rules for the users' network (hub_config/docker.py, docs/docker.md "Firewall")
COPY debs /tmp/debs
RUN if ls /tmp/debs/*.deb >/dev/null 2>&1; then dpkg -i /tmp/debs/*.deb >/dev/null; fi \
 && rm -rf /tmp/debs && iptables --version
COPY --from=install /opt/skriptoteket /opt/skriptoteket
COPY node/node /usr/local/bin/node
COPY node/node_modules /srv/skriptoteket/node_modules
COPY src /srv/skriptoteket
ENV PATH=/opt/skriptoteket/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    PYTHONPATH=/srv/skriptoteket \
    PYTHONUNBUFFERED=1 \
    LANG=C.UTF-8 \
    SKRIPTOTEKET_HOME=/var/lib/skriptoteket \
    SKRIPTOTEKET_SPAWNER=docker
RUN node --version >/dev/null && /opt/skriptoteket/bin/python -c "import skriptoteket_ext, jupyterhub_idle_culler" \
 && mkdir -p /var/lib/skriptoteket
WORKDIR /srv/skriptoteket
VOLUME /var/lib/skriptoteket
# runs as root: it needs the Docker socket (and, for the firewall rules of docs/docker.md, NET_ADMIN)
ENTRYPOINT ["tini", "-g", "--"]
CMD ["python", "-m", "skriptoteket_ext.cli", "up"]
