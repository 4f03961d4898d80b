"""Signed checkpoints: anchors that a chain of hashes alone cannot give.

A hash chain shows that no event was changed *in place*. It cannot show that the last
events were cut off together with the stream head, nor that a writer with access to
the database rewrote one event and re-sealed every later hash: the rewritten chain is
as consistent as the original. What detects both is a statement kept *outside* the
database: "on this date stream R-1 was at version 412 with head hash 9f2c…", signed
with a key the database writer does not need to hold. That is a checkpoint
(RFC 6962's signed tree heads play the same part for certificate logs).

:func:`make_checkpoints` reads each stream's version and head, checks its chain, and
signs one :class:`Checkpoint` per stream. The :class:`Checkpoints` file is small JSON
(:meth:`Checkpoints.to_json`) that an office hands to the office one level up, or
keeps on write-once media; :meth:`Checkpoints.from_json` reads it back and refuses a
file whose signatures do not verify with the given key. Then
``log.verify(checkpoints=...)`` (and :meth:`Engine.verify
<xuncha_flow.Engine.verify>`) requires every stream to still reach each recorded head:
a truncated or re-sealed stream is reported, naming the first such stream.

Keys. :class:`HmacKey` signs and verifies with one shared secret (HMAC-SHA256 or
HMAC-SM3): the office that verifies holds the secret, the database writer need not.
:class:`Ed25519Signer` signs with a private key and :class:`Ed25519Verifier` checks
with the public key alone (the ``crypto`` extra, on ``cryptography``), so the office
one level up can verify without being able to sign. A host that must use SM2 (or an
HSM) implements :class:`Signer` and :class:`Verifier` itself: two small methods.
"""

from __future__ import annotations

import base64
import hmac
import json
import secrets
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import attrs
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from ._clock import require_aware
from ._errors import CheckpointInvalid, InvalidArgument, LogCorrupted
from ._events import HASH_ALGORITHMS, canonical_json, check_algorithm, verify_chain

if TYPE_CHECKING:
    from ._events import Event
    from ._log import EventLog

__all__ = [
    "FORMAT",
    "Checkpoint",
    "Checkpoints",
    "Ed25519Signer",
    "Ed25519Verifier",
    "HmacKey",
    "Signer",
    "Verifier",
    "make_checkpoints",
]

FORMAT = "xuncha_flow.checkpoints/1"
MIN_SECRET = 32
"""The shortest HMAC secret accepted, in bytes (256 bits)."""


class Verifier(ABC):
    """Checks signatures made under one key. ``key_id`` names the key (it is written
    in every checkpoint); ``algorithm`` names the scheme (``"hmac-sha256"``,
    ``"hmac-sm3"``, ``"ed25519"``, or a host's own, e.g. ``"sm2"``)."""

    key_id: str
    algorithm: str

    @abstractmethod
    def verify(self, message: bytes, signature: bytes) -> bool:
        """True when ``signature`` is this key's signature of ``message``."""


class Signer(ABC):
    """Signs with one key."""

    key_id: str
    algorithm: str

    @abstractmethod
    def sign(self, message: bytes) -> bytes:
        """This key's signature of ``message``."""


def _key_id(key_id: str) -> str:
    if not isinstance(key_id, str) or not key_id.strip() or len(key_id) > 200:
        raise InvalidArgument("a key id is a non-blank name of at most 200 characters")
    return key_id.strip()


class HmacKey(Signer, Verifier):
    """A shared secret (at least 32 bytes) that signs and verifies with HMAC under
    ``hash_algorithm`` (``"sha256"`` or ``"sm3"``). Also authenticates snapshots
    (:class:`~xuncha_flow.Engine` ``snapshot_key``). Its ``repr`` never shows the
    secret."""

    def __init__(self, secret: bytes, *, key_id: str, hash_algorithm: str = "sha256") -> None:
        if not isinstance(secret, bytes) or len(secret) < MIN_SECRET:
            raise InvalidArgument(f"an HMAC secret is at least {MIN_SECRET} random bytes")
        self._secret = secret
        self.key_id = _key_id(key_id)
        self.hash_algorithm = check_algorithm(hash_algorithm)
        self.algorithm = f"hmac-{self.hash_algorithm}"

    @classmethod
    def generate(cls, key_id: str, *, hash_algorithm: str = "sha256") -> HmacKey:
        """A new key with a random 32-byte secret (:func:`secrets.token_bytes`)."""
        return cls(secrets.token_bytes(MIN_SECRET), key_id=key_id, hash_algorithm=hash_algorithm)

    def sign(self, message: bytes) -> bytes:
        return hmac.new(self._secret, message, self.hash_algorithm).digest()

    def verify(self, message: bytes, signature: bytes) -> bool:
        return hmac.compare_digest(self.sign(message), signature)

    def mac(self, message: bytes) -> str:
        """The HMAC of ``message`` as hex (64 digits)."""
        return self.sign(message).hex()

    def __repr__(self) -> str:
        return f"HmacKey(key_id={self.key_id!r}, algorithm={self.algorithm!r})"


