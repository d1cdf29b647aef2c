"""
The ``twistd s3gateway`` command: its options and the service tree it runs.

``makeService`` returns a L{GatewayService}: on start it opens the metadata store, creates the
admin user on first start, and only then begins listening, so no request ever meets a store that
is not ready. Stopping it stops listening and closes the store.

With ``--workers N`` above 1 the service supervises N worker processes instead of serving
(L{gateway.workers}): it does the first start, binds the endpoint and hands it to the workers.
"""

from __future__ import annotations

import os
import sys
from typing import Any, Dict, Optional

from twisted.application.internet import StreamServerEndpointService
from twisted.application.service import MultiService
from twisted.internet.endpoints import SSL4ServerEndpoint, serverFromString
from twisted.logger import Logger, globalLogPublisher
from twisted.python import usage

from gateway.accessfile import AccessLogFile
from gateway.accesslog import json_observer
from gateway.allocator import keep_freed_memory
from gateway.bootstrap import ensure_admin_user
from gateway.config import (
    ConfigError,
    merge_settings,
    parse_boolean,
    parse_workers,
    read_config_file,
)
from gateway.followedfile import FollowedTextFile
from gateway.heap import freeze_startup_heap
from gateway.http.coalesce import CoalescingEndpoint
from gateway.listening import (
    ListenSpec,
    SharedSocket,
    UnsupportedEndpoint,
    parse_listen,
    split_endpoint,
)
from gateway.backends import BackendRegistry
from gateway.serving import build_site, open_store
from gateway.tls import TLSMaterial, TLSSetupError, options_from, read_material
from gateway.workers import WorkerSupervisor


class Options(usage.Options):
    """
    Command-line options of ``twistd s3gateway``.
    """

    optParameters = [
        ["config", "c", None, "Read settings from this INI file ([gateway] section)."],
        ["data", "d", None, "State directory (default /var/lib/s3gateway)."],
        ["listen", "l", None,
         "Twisted server endpoint to listen on (default tcp:8333:interface=127.0.0.1)."],
        ["region", None, None, "Region named by GetBucketLocation (default us-east-1)."],
        ["create-bucket-root", None, None,
         "Let CreateBucket make local connections under this directory."],
        ["json-log", None, None, "Also write log events as JSON lines to this file."],
        ["access-log", None, None,
         "Write the access log to this file, from every worker directly, instead of to twistd's "
         "log."],
        ["workers", None, None,
         "Worker processes serving the endpoint (default 1; 'auto' = one per core)."],
        ["domains", None, None,
         "Base domains for virtual-host-style addressing (<bucket>.<domain>), comma-separated."],
        ["signature-v2", None, None, "Accept AWS Signature Version 2: true (default) or false."],
    ]

    #: The key and certificates of an ``ssl:`` endpoint, read by L{postOptions}.
    tls: Optional[TLSMaterial] = None

    def postOptions(self) -> None:
        file_settings = {}
        if self["config"]:
            try:
                file_settings = read_config_file(self["config"])
            except ConfigError as error:
                raise usage.UsageError(str(error))
        command_line = {
            "data": self["data"],
            "listen": self["listen"],
            "region": self["region"],
            "create_bucket_root": self["create-bucket-root"],
            "json_log": self["json-log"],
            "access_log": self["access-log"],
            "workers": self["workers"],
            "domains": self["domains"],
            "signature_v2": self["signature-v2"],
        }
        # Strings as read, then checked and converted in place (workers becomes a number).
        self.settings: Dict[str, Any] = dict(merge_settings(file_settings, command_line))
        try:
            self.settings["workers"] = parse_workers(self.settings["workers"])
            self.tls = read_tls(self.settings["listen"], self.settings["workers"])
            parse_boolean("signature_v2", self.settings["signature_v2"])
        except (ConfigError, UnsupportedEndpoint, TLSSetupError) as error:
            raise usage.UsageError(str(error))
        self.settings["data"] = os.path.abspath(self.settings["data"] or ".")
        if self.settings["access_log"]:
            self.settings["access_log"] = os.path.abspath(self.settings["access_log"])
        root = self.settings["create_bucket_root"]
        if root is not None:
            self.settings["create_bucket_root"] = os.path.abspath(root)


def read_tls(listen: Optional[str], workers: int) -> Optional[TLSMaterial]:
    """
    The key and certificates of the endpoint C{listen}, if it is ``ssl:``, read and checked now.

    twistd parses its options before it drops privileges (``--uid``/``--gid``): a key only root
    may read is read here, and kept in memory for the endpoint and every worker (L{gateway.tls}).
    A bad file is one clear message at the start, not a worker crashing and restarting for ever.
    With one process, an ``ssl:`` endpoint that L{parse_listen} does not read (``sslmethod``)
    is left to Twisted, which reads its files when the endpoint opens.

    :raise UnsupportedEndpoint: C{workers} above 1 on an endpoint they cannot share.
    :raise TLSSetupError: a file that cannot be read or used.
    """
    spec: Optional[ListenSpec] = None
    if not listen:
        return None
    if workers > 1:
        spec = parse_listen(listen)
    elif split_endpoint(listen)[0] == "ssl":
        try:
            spec = parse_listen(listen)
        except UnsupportedEndpoint:
            return None
    if spec is None or spec.tls is None:
        return None
    material = read_material(spec.tls)
    options_from(material)
    return material


def exit_with_failure() -> None:
    """
    End the process now with status 1, output flushed (the log file is written as it goes).
    The pidfile, if any, is left; twistd removes a stale one at the next start.
    """
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(1)


