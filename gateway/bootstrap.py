"""
The first start: a gateway with an empty store makes a user ``admin`` with an access key, so that
an operator can use it at once, and leaves the key where only the gateway's account can read it.
"""

from __future__ import annotations

import os
import secrets
from typing import Mapping, Optional, Tuple

from twisted.internet.defer import Deferred, ensureDeferred
from twisted.logger import Logger

from gateway.interfaces import IMetadataStore
from gateway.model import AccessKey
from gateway.store.names import validate_access_key_id, validate_secret_key

#: The user made on first start.
ADMIN_USER = "admin"

#: The file, in the data directory, that receives the first access key.
CREDENTIALS_FILENAME = "admin-credentials"

_log = Logger()


def ensure_admin_user(
    store: IMetadataStore, data_dir: str, environ: Mapping[str, str]
) -> "Deferred[Optional[AccessKey]]":
    """
    When the store has no user at all, make ``admin`` with an access key (the pair in
    ``S3GW_ACCESS_KEY`` and ``S3GW_SECRET_KEY`` when both are set, else a generated one) and write
    the pair to L{CREDENTIALS_FILENAME} in C{data_dir}. The log names the key id and the file,
    never the secret.

    Several workers starting at once on a new store are safe: the one that makes the user writes
    the file, the others find the user made and do nothing.

    :return: the new key, or C{None} when the store had users already.
    :raise ValueError: (in the Deferred) when the environment's pair is not a valid one.
    """
    return ensureDeferred(_ensure_admin_user(store, data_dir, environ))


async def _ensure_admin_user(
    store: IMetadataStore, data_dir: str, environ: Mapping[str, str]
) -> Optional[AccessKey]:
    if await store.list_users():
        return None
    access_key_id, secret_access_key = _pair_from(environ)
    try:
        await store.add_user(ADMIN_USER)
    except ValueError:
        return None
    key: AccessKey = await store.create_key(ADMIN_USER, access_key_id, secret_access_key)
    path = write_credentials_file(data_dir, key)
    _log.info(
        "First start: made user {user} with access key {access_key_id}; "
        "the secret is in {path}",
        user=ADMIN_USER,
        access_key_id=key.access_key_id,
        path=path,
    )
    return key


def _pair_from(environ: Mapping[str, str]) -> Tuple[Optional[str], Optional[str]]:
    access_key_id = environ.get("S3GW_ACCESS_KEY") or None
    secret_access_key = environ.get("S3GW_SECRET_KEY") or None
    if access_key_id is None or secret_access_key is None:
        if access_key_id is not None or secret_access_key is not None:
            _log.warn(
                "Only one of S3GW_ACCESS_KEY and S3GW_SECRET_KEY is set; "
                "generating the admin key instead"
            )
        return None, None
    validate_access_key_id(access_key_id)
    validate_secret_key(secret_access_key)
    return access_key_id, secret_access_key


def write_credentials_file(data_dir: str, key: AccessKey) -> str:
    """
    Write C{key} to L{CREDENTIALS_FILENAME} in C{data_dir} (made 0700 if missing), readable by
    the owner only from the first byte on: the file is made with mode 0600 under a temporary name
    and renamed over any stale one.

    :return: the file's path.
    """
    os.makedirs(data_dir, mode=0o700, exist_ok=True)
    path = os.path.join(data_dir, CREDENTIALS_FILENAME)
    temporary = os.path.join(data_dir, f".{CREDENTIALS_FILENAME}.{secrets.token_hex(8)}")
    content = (
        f"# Access key of the s3gateway user {key.user!r}, made on first start.\n"
        "# Keep it private; the key can be revoked with s3gateway-admin key revoke.\n"
        f"[{key.user}]\n"
        f"access_key_id = {key.access_key_id}\n"
        f"secret_access_key = {key.secret_access_key}\n"
    )
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as stream:
            stream.write(content)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise
    return path
