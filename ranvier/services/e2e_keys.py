"""End-to-end encryption keys (spec: client-server-api "End-to-End Encryption": key
distribution, one-time and fallback keys, cross-signing).

Devices publish identity keys, one-time keys and fallback keys; others download identity
keys and claim one key per device to start an Olm session. Users publish cross-signing keys
(master, self-signing, user-signing) and signatures: of their own devices by their
self-signing key, of their master key by a device, of other users' master keys by their
user-signing key. Every signature is verified before it is kept.

Other servers' users' keys come through `RemoteKeys`, each server asked at most for the
client's timeout; servers that give no answer in time are reported in `failures`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from ranvier.clock import now_ms
from ranvier.errors import MatrixError
from ranvier.protocol.e2e_keys import (
    MASTER,
    SELF_SIGNING,
    USER_SIGNING,
    CrossSigningKey,
    KeyFormatError,
    check_cross_signing_key,
    cross_signing_public_key,
    device_verify_key,
    same_signed_content,
    verify_signature,
)
from ranvier.protocol.signing_keys import ED25519
from ranvier.services.device_lists import DeviceListService
from ranvier.storage.device_lists import USER_KEYS
from ranvier.storage.e2e_keys import (
    DeviceGoneError,
    E2eKeyStore,
    KeyConflictError,
    KeyIdInUseError,
    Signature,
)

JsonDict = dict[str, Any]

# spec: the client's `timeout` of /keys/query and /keys/claim when it gives none
DEFAULT_TIMEOUT_SECONDS = 10.0


class RemoteKeys(Protocol):
    """Other servers' users' keys (services/federation/e2e_keys.py): each answer has the
    sections found and `failures`, server name -> why it gave none in time."""

    async def query(
        self, user_to_device_ids: Mapping[str, list[str]], timeout_seconds: float
    ) -> JsonDict: ...

    async def claim(
        self, wanted: Mapping[str, Mapping[str, str]], timeout_seconds: float
    ) -> JsonDict: ...


def invalid(error: str) -> MatrixError:
    return MatrixError(400, "M_INVALID_PARAM", error)


def _domain(user_id: str) -> str:
    return user_id.partition(":")[2]


def _failure(status: int, errcode: str, error: str) -> JsonDict:
    # Synapse's shape (status, errcode, message) with the spec's `error` beside it
    return {"status": status, "errcode": errcode, "error": error, "message": error}


@dataclass(frozen=True)
class KeyUpload:
    """The keys of a /keys/upload, their shapes checked (protocol/e2e_keys.py)."""

    device_keys: JsonDict | None
    one_time_keys: dict[tuple[str, str], Any]
    fallback_keys: dict[str, tuple[str, Any]]


class E2eKeyService:
    def __init__(
        self,
        store: E2eKeyStore,
        device_lists: DeviceListService,
        remote: RemoteKeys,
        server_name: str,
    ) -> None:
        self._store = store
        self._device_lists = device_lists
        self._remote = remote
        self._server_name = server_name

    def _is_local(self, user_id: str) -> bool:
        return _domain(user_id) == self._server_name

    # -- device keys ------------------------------------------------------------------------

    async def upload(self, user_id: str, device_id: str | None, upload: KeyUpload) -> JsonDict:
        """POST /keys/upload"""
        if device_id is None:
            raise invalid("This access token has no device to upload keys for")
        keys = upload.device_keys
        if keys is not None and (keys["user_id"] != user_id or keys["device_id"] != device_id):
            raise invalid(
                f"device_keys are for {keys['user_id']} {keys['device_id']}, "
                f"but this access token is {user_id} {device_id}"
            )
        try:
            result = await self._store.upload(
                user_id, device_id, keys, upload.one_time_keys, upload.fallback_keys, now_ms()
            )
        except KeyConflictError as e:
            raise invalid(str(e)) from None
        except DeviceGoneError:
            raise MatrixError(401, "M_UNKNOWN_TOKEN", "This device has been logged out") from None
        if result.position is not None:
            await self._device_lists.changed(user_id, result.position)
        return {"one_time_key_counts": result.one_time_key_counts}

    async def query(
        self,
        requester: str,
        user_to_device_ids: Mapping[str, list[str]],
        timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS,
    ) -> JsonDict:
        """POST /keys/query: local users' keys from here, other servers' users' from the
        remote device lists (cached or asked for, each server within the timeout)."""
        local: dict[str, list[str] | None] = {}
        remote: dict[str, list[str]] = {}
        for user_id, device_ids in user_to_device_ids.items():
            if self._is_local(user_id):
                local[user_id] = device_ids or None
            else:
                remote[user_id] = device_ids
        result = await self.local_keys(requester, local, include_display_names=True)
        result["failures"] = {}
        if remote:
            found = await self._remote.query(remote, timeout_seconds)
            for section in ("device_keys", "master_keys", "self_signing_keys"):
                result[section].update(found.get(section, {}))
            result["failures"] = found.get("failures", {})
            await self._add_own_signatures(requester, result["master_keys"], list(remote))
        return result

    async def _add_own_signatures(
        self, requester: str, master_keys: dict[str, JsonDict], user_ids: list[str]
    ) -> None:
        """The requester's signatures of other servers' users' master keys (made with
        their user-signing key, kept here), added to those keys as their servers gave them."""
        for signature in await self._store.get_signatures(user_ids, visible_to=requester):
            master = master_keys.get(signature.target_user_id)
            if (
                signature.user_id != requester
                or master is None
                or cross_signing_public_key(master) != signature.target_key
            ):
                continue
            signed = dict(master)
            by_user = {k: dict(v) for k, v in signed.get("signatures", {}).items()}
            by_user.setdefault(requester, {})[signature.key_id] = signature.signature
            signed["signatures"] = by_user
            master_keys[signature.target_user_id] = signed

    async def local_keys(
        self,
        visible_to: str,
        user_to_device_ids: Mapping[str, list[str] | None],
        *,
        include_display_names: bool,
    ) -> JsonDict:
        """The keys of local users' devices (None: all of them) and their cross-signing
        keys, with the signatures made by the users themselves or by `visible_to` (whose
        own user-signing key is included)."""
        local = dict(user_to_device_ids)
        found = await self._store.get_device_keys(local)
        cross_signing = await self._store.get_cross_signing_keys(local)
        signatures = await self._store.get_signatures(local, visible_to=visible_to)
        device_keys: dict[str, dict[str, JsonDict]] = {user_id: {} for user_id in local}
        for user_id, by_device in found.items():
            for device_id, stored in by_device.items():
                keys = dict(stored.keys)
                unsigned = keys.get("unsigned")
                keys["unsigned"] = dict(unsigned) if isinstance(unsigned, dict) else {}
                if include_display_names and stored.display_name is not None:
                    keys["unsigned"]["device_display_name"] = stored.display_name
                device_keys[user_id][device_id] = keys
        master_keys: dict[str, JsonDict] = {}
        self_signing_keys: dict[str, JsonDict] = {}
        user_signing_keys: dict[str, JsonDict] = {}
        for user_id, by_usage in cross_signing.items():
            if MASTER in by_usage:
                master_keys[user_id] = dict(by_usage[MASTER])
            if SELF_SIGNING in by_usage:
                self_signing_keys[user_id] = by_usage[SELF_SIGNING]
            if USER_SIGNING in by_usage and user_id == visible_to:
                user_signing_keys[user_id] = by_usage[USER_SIGNING]
        for signature in signatures:
            target: JsonDict | None = device_keys.get(signature.target_user_id, {}).get(
                signature.target_key
            )
            master = master_keys.get(signature.target_user_id)
            if (
                target is None
                and master is not None
                and cross_signing_public_key(master) == signature.target_key
            ):
                target = master
            if target is None:
                continue
            by_user = {k: dict(v) for k, v in target.get("signatures", {}).items()}
            by_user.setdefault(signature.user_id, {})[signature.key_id] = signature.signature
            target["signatures"] = by_user
        return {
            "device_keys": device_keys,
            "master_keys": master_keys,
            "self_signing_keys": self_signing_keys,
            "user_signing_keys": user_signing_keys,
        }

    async def claim(
        self,
        wanted: Mapping[str, Mapping[str, str]],
        timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS,
    ) -> JsonDict:
        """POST /keys/claim: other servers' users' keys are claimed from their servers."""
        local: dict[str, Mapping[str, str]] = {}
        remote: dict[str, Mapping[str, str]] = {}
        for user_id, by_device in wanted.items():
            (local if self._is_local(user_id) else remote)[user_id] = by_device
        one_time_keys = await self.claim_local(local)
        failures: JsonDict = {}
        if remote:
            found = await self._remote.claim(remote, timeout_seconds)
            one_time_keys.update(found.get("one_time_keys", {}))
            failures = found.get("failures", {})
        return {"one_time_keys": one_time_keys, "failures": failures}

    async def claim_local(
        self, wanted: Mapping[str, Mapping[str, str]]
    ) -> dict[str, dict[str, JsonDict]]:
        """One key per local device asked for: user_id -> device_id -> key ID -> key."""
        result = await self._store.claim(
            [
                (user_id, device_id, algorithm)
                for user_id, by_device in wanted.items()
                for device_id, algorithm in by_device.items()
            ]
        )
        return result.keys

    # -- cross-signing ----------------------------------------------------------------------

    async def check_cross_signing_upload(
        self, user_id: str, uploaded: Mapping[str, JsonDict]
    ) -> tuple[dict[str, CrossSigningKey], bool]:
        """The keys of a /keys/device_signing/upload (usage -> key object), checked, and
        whether the upload needs user-interactive auth: it does unless the user has no
        master key yet, or every key given is the one already stored (a retried upload)."""
        keys: dict[str, CrossSigningKey] = {}
        try:
            for usage, key in uploaded.items():
                keys[usage] = check_cross_signing_key(key, user_id, usage)
        except KeyFormatError as e:
            raise invalid(str(e)) from None
        stored = (await self._store.get_cross_signing_keys([user_id])).get(user_id, {})
        if MASTER not in stored:
            return keys, False
        unchanged = all(
            usage in stored and same_signed_content(stored[usage], key.json)
            for usage, key in keys.items()
        )
        return keys, not unchanged

    async def upload_cross_signing_keys(
        self, user_id: str, keys: Mapping[str, CrossSigningKey]
    ) -> None:
        """POST /keys/device_signing/upload, once authorised"""
        if not keys:
            return
        stored = (await self._store.get_cross_signing_keys([user_id])).get(user_id, {})
        master = keys.get(MASTER)
        if master is None and MASTER in stored:
            master = check_cross_signing_key(stored[MASTER], user_id, MASTER)
        if master is None:
            raise MatrixError(400, "M_MISSING_PARAM", "No master key available")
        for usage in (SELF_SIGNING, USER_SIGNING):
            key = keys.get(usage)
            if key is not None and not verify_signature(
                key.json, user_id, master.key_id, master.verify_key
            ):
                raise MatrixError(
                    400,
                    "M_INVALID_SIGNATURE",
                    f"The {usage} key is not signed by the master key",
                )
        changes = {
            usage: (key.public_key, key.json)
            for usage, key in keys.items()
            if usage not in stored
            or not same_signed_content(stored[usage], key.json)
            or stored[usage].get("signatures") != key.json.get("signatures")
        }
        if not changes:
            return
        try:
            position = await self._store.set_cross_signing_keys(user_id, changes, now_ms())
        except KeyIdInUseError:
            raise MatrixError(403, "M_FORBIDDEN", "Key ID in use") from None
        if set(changes) == {USER_SIGNING}:
            # private to the user (only they can query it): room-mates are not told
            await self._device_lists.changed_for(user_id, position)
        else:
            await self._device_lists.changed(user_id, position)

    async def upload_signatures(
        self, requester: str, signed_keys: Mapping[str, Mapping[str, Any]]
    ) -> JsonDict:
        """POST /keys/signatures/upload: user ID -> key ID -> the key with new signatures.
        Each key is judged on its own: a bad one is a failure, the others are kept."""
        failures: dict[str, dict[str, JsonDict]] = {}
        accepted: list[Signature] = []
        changed_devices: list[str] = []
        # other users whose master key the requester signed: only the requester is told
        signed_users: list[str] = []
        own = (await self._store.get_cross_signing_keys([requester])).get(requester, {})
        for user_id, by_key in signed_keys.items():
            for key_id, signed in by_key.items():
                try:
                    if not isinstance(signed, dict):
                        raise _SignatureFailure(
                            400, "M_BAD_JSON", "The signed key must be an object"
                        )
                    if user_id == requester:
                        signatures, device = await self._own_signatures(
                            requester, own, key_id, signed
                        )
                        accepted.extend(signatures)
                        changed_devices.append(device)
                    else:
                        accepted.append(
                            await self._other_user_signature(
                                requester, own, user_id, key_id, signed
                            )
                        )
                        signed_users.append(user_id)
                except _SignatureFailure as failure:
                    failures.setdefault(user_id, {})[key_id] = _failure(
                        failure.status, failure.errcode, failure.error
                    )
        if accepted:
            position = await self._store.add_signatures(
                requester, accepted, changed_devices, signed_users
            )
            if changed_devices:
                await self._device_lists.changed(requester, position)
            else:
                await self._device_lists.changed_for(requester, position)
        return {"failures": failures}

    async def _own_signatures(
        self, user_id: str, own: Mapping[str, JsonDict], key_id: str, signed: JsonDict
    ) -> tuple[list[Signature], str]:
        """Signatures of one of the user's devices by their self-signing key, or of their
        master key by their devices. Returns them with the changed device."""
        master = own.get(MASTER)
        if master is not None and cross_signing_public_key(master) == key_id:
            _require_same_key(master, signed)
            by_user = signed.get("signatures", {}).get(user_id, {})
            devices = (await self._store.get_device_keys({user_id: None})).get(user_id, {})
            found = []
            for signer_key_id, signature in by_user.items():
                algorithm, _, device_id = signer_key_id.partition(":")
                device = devices.get(device_id)
                if algorithm != ED25519 or device is None:
                    # the master key's own signature, or a key we cannot check
                    continue
                verify_key = device_verify_key(device.keys, device_id)
                if verify_key is None or not verify_signature(
                    signed, user_id, signer_key_id, verify_key
                ):
                    raise _SignatureFailure(400, "M_INVALID_SIGNATURE", "Invalid signature")
                found.append(Signature(user_id, signer_key_id, user_id, key_id, signature))
            if not found:
                raise _SignatureFailure(
                    400, "M_INVALID_SIGNATURE", "Missing signature by one of the user's devices"
                )
            return found, USER_KEYS
        self_signing = own.get(SELF_SIGNING)
        device = (
            (await self._store.get_device_keys({user_id: [key_id]})).get(user_id, {}).get(key_id)
        )
        if device is None:
            raise _SignatureFailure(404, "M_NOT_FOUND", "Unknown device or key")
        if self_signing is None:
            raise _SignatureFailure(404, "M_NOT_FOUND", "No self-signing key found")
        _require_same_key(device.keys, signed)
        ssk = check_cross_signing_key(self_signing, user_id, SELF_SIGNING)
        if not verify_signature(signed, user_id, ssk.key_id, ssk.verify_key):
            raise _SignatureFailure(400, "M_INVALID_SIGNATURE", "Invalid signature")
        signature = signed["signatures"][user_id][ssk.key_id]
        return [Signature(user_id, ssk.key_id, user_id, key_id, signature)], key_id

    async def _other_user_signature(
        self,
        requester: str,
        own: Mapping[str, JsonDict],
        user_id: str,
        key_id: str,
        signed: JsonDict,
    ) -> Signature:
        """A signature of another user's master key by the requester's user-signing key."""
        user_signing = own.get(USER_SIGNING)
        if user_signing is None:
            raise _SignatureFailure(404, "M_NOT_FOUND", "No user-signing key found")
        master = await self._master_key_of(user_id)
        if master is None or cross_signing_public_key(master) != key_id:
            raise _SignatureFailure(404, "M_NOT_FOUND", "Unknown master key")
        _require_same_key(master, signed)
        usk = check_cross_signing_key(user_signing, requester, USER_SIGNING)
        if not verify_signature(signed, requester, usk.key_id, usk.verify_key):
            raise _SignatureFailure(400, "M_INVALID_SIGNATURE", "Invalid signature")
        signature = signed["signatures"][requester][usk.key_id]
        return Signature(requester, usk.key_id, user_id, key_id, signature)

    async def _master_key_of(self, user_id: str) -> JsonDict | None:
        if self._is_local(user_id):
            return (
                (await self._store.get_cross_signing_keys([user_id])).get(user_id, {}).get(MASTER)
            )
        # another server's user: the key their server gives (kept only here, seen only by
        # the signer, as their server has no way to hear of it)
        found = await self._remote.query({user_id: []}, DEFAULT_TIMEOUT_SECONDS)
        if _domain(user_id) in found.get("failures", {}):
            raise _SignatureFailure(
                503, "M_UNKNOWN", f"{_domain(user_id)} did not give {user_id}'s master key"
            )
        master = found.get("master_keys", {}).get(user_id)
        return master if isinstance(master, dict) else None


class _SignatureFailure(Exception):
    def __init__(self, status: int, errcode: str, error: str) -> None:
        super().__init__(error)
        self.status = status
        self.errcode = errcode
        self.error = error


def _require_same_key(stored: Mapping[str, Any], signed: Mapping[str, Any]) -> None:
    # spec: the signed object must be the key as uploaded, but for its signatures
    if not same_signed_content(stored, signed):
        raise _SignatureFailure(400, "M_INVALID_PARAM", "The signed object does not match the key")