class GatewayService(MultiService):
    """
    The running gateway: store first, then the listening endpoint.
    """

    log = Logger()

    def __init__(
        self, settings: dict, reactor: Any, tls: Optional[TLSMaterial] = None
    ) -> None:
        super().__init__()
        self.settings = settings
        self.reactor = reactor
        #: The key and certificates of an ``ssl:`` endpoint, read before privileges were
        #: dropped (L{read_tls}); C{None} for other endpoints.
        self.tls = tls
        self.store: Optional[Any] = None
        self._json_log_file: Optional[Any] = None
        self._backends: Optional[BackendRegistry] = None
        self._json_observer: Optional[Any] = None
        self._access_log: Optional[AccessLogFile] = None

    def startService(self) -> None:
        super().startService()
        if self.settings.get("json_log"):
            # Followed through rotation: the daemon outlives many a logrotate run.
            self._json_log_file = FollowedTextFile(self.settings["json_log"])
            self._json_observer = json_observer(self._json_log_file)
            globalLogPublisher.addObserver(self._json_observer)
        d = self._start()
        if d.called:
            # Failed (or done) before its first wait, which is before twistd runs the reactor:
            # raised here, the failure reaches twistd, which reports it and exits with 1.
            early: list = []
            d.addErrback(early.append)
            if early:
                self.log.failure("s3gateway could not start", early[0])
                early[0].raiseException()
            return
        d.addErrback(self._failed_to_start)

    def _start(self):  # type: ignore[no-untyped-def]
        from twisted.internet.defer import ensureDeferred

        return ensureDeferred(self._open_and_listen())

    async def _open_and_listen(self) -> None:
        data_dir = self.settings["data"]
        if self.settings.get("access_log"):
            # Opened here even for workers, which open their own: a path that cannot be written
            # stops the start with a clear error, not every worker in turn.
            self._access_log = AccessLogFile(self.settings["access_log"], reactor=self.reactor)
        self.store = await open_store(data_dir, self.reactor)
        await ensure_admin_user(self.store, data_dir, os.environ)
        if self.settings.get("workers", 1) > 1:
            self._close_access_log()
            await self._start_workers()
            return
        self._backends = BackendRegistry(str(data_dir), self.reactor)
        site = build_site(
            self.store, self.settings, self.reactor, self._access_log, self._backends
        )
        endpoint = CoalescingEndpoint(self._endpoint(), self.reactor)
        listener = StreamServerEndpointService(endpoint, site)
        listener._raiseSynchronously = True
        listener.setName("listener")
        listener.setServiceParent(self)
        keep_freed_memory()
        freeze_startup_heap()
        self.log.info(
            "s3gateway listening on {listen}, data in {data}",
            listen=self.settings["listen"],
            data=data_dir,
        )

    def _endpoint(self) -> Any:
        """
        The endpoint of a single process: an ``ssl:`` one made with the key and certificates
        read at the start, any other as Twisted makes it of its string.
        """
        listen = self.settings["listen"]
        if self.tls is None:
            return serverFromString(self.reactor, listen)
        spec = parse_listen(listen)
        return SSL4ServerEndpoint(
            self.reactor, spec.port, options_from(self.tls), backlog=spec.backlog,
            interface=spec.interface,
        )

    async def _start_workers(self) -> None:
        """
        Hand serving to worker processes: the supervisor keeps no store open (the first start
        is done), binds the endpoint and starts the workers.
        """
        store, self.store = self.store, None
        assert store is not None  # opened by _open_and_listen before it calls this
        await store.close()
        shared = SharedSocket(parse_listen(self.settings["listen"]))
        supervisor = WorkerSupervisor(
            self.reactor,
            self.settings["workers"],
            self.settings,
            shared.open,
            tls=self.tls,
            release_socket=shared.release,
        )
        supervisor.setName("workers")
        supervisor.setServiceParent(self)
        self.log.info(
            "s3gateway listening on {listen} with {count} workers, data in {data}",
            listen=self.settings["listen"],
            count=self.settings["workers"],
            data=self.settings["data"],
        )

    def _failed_to_start(self, failure: Any) -> None:
        """
        Log why the start failed, stop, and end the process with status 1 once the reactor has
        stopped, so that whatever started it (systemd's C{Restart=on-failure}) sees the
        failure: twistd itself ends with 0 whenever its reactor stops.
        """
        self.log.failure("s3gateway could not start", failure)
        self.reactor.addSystemEventTrigger("after", "shutdown", exit_with_failure)
        # Only a failure after the first wait comes here (startService raises the others), and
        # that wait ends in the running reactor.
        self.reactor.stop()

    async def _close(self) -> None:
        await super().stopService()  # type: ignore[misc]
        if self._backends is not None:
            await self._backends.close()
        if self.store is not None:
            await self.store.close()
        if self._json_observer is not None and self._json_log_file is not None:
            globalLogPublisher.removeObserver(self._json_observer)
            self._json_log_file.close()
        self._close_access_log()

    def _close_access_log(self) -> None:
        if self._access_log is not None:
            self._access_log.close()
            self._access_log = None

    def stopService(self):  # type: ignore[no-untyped-def]
        from twisted.internet.defer import ensureDeferred

        return ensureDeferred(self._close())


def makeService(config: Options, reactor: Any = None) -> GatewayService:
    """
    The gateway's service for twistd.
    """
    if reactor is None:
        from twisted.internet import reactor as default_reactor

        reactor = default_reactor
    return GatewayService(config.settings, reactor, config.tls)
