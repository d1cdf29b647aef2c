"""
What every serving process builds: the metadata store and the HTTP site on top of it.

The single-process gateway (L{gateway.tap.GatewayService}) and each worker process
(L{gateway.worker}) call these same two functions, so a worker serves exactly the site that one
process would.
"""

from __future__ import annotations

import os
from typing import Any, Callable, Mapping, Optional, cast

from twisted.internet.defer import Deferred

from gateway.accesslog import AccessRecord, log_access
from gateway.backends import BackendRegistry
from gateway.http.streaming import StreamingSite
from gateway.interfaces import IMetadataStore
from gateway.s3.app import S3Gateway
from gateway.config import parse_boolean, parse_domains
from gateway.s3.buckets import BucketPolicy
from gateway.s3.cors import CorsPolicy
from gateway.store.cache import CachingStore
from gateway.store.sqlite import DATABASE_FILENAME, SQLiteStore, open_sqlite_store


def open_store(data_dir: str, reactor: Any) -> "Deferred[SQLiteStore]":
    """
    Open the metadata store of the data directory C{data_dir}, making the directory (mode 0700)
    if it is missing.
    """
    os.makedirs(data_dir, mode=0o700, exist_ok=True)
    return open_sqlite_store(os.path.join(data_dir, DATABASE_FILENAME), reactor)


def build_site(
    store: Any, settings: Mapping[str, Optional[object]], reactor: Any,
    access_log: Optional[Callable[[AccessRecord], None]], backends: BackendRegistry,
) -> StreamingSite:
    """
    The gateway's HTTP site over C{store}, configured by the settings C{data}, C{region},
    C{create_bucket_root}, C{domains}, C{signature_v2} and C{cors} (see
    L{gateway.config.DEFAULTS}).

    :param access_log: called with each request's L{gateway.accesslog.AccessRecord};
        C{None} for an access-log event into twistd's log.
    :param backends: the registry of the buckets' backends, which the caller closes when it
        stops (L{BackendRegistry.close}).
    """
    gateway = S3Gateway(
        # A proxy: every IMetadataStore method, two of them answered from its cache.
        cast(IMetadataStore, CachingStore(store, reactor)),
        backends,
        BucketPolicy(
            settings["region"], settings["create_bucket_root"]  # type: ignore[arg-type]
        ),
        reactor,
        access_log=access_log or log_access,
        base_domains=parse_domains(settings.get("domains")),  # type: ignore[arg-type]
        cors=CorsPolicy(settings.get("cors") or {}),  # type: ignore[arg-type]
        allow_signature_v2=parse_boolean(
            "signature_v2", settings.get("signature_v2") or "true"  # type: ignore[arg-type]
        ),
    )
    site = StreamingSite(gateway.resource())
    site.displayTracebacks = False
    site.noisy = False
    return site
