"""
The peers the gateway is measured against: ``rclone serve s3``, SeaweedFS, moto and nginx, each a
L{bench.servers.Server} that knows its command line and its version.
"""

from __future__ import annotations

import json
import os
from typing import Dict, List

import attr

from bench.presign import ACCESS_KEY, BUCKET, SECRET_KEY
from bench.servers import LOOPBACK, Server, command_output, free_port


@attr.s(auto_attribs=True)
class Rclone(Server):
    """
    ``rclone serve s3`` on the shared tree: its top-level directories are the buckets.
    """

    binary: str = "rclone"

    def environment(self) -> Dict[str, str]:
        env = dict(os.environ)
        env["RCLONE_CONFIG"] = os.devnull
        return env

    def command(self, workdir: str, root: str, port: int) -> List[str]:
        return [
            self.binary, "serve", "s3", "--auth-key", f"{ACCESS_KEY},{SECRET_KEY}",
            "--addr", f"{LOOPBACK}:{port}", root,
        ]

    def version(self) -> str:
        return command_output([self.binary, "version"]).splitlines()[0]


@attr.s(auto_attribs=True)
class Seaweed(Server):
    """
    SeaweedFS's ``weed mini``: master, volume, filer and S3 gateway in one process, the lightest
    setup that serves S3 with an identity file for the keys.
    """

    binary: str = "weed"
    own_storage: bool = True

    def prepare(self, workdir: str, root: str) -> None:
        identities = {"identities": [{
            "name": "bench",
            "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"],
        }]}
        with open(os.path.join(workdir, "s3.json"), "w") as out:
            json.dump(identities, out)

    def command(self, workdir: str, root: str, port: int) -> List[str]:
        ports = {name: free_port(also_free=10000) for name in ("master", "volume", "filer")}
        return [
            self.binary, "mini", "-dir=" + os.path.join(workdir, "data"),
            f"-ip={LOOPBACK}", f"-ip.bind={LOOPBACK}",
            f"-s3.port={port}", "-s3.config=" + os.path.join(workdir, "s3.json"),
            f"-master.port={ports['master']}", f"-volume.port={ports['volume']}",
            f"-filer.port={ports['filer']}", f"-admin.port={free_port(also_free=10000)}",
            "-webdav=false", "-admin.ui=false", "-s3.port.iceberg=0", "-s3.port.lance=0",
            f"-bucket={BUCKET}",
        ]

    def version(self) -> str:
        for line in command_output([self.binary, "version"]).splitlines():
            if line.startswith("version"):
                return "SeaweedFS " + line.split()[2]
        return "SeaweedFS unknown"


@attr.s(auto_attribs=True)
class Moto(Server):
    """
    moto's standalone server (in-memory S3; accepts any key pair).
    """

    binary: str = "moto_server"
    own_storage: bool = True

    def command(self, workdir: str, root: str, port: int) -> List[str]:
        return [self.binary, "-H", LOOPBACK, "-p", str(port)]

    def version(self) -> str:
        from importlib.metadata import version

        return "moto " + version("moto")


NGINX_CONFIG = """\
{user}daemon off;
master_process on;
worker_processes auto;
pid {workdir}/nginx.pid;
error_log {workdir}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;
    keepalive_requests 10000000;
    client_max_body_size 0;
    client_body_temp_path {workdir}/body;
    proxy_temp_path {workdir}/proxy;
    fastcgi_temp_path {workdir}/fastcgi;
    uwsgi_temp_path {workdir}/uwsgi;
    scgi_temp_path {workdir}/scgi;
    server {{
        listen {host}:{port};
        root {root};
        location / {{
            dav_methods PUT;
            create_full_put_path on;
        }}
    }}
}}
"""


@attr.s(auto_attribs=True)
class Nginx(Server):
    """
    nginx serving the shared tree as static files (the ceiling for reads), and taking plain
    ``PUT`` through its DAV module (a reference for writes). It ignores the signatures.
    """

    binary: str = "nginx"
    s3: bool = False

    def command(self, workdir: str, root: str, port: int) -> List[str]:
        config = os.path.join(workdir, "nginx.conf")
        user = "user root root;\n" if os.geteuid() == 0 else ""
        with open(config, "w") as out:
            out.write(NGINX_CONFIG.format(
                user=user, workdir=workdir, host=LOOPBACK, port=port, root=root
            ))
        return [self.binary, "-c", config, "-p", workdir, "-e", os.path.join(workdir, "error.log")]

    def version(self) -> str:
        return command_output([self.binary, "-v"]).replace("nginx version: ", "")
