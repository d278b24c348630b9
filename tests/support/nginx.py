"""nginx (Debian's `nginx-light`) in front of web instances, with `deploy/nginx.conf` as is.

The site configuration users copy is rendered for the test, never forked: the upstream's
`server` lines get the instances' ports (their parameters kept), `listen 80` a free
loopback port, the `/protected/` alias the test's files folder. Each rewrite must match
exactly once, so a change to `deploy/nginx.conf` that these no longer fit fails loudly.
nginx then runs from a folder of its own (`-p`, `-c`): pid, logs and temporary files there.
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from backend.config import PROJECT_ROOT
from tests.support.processes import Process, free_port, wait_until_up

DEPLOY_CONF = PROJECT_ROOT / "deploy" / "nginx.conf"
UPSTREAM_SERVER = re.compile(r"^(\s*)server 127\.0\.0\.1:\d+ ([^;]*);\n", re.MULTILINE)
ACCESS_FORMAT = "$status $request_method $uri upstream=$upstream_addr ($upstream_status)"


def nginx_binary() -> str | None:
    """Debian's nginx (in /usr/sbin, often not on a user's PATH), else one on PATH."""
    return shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin")


def _once(pattern: str, replacement: str, text: str) -> str:
    """Replace the one line `pattern` matches; fail if it matches none or several."""
    result, count = re.subn(pattern, replacement, text, flags=re.MULTILINE)
    assert count == 1, f"deploy/nginx.conf changed: {pattern!r} matched {count} times"
    return result


def render_site(instance_ports: list[int], listen_port: int, files_dir: Path) -> str:
    """`deploy/nginx.conf` for instances on `instance_ports`, listening on `listen_port`."""
    text = DEPLOY_CONF.read_text()
    servers = UPSTREAM_SERVER.findall(text)
    assert len(servers) == 2, f"deploy/nginx.conf changed: {len(servers)} upstream servers"
    indent, parameters = servers[0]
    lines = "".join(f"{indent}server 127.0.0.1:{port} {parameters};\n" for port in instance_ports)
    text = UPSTREAM_SERVER.sub("", text, count=1)
    text = UPSTREAM_SERVER.sub(lines.replace("\\", "\\\\"), text, count=1)
    text = _once(r"^(\s*)listen 80;", rf"\g<1>listen 127.0.0.1:{listen_port};", text)
    return _once(r"^(\s*)alias /srv/flet-backend/var/files/;", rf"\g<1>alias {files_dir}/;", text)


def main_config(prefix: Path, site: Path) -> str:
    """An nginx.conf whose every path is under `prefix`, including the `site`."""
    temp = {name: prefix / "temp" / name for name in ("client_body", "proxy", "fastcgi",
                                                       "uwsgi", "scgi")}  # fmt: skip
    for folder in temp.values():
        folder.mkdir(parents=True, exist_ok=True)
    # As root, nginx's workers would run as `nobody` and could not use the temp folders.
    user = f"user {pwd.getpwuid(os.geteuid()).pw_name};\n" if os.geteuid() == 0 else ""
    return (
        f"{user}worker_processes 1;\npid {prefix}/nginx.pid;\n"
        f"error_log {prefix}/error.log notice;\nevents {{ worker_connections 1024; }}\n"
        f"http {{\n    log_format upstreams '{ACCESS_FORMAT}';\n"
        f"    access_log {prefix}/access.log upstreams;\n"
        + "".join(f"    {name}_temp_path {path};\n" for name, path in temp.items())
        + f"    include {site};\n}}\n"
    )


@dataclass
class Nginx:
    """A running nginx in front of the instances."""

    process: Process
    prefix: Path
    base: str  # http://127.0.0.1:PORT

    def access_log(self) -> list[str]:
        """The access log's lines so far (`ACCESS_FORMAT`)."""
        path = self.prefix / "access.log"
        return path.read_text().splitlines() if path.exists() else []

    def error_log(self) -> str:
        """The error log so far."""
        path = self.prefix / "error.log"
        return path.read_text() if path.exists() else ""


def start_nginx(binary: str, prefix: Path, instance_ports: list[int], files_dir: Path) -> Nginx:
    """Render the configuration, check it (`nginx -t`) and start nginx in the foreground."""
    prefix.mkdir(parents=True, exist_ok=True)
    port = free_port()
    site = prefix / "flet-backend.conf"
    site.write_text(render_site(instance_ports, port, files_dir))
    config = prefix / "nginx.conf"
    config.write_text(main_config(prefix, site))
    command = [binary, "-p", str(prefix), "-c", str(config)]
    checked = subprocess.run(
        [*command, "-t"], capture_output=True, text=True, timeout=30, check=False
    )
    assert checked.returncode == 0, checked.stderr
    process = Process([*command, "-g", "daemon off;"], dict(os.environ), background=True)
    base = f"http://127.0.0.1:{port}"
    wait_until_up(f"{base}/healthz")
    return Nginx(process, prefix, base)