def _ed25519() -> Any:
    try:
        from cryptography.hazmat.primitives.asymmetric import ed25519
    except ImportError as exc:  # pragma: no cover - depends on the installed extras
        raise InvalidArgument(
            "Ed25519 signatures need the 'crypto' extra: pip install 'xuncha_flow[crypto]'"
        ) from exc
    return ed25519


class Ed25519Verifier(Verifier):
    """Checks Ed25519 signatures with a public key (32 raw bytes)."""

    algorithm = "ed25519"

    def __init__(self, public_key: bytes, *, key_id: str) -> None:
        self.key_id = _key_id(key_id)
        try:
            self._key = _ed25519().Ed25519PublicKey.from_public_bytes(public_key)
        except ValueError as exc:
            raise InvalidArgument(f"not an Ed25519 public key: {exc}") from exc

    def verify(self, message: bytes, signature: bytes) -> bool:
        from cryptography.exceptions import InvalidSignature

        try:
            self._key.verify(signature, message)
        except InvalidSignature:
            return False
        return True


class Ed25519Signer(Signer):
    """Signs with an Ed25519 private key (32 raw bytes); :meth:`verifier` is the
    public half to hand to whoever checks."""

    algorithm = "ed25519"

    def __init__(self, private_key: bytes, *, key_id: str) -> None:
        self.key_id = _key_id(key_id)
        try:
            self._key = _ed25519().Ed25519PrivateKey.from_private_bytes(private_key)
        except ValueError as exc:
            raise InvalidArgument(f"not an Ed25519 private key: {exc}") from exc

    @classmethod
    def generate(cls, key_id: str) -> Ed25519Signer:
        from cryptography.hazmat.primitives import serialization

        key = _ed25519().Ed25519PrivateKey.generate()
        raw = key.private_bytes(
            serialization.Encoding.Raw,
            serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        )
        return cls(raw, key_id=key_id)

    def public_key(self) -> bytes:
        """The public key, 32 raw bytes."""
        from cryptography.hazmat.primitives import serialization

        raw: bytes = self._key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        return raw

    def verifier(self) -> Ed25519Verifier:
        return Ed25519Verifier(self.public_key(), key_id=self.key_id)

    def sign(self, message: bytes) -> bytes:
        signature: bytes = self._key.sign(message)
        return signature

    def __repr__(self) -> str:
        return f"Ed25519Signer(key_id={self.key_id!r})"


@attrs.frozen
class Checkpoint:
    """One stream's version and head hash at ``at``, signed under ``key_id``."""

    stream: str
    version: int
    head: str
    at: datetime
    hash_algorithm: str
    key_id: str
    signature_algorithm: str
    signature: bytes = attrs.field(repr=False)

    def message(self) -> bytes:
        """The bytes that are signed: every field but the signature, as canonical
        JSON (keys sorted, no spaces, UTF-8)."""
        return canonical_json(
            {
                "format": FORMAT,
                "stream": self.stream,
                "version": self.version,
                "head": self.head,
                "at": self.at.astimezone(UTC).isoformat(),
                "hash_algorithm": self.hash_algorithm,
                "key_id": self.key_id,
                "signature_algorithm": self.signature_algorithm,
            }
        )

    def holds(self, key: Verifier) -> bool:
        return (
            key.key_id == self.key_id
            and key.algorithm == self.signature_algorithm
            and key.verify(self.message(), self.signature)
        )


class _Entry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    stream: str = Field(min_length=1, max_length=200)
    version: int = Field(ge=1)
    head: str = Field(pattern=r"^[0-9a-f]{64}$")
    at: AwareDatetime
    signature: str = Field(min_length=1, max_length=1000)


