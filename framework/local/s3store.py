"""The local S3's object bytes in files on disk, opened only while read (issue 15).

moto's ``FakeKey`` keeps an object's bytes in a ``tempfile.SpooledTemporaryFile``: in memory
below ``MOTO_S3_DEFAULT_KEY_BUFFER_SIZE`` (about 5 MB), else in a temporary file it keeps
*open* for the object's life. A capture window of 22,728 objects of 1 MB then needs 22.6 GB
of memory, and one of 5 MB objects one descriptor per object (this machine allows 20,000).

Here a key's bytes are a *reference*: the bytes themselves when at most ``THRESHOLD`` (the
journal's own inline limit), else the path of a content-addressed file (named by sha256):

- the journal's blob (``journal-blobs/<sha256>``) when it holds the same bytes: the request
  body of a plain PutObject/UploadPart *is* the object, and the journal already wrote it
  (fsynced, never changed, kept for the replay), so the object costs no second copy;
- else a file of ``s3-objects/`` (a multipart completion's whole object, a body that was not
  the object's bytes), counted by the keys that use it and removed when the last one goes.
  That directory is derived from the journal: it is emptied on start and the replay writes
  again what is still used.

Copies, overwrites, versions and ``ListObjectVersions``'s deep copies share the file of equal
bytes; a delete or an overwrite releases its key's reference and never removes a journal blob
or a file another key still uses. The value, ETag, checksums, ranges and multipart are
moto's own code reading ``FakeKey.value``; only where the bytes live changes.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .files import JOURNAL_BLOBS_DIR, S3_OBJECTS_DIR
from .journal import INLINE_BODY_MAX

THRESHOLD = INLINE_BODY_MAX  # bytes kept in memory; larger objects are files
_CHUNK = 16 * 1024 * 1024  # what moto's ETag reads at a time
_REF = "_mlops_ref"  # the FakeKey attribute holding the reference

Ref = bytes | str  # the bytes themselves, or the path of the file holding them


class Store:
    """Content-addressed object files: the journal's blobs, and files of its own."""

    def __init__(self, blobs: Path, objects: Path, threshold: int = THRESHOLD) -> None:
        self.blobs = blobs
        self.objects = objects
        self.threshold = threshold
        self._counts: dict[str, int] = {}  # own files only: keys using each
        self._lock = threading.RLock()  # an RLock: a key's __del__ may run inside put()

    def put(self, data: bytes | bytearray | memoryview) -> Ref:
        """A reference to ``data`` (one more user of its file, if it has one of its own)."""
        if len(data) <= self.threshold:
            return bytes(data)
        name = hashlib.sha256(data).hexdigest()
        blob = self.blobs / name
        if blob.is_file():
            return str(blob)
        path = str(self.objects / name)
        with self._lock:
            count = self._counts.get(path, 0)
            if not count:
                self.objects.mkdir(parents=True, exist_ok=True)
                partial = f"{path}.partial"
                with open(partial, "wb") as fh:
                    fh.write(data)
                os.replace(partial, path)
            self._counts[path] = count + 1
        return path

    def acquire(self, ref: Ref | None) -> None:
        """One more user of ``ref`` (a key's copy)."""
        if isinstance(ref, str) and self._own(ref):
            with self._lock:
                self._counts[ref] = self._counts.get(ref, 0) + 1

    def release(self, ref: Ref | None) -> None:
        """One user fewer of ``ref``; its own file goes with its last user."""
        if not (isinstance(ref, str) and self._own(ref)):
            return
        with self._lock:
            count = self._counts.get(ref, 0) - 1
            if count > 0:
                self._counts[ref] = count
                return
            self._counts.pop(ref, None)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(ref)

    def read(self, ref: Ref) -> bytes:
        if isinstance(ref, bytes):
            return ref
        with open(ref, "rb") as fh:
            return fh.read()

    def chunks(self, ref: Ref) -> Iterator[bytes]:
        if isinstance(ref, bytes):
            yield ref
            return
        with open(ref, "rb") as fh:
            while block := fh.read(_CHUNK):
                yield block

    def files(self) -> int:
        """How many files of its own the store holds."""
        with self._lock:
            return len(self._counts)

    def _own(self, path: str) -> bool:
        return os.path.dirname(path) == str(self.objects)


_store: Store | None = None


def install(home: Path) -> Store:
    """Keep the bytes of moto's S3 objects in ``home``'s files (before the journal's replay)."""
    global _store
    import moto.s3.models

    objects = home / S3_OBJECTS_DIR
    shutil.rmtree(objects, ignore_errors=True)  # the replay writes again what is still used
    _store = Store(home / JOURNAL_BLOBS_DIR, objects)
    key: Any = moto.s3.models.FakeKey
    if getattr(key, "_mlops_store", False):
        return _store
    original_dispose = key.dispose
    key.value = property(_get_value, _set_value)
    key.etag = property(_etag)
    key.dispose = lambda self, garbage=False: _dispose(self, original_dispose, garbage)
    key.__getstate__ = _getstate
    key.__setstate__ = _setstate
    key._mlops_store = True
    return _store


def _current() -> Store:
    if _store is None:
        raise RuntimeError("s3store.install() was not called")
    return _store


def _ref_of(key: Any) -> Ref:
    ref: Ref | None = key.__dict__.get(_REF)
    if ref is None:  # disposed: moto's closed buffer raised the same
        raise ValueError("I/O operation on closed file.")
    return ref


def _get_value(self: Any) -> bytes:
    with self.lock:
        return _current().read(_ref_of(self))


def _set_value(self: Any, new_value: bytes | str) -> None:
    from moto.s3.models import DEFAULT_TEXT_ENCODING

    if isinstance(new_value, str):  # as moto's setter
        new_value = new_value.encode(DEFAULT_TEXT_ENCODING)
    store = _current()
    old = self.__dict__.get(_REF)
    self.__dict__[_REF] = store.put(new_value)
    self.contentsize = len(new_value)
    store.release(old)


def _etag(self: Any) -> str:
    if self._etag is None:
        from moto.utilities.utils import md5_hash

        value_md5 = md5_hash()
        for block in _current().chunks(_ref_of(self)):
            value_md5.update(block)
        self._etag = value_md5.hexdigest()
    return f'"{self._etag}"'


def _dispose(self: Any, original: Any, garbage: bool) -> None:
    ref = self.__dict__.pop(_REF, None)  # once: a second dispose finds nothing to release
    if _store is not None:
        _store.release(ref)
    original(self, garbage)


def _getstate(self: Any) -> dict[str, Any]:
    """A key's state for a (deep) copy: its reference, not its bytes."""
    state: dict[str, Any] = self.__dict__.copy()
    state.pop("_value_buffer", None)
    state.pop("lock", None)
    if state.get(_REF) is None:  # disposed: moto copied it as empty
        state[_REF] = b""
    return state


def _setstate(self: Any, state: dict[str, Any]) -> None:
    self.__dict__.update(state)
    # moto's dispose closes this buffer before it disposes a multipart; it stays empty
    self._value_buffer = tempfile.SpooledTemporaryFile(  # noqa: SIM115 (moto's own)
        max_size=self._max_buffer_size)
    self.lock = threading.Lock()
    _current().acquire(state[_REF])
