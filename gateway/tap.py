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
from twisted.internet.endpoints import serverFromString
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
from gateway.heap import freeze_startup_heap
from gateway.http.coalesce import CoalescingEndpoint
from gateway.listening import SharedSocket, UnsupportedEndpoint, parse_listen
from gateway.serving import build_site, open_store
from gateway.tls import TLSSetupError, server_options
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
            if self.settings["workers"] > 1:
                spec = parse_listen(self.settings["listen"])
                if spec.tls is not None:
                    # Loaded once here, so that a bad file is one message, not a crash loop.
                    server_options(spec.tls)
            parse_boolean("signature_v2", self.settings["signature_v2"])
        except (ConfigError, UnsupportedEndpoint, TLSSetupError) as error:
            raise usage.UsageError(str(error))
        self.settings["data"] = os.path.abspath(self.settings["data"] or ".")
        if self.settings["access_log"]:
            self.settings["access_log"] = os.path.abspath(self.settings["access_log"])
        root = self.settings["create_bucket_root"]
        if root is not None:
            self.settings["create_bucket_root"] = os.path.abspath(root)


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

    def __init__(self, settings: dict, reactor: Any) -> None:
        super().__init__()
        self.settings = settings
        self.reactor = reactor
        self.store: Optional[Any] = None
        self._json_log_file: Optional[Any] = None
        self._json_observer: Optional[Any] = None
        self._access_log: Optional[AccessLogFile] = None

    def startService(self) -> None:
        super().startService()
        if self.settings.get("json_log"):
            self._json_log_file = open(self.settings["json_log"], "a", encoding="utf-8")
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
        site = build_site(self.store, self.settings, self.reactor, self._access_log)
        endpoint = CoalescingEndpoint(
            serverFromString(self.reactor, self.settings["listen"]), self.reactor
        )
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
            tls=shared.spec.tls,
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
    return GatewayService(config.settings, reactor)