class _File(BaseModel):
    """The JSON form of a :class:`Checkpoints` file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    format: str = Field(pattern=f"^{FORMAT}$")
    hash_algorithm: str
    key_id: str = Field(min_length=1, max_length=200)
    signature_algorithm: str = Field(min_length=1, max_length=50)
    issued_at: AwareDatetime
    checkpoints: tuple[_Entry, ...]


@attrs.frozen
class Checkpoints:
    """Signed checkpoints of one log, under one key: what ``verify(checkpoints=...)``
    checks the log against. A file may hold several checkpoints of a stream (older
    ones stay anchors too): :meth:`merged` adds a newer file to an older one."""

    hash_algorithm: str
    key_id: str
    signature_algorithm: str
    issued_at: datetime
    entries: tuple[Checkpoint, ...]

    def anchors(self) -> dict[str, dict[int, str]]:
        """Stream → version → the head hash recorded there."""
        out: dict[str, dict[int, str]] = {}
        for entry in self.entries:
            out.setdefault(entry.stream, {})[entry.version] = entry.head
        return out

    def merged(self, newer: Checkpoints) -> Checkpoints:
        """These checkpoints and ``newer`` ones (same log hash and key) together."""
        if (newer.hash_algorithm, newer.key_id) != (self.hash_algorithm, self.key_id):
            raise CheckpointInvalid("only checkpoints of the same log hash and key merge")
        seen = {(e.stream, e.version): e for e in (*self.entries, *newer.entries)}
        entries = tuple(sorted(seen.values(), key=lambda e: (e.stream, e.version)))
        return attrs.evolve(self, issued_at=max(self.issued_at, newer.issued_at), entries=entries)

    def to_json(self) -> str:
        """The file to hand over: small, readable JSON (signatures in base64)."""
        data = _File(
            format=FORMAT,
            hash_algorithm=self.hash_algorithm,
            key_id=self.key_id,
            signature_algorithm=self.signature_algorithm,
            issued_at=self.issued_at,
            checkpoints=tuple(
                _Entry(
                    stream=e.stream,
                    version=e.version,
                    head=e.head,
                    at=e.at,
                    signature=base64.b64encode(e.signature).decode(),
                )
                for e in self.entries
            ),
        )
        return json.dumps(data.model_dump(mode="json"), ensure_ascii=False, indent=2) + "\n"

    @classmethod
    def from_json(
        cls, text: str | bytes, key: Verifier | Iterable[Verifier] | Mapping[str, Verifier]
    ) -> Checkpoints:
        """Read a file written by :meth:`to_json` and check every signature with
        ``key`` (one verifier, several, or a mapping key id → verifier). Raises
        :class:`~xuncha_flow.CheckpointInvalid` for a malformed file, an unknown key
        or any signature that does not verify: an unverified file vouches for
        nothing."""
        try:
            data = _File.model_validate_json(text)
        except ValidationError as exc:
            raise CheckpointInvalid(f"not a checkpoint file: {exc.errors()[0]['msg']}") from exc
        if data.hash_algorithm not in HASH_ALGORITHMS:
            raise CheckpointInvalid(f"unknown hash algorithm {data.hash_algorithm!r}")
        verifier = _pick(key, data.key_id)
        entries = []
        for n, e in enumerate(data.checkpoints, start=1):
            try:
                signature = base64.b64decode(e.signature, validate=True)
            except ValueError as exc:
                raise CheckpointInvalid(f"checkpoint {n} ({e.stream}): bad signature") from exc
            entry = Checkpoint(
                e.stream,
                e.version,
                e.head,
                e.at,
                data.hash_algorithm,
                data.key_id,
                data.signature_algorithm,
                signature,
            )
            if not entry.holds(verifier):
                raise CheckpointInvalid(
                    f"checkpoint {n} ({e.stream} at version {e.version}): the signature does "
                    f"not verify with key {data.key_id!r}"
                )
            entries.append(entry)
        return cls(
            data.hash_algorithm,
            data.key_id,
            data.signature_algorithm,
            data.issued_at,
            tuple(entries),
        )


def _pick(key: Verifier | Iterable[Verifier] | Mapping[str, Verifier], key_id: str) -> Verifier:
    if isinstance(key, Verifier):
        keys = {key.key_id: key}
    elif isinstance(key, Mapping):
        keys = dict(key)
    else:
        keys = {k.key_id: k for k in key}
    if key_id not in keys:
        raise CheckpointInvalid(
            f"the checkpoints are signed with key {key_id!r}, which was not given"
        )
    return keys[key_id]


def make_checkpoints(
    log: EventLog,
    signer: Signer,
    *,
    at: datetime,
    streams: Iterable[str] | None = None,
) -> Checkpoints:
    """Sign a checkpoint of every stream of ``log`` (or of ``streams``) as it is now:
    its version and head hash, after checking its chain (a damaged stream raises
    :class:`~xuncha_flow.LogCorrupted`: a checkpoint never vouches for a bad chain).
    ``at`` is the time written in each checkpoint (the host's clock)."""
    moment = require_aware(at, "at")
    entries = []
    for stream in streams if streams is not None else log.streams():
        # the chain only (a store's read checks its rows): a checkpoint signs a head
        top = log.version(stream)  # writers may append meanwhile: sign what was there
        chain = verify_chain(stream, _upto(log.read(stream), top), log.hash_algorithm)
        if chain.ok and chain.checked != top:
            chain = attrs.evolve(
                chain, bad_version=chain.checked + 1, problem="the stream head is further on"
            )
        if not chain.ok:
            raise LogCorrupted(
                f"stream {stream!r} fails verification, no checkpoint is signed for it: "
                f"{chain.problem}",
                stream=stream,
                version=chain.bad_version,
            )
        if chain.checked == 0:
            continue
        draft = Checkpoint(
            stream,
            chain.checked,
            chain.head,
            moment,
            log.hash_algorithm,
            signer.key_id,
            signer.algorithm,
            b"",
        )
        entries.append(attrs.evolve(draft, signature=signer.sign(draft.message())))
    return Checkpoints(log.hash_algorithm, signer.key_id, signer.algorithm, moment, tuple(entries))


def _upto(events: Iterable[Event], top: int) -> Iterator[Event]:
    """``events`` up to version ``top``."""
    for event in events:
        if event.version > top:
            return
        yield event
