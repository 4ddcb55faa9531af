# Minimal hub for tests/e2e/test_singleuser.py: the real hub and proxy, Postgres, local processes, and
# runner_kernel.singleuser as every user's server. All values come from the environment the test sets.
import json
import os

c = get_config()  # noqa: F821

env = os.environ

c.JupyterHub.bind_url = f"http://127.0.0.1:{env['SKT_HUB_PORT']}"
c.JupyterHub.hub_bind_url = f"http://127.0.0.1:{env['SKT_HUB_API_PORT']}"
c.JupyterHub.db_url = env["SKT_HUB_DB_URL"]
c.JupyterHub.cookie_secret_file = os.path.join(env["SKT_HUB_DIR"], "cookie_secret")
c.JupyterHub.cleanup_servers = True

c.ConfigurableHTTPProxy.command = [env["SKT_CHP"]]
c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{env['SKT_PROXY_API_PORT']}"
c.ConfigurableHTTPProxy.pid_file = os.path.join(env["SKT_HUB_DIR"], "proxy.pid")

c.JupyterHub.authenticator_class = "dummy"
c.DummyAuthenticator.password = env["SKT_HUB_PASSWORD"]
c.Authenticator.allow_all = True

c.JupyterHub.spawner_class = "simple"
c.SimpleLocalProcessSpawner.home_dir_template = os.path.join(env["SKT_HUB_DIR"], "home", "{username}")
c.Spawner.cmd = [env["SKT_PYTHON"], "-m", "runner_kernel.singleuser"]
c.Spawner.args = [f"--notebook={env['SKT_NOTEBOOK']}", "--pool-size=1", "--activity-interval=2", "--allow-root", *env.get("SKT_SERVER_EXTRA_ARGS", "").split()]
c.Spawner.start_timeout = 60
c.Spawner.http_timeout = 60
# What a page's kernel may do with the viewer's token: here only identify the user. The real deployment
# adds access to the Skriptoteket service (see docs/voila-server.md).
c.Spawner.oauth_client_allowed_scopes = ["read:servers!user"]


# extra server arguments for single users (e.g. Docker mode's settings for one user), as JSON {"name": [args]}
_per_user_args = json.loads(env.get("SKT_USER_EXTRA_ARGS", "{}"))


def _extra_args(spawner):
    spawner.args = [*spawner.args, *_per_user_args.get(spawner.user.name, [])]


c.Spawner.pre_spawn_hook = _extra_args
