"""Sharded checkpoints: each process writes the shards it owns to its own safetensors file, and process
0 writes a JSON manifest naming every piece; a loader builds each array for any mesh from the pieces.

Why not orbax-checkpoint: it brings tensorstore and an asynchronous runtime (seconds of imports) for
what is here a few hundred lines' worth of job, and its files are not the safetensors the unsharded
checkpoint already is. Guarantees, as the single-file checkpoint has them:
- One writer per shard: a piece (one distinct block of an array) belongs to the lowest-numbered device
  that holds it, and only that device's process writes it. Nothing is gathered onto one device.
- Atomic: shard files are named by the sha256 of their header (which holds every piece's sha256), so a
  new save never overwrites a file an older manifest names; the manifest is renamed into place last,
  after every process has written (the processes exchange their files' digests, which is also the
  barrier). A reader sees the old manifest and its files, or the new ones.
- Checksummed: the manifest carries its own sha256 and each file's header digest; each piece is checked
  against its digest when read. A process reads only the pieces that overlap the blocks it needs.
- Never pickled: JSON and safetensors only.
"""

import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path

import jax
import numpy as np

from .errors import UserError

FORMAT = "microjax-sharded-checkpoint-1"
MANIFEST = "checkpoint.json"
SHARDS = "shards"


def _blocks(shape, index):
    """A tuple of slices (as a sharding's device map gives them) -> ((start, stop), ...)."""
    return tuple(s.indices(n)[:2] for s, n in zip(index, shape))


def _owners(array):
    """{block: lowest device id holding it} for a global jax.Array."""
    owners = {}
    for device, index in array.sharding.devices_indices_map(array.shape).items():
        block = _blocks(array.shape, index)
        owners[block] = min(owners.get(block, device.id), device.id)
    return owners


def _key(name, block):
    return name + "@" + ",".join(f"{a}:{b}" for a, b in block)


def _digest(array):
    a = np.ascontiguousarray(array)
    return hashlib.sha256(f"{a.dtype.str}:{a.shape}".encode() + a.tobytes()).hexdigest()


def atomic_write(path, blob):
    """Write `path` so that a reader sees the old file or the new one, never half of it; a failure (a full
    disk) leaves no half-written file behind, and is one line."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(blob)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise UserError(f"cannot write a checkpoint to {path.parent}: {e.strerror or e}") from None


def save(directory, arrays, meta, host=None):
    """Write `arrays` ({name: global jax.Array}) and, from process 0, `host` ({name: numpy array}, e.g.
    the metrics so far) under DIR, with `meta` (JSON) in the manifest. Every process must call it."""
    from safetensors.numpy import save as save_tensors

    directory = Path(directory)
    me, count = jax.process_index(), jax.process_count()
    device_process = {d.id: d.process_index for d in jax.devices()}
    mine, entries = {}, {}
    for name, array in arrays.items():
        owners = _owners(array)
        local = {s.device.id: s for s in array.addressable_shards}
        entries[name] = {"shape": list(array.shape), "dtype": np.dtype(array.dtype).name,
                         "pieces": [[device_process[d], _key(name, b), [list(x) for x in b]]
                                    for b, d in sorted(owners.items())]}
        for block, device in owners.items():
            if device_process[device] == me:
                mine[_key(name, block)] = np.asarray(local[device].data)
    for name, value in (host or {}).items():
        value = np.asarray(value)
        block = tuple((0, n) for n in value.shape)
        entries[name] = {"shape": list(value.shape), "dtype": value.dtype.name,
                         "pieces": [[0, _key(name, block), [list(x) for x in block]]]}
        if me == 0:
            mine[_key(name, block)] = value
    digests = {k: _digest(v) for k, v in mine.items()}
    blob = save_tensors(mine, metadata={"format": FORMAT, "digests": json.dumps(digests, sort_keys=True)})
    header = _header_digest(blob)
    try:
        (directory / SHARDS).mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"cannot write a checkpoint to {directory}: {e.strerror or e}") from None
    atomic_write(directory / SHARDS / f"{header[:32]}.safetensors", blob)
    headers = [header]
    if count > 1:  # every process's digest to every process: the files are all written after this
        from jax.experimental import multihost_utils

        gathered = multihost_utils.process_allgather(np.frombuffer(bytes.fromhex(header), np.uint8))
        headers = [bytes(np.asarray(row, np.uint8)).hex() for row in np.asarray(gathered).reshape(count, 32)]
    if me != 0:
        return directory / MANIFEST
    old = _files(directory)
    manifest = {"format": FORMAT, "meta": meta, "headers": headers,
                "files": [f"{h[:32]}.safetensors" for h in headers], "arrays": entries}
    manifest["sha256"] = _manifest_digest(manifest)
    atomic_write(directory / MANIFEST, json.dumps(manifest).encode())
    for stale in old - set(manifest["files"]):
        (directory / SHARDS / stale).unlink(missing_ok=True)
    return directory / MANIFEST


def remove(directory):
    """Delete a sharded checkpoint (after a single-file one has replaced it): manifest first."""
    directory = Path(directory)
    files = _files(directory)
    (directory / MANIFEST).unlink(missing_ok=True)
    for name in files:
        (directory / SHARDS / name).unlink(missing_ok=True)


def _files(directory):
    try:
        return set(json.loads((Path(directory) / MANIFEST).read_text())["files"])
    except (OSError, ValueError, KeyError, TypeError):
        return set()


def _header_digest(blob):
    n = int.from_bytes(blob[:8], "little")
    return hashlib.sha256(blob[: 8 + n]).hexdigest()


def _manifest_digest(manifest):
    body = {k: v for k, v in manifest.items() if k != "sha256"}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def exists(directory):
    return (Path(directory) / MANIFEST).exists()


def read_meta(directory):
    """The manifest's meta, checked; a UserError names what is wrong."""
    return Source(directory).meta


class Source(Mapping):
    """A sharded checkpoint opened for reading: a mapping of names to whole arrays (read on demand), with
    `shape(name)`, `dtype(name)` and `read(name, index)`, the block `index` (a tuple of slices) of an
    array, read from the pieces it overlaps."""

    def __init__(self, directory):
        self.directory = Path(directory)
        path = self.directory / MANIFEST
        try:
            m = json.loads(path.read_text())
            if not isinstance(m, dict) or m.get("format") != FORMAT:
                raise ValueError(f"format {m.get('format') if isinstance(m, dict) else None!r}, expected {FORMAT!r}")
            if m.get("sha256") != _manifest_digest(m):
                raise ValueError("the manifest does not match its checksum")
            self.meta, self.arrays, self.files, self.headers = m["meta"], m["arrays"], m["files"], m["headers"]
            for name, entry in self.arrays.items():
                covered = sum(np.prod([b - a for a, b in block]) for *_, block in entry["pieces"])
                if covered != np.prod(entry["shape"]):
                    raise ValueError(f"the pieces of {name!r} do not cover it")
        except OSError as e:
            raise UserError(f"cannot read the checkpoint {path}: {e.strerror or e}") from None
        except (ValueError, KeyError, TypeError) as e:
            raise UserError(f"damaged or foreign checkpoint {path}: {e}") from None
        self._open, self._digests = {}, {}

    def __getitem__(self, name):
        return self.read(name)

    def __iter__(self):
        return iter(self.arrays)

    def __len__(self):
        return len(self.arrays)

    def shape(self, name):
        return tuple(self.arrays[name]["shape"])

    def dtype(self, name):
        return np.dtype(self.arrays[name]["dtype"])

    def _file(self, process):
        """The open shard file of one process, its header checked against the manifest's digest."""
        if process not in self._open:
            from safetensors import SafetensorError, safe_open

            path = self.directory / SHARDS / self.files[process]
            try:
                with open(path, "rb") as f:
                    n = int.from_bytes(f.read(8), "little")
                    f.seek(0)
                    head = f.read(8 + n)
                if hashlib.sha256(head).hexdigest() != self.headers[process]:
                    raise ValueError(f"{path.name} does not match the manifest's checksum")
                handle = safe_open(str(path), framework="numpy")
                self._digests[process] = json.loads(handle.metadata()["digests"])
            except OSError as e:
                raise UserError(f"cannot read the checkpoint {path}: {e.strerror or e}") from None
            except (SafetensorError, ValueError, KeyError, TypeError) as e:
                raise UserError(f"damaged checkpoint {self.directory}: {e}") from None
            self._open[process] = handle
        return self._open[process]

    def read(self, name, index=None):
        if name not in self.arrays:
            raise KeyError(name)
        shape = self.shape(name)
        want = _blocks(shape, index if index is not None else (slice(None),) * len(shape))
        out = np.empty([b - a for a, b in want], self.dtype(name))
        for process, key, block in self.arrays[name]["pieces"]:
            lo = [max(a, w) for (a, _), (w, _) in zip(block, want)]
            hi = [min(b, w) for (_, b), (_, w) in zip(block, want)]
            if any(h <= l for l, h in zip(lo, hi)) and out.size:
                continue
            f = self._file(process)
            piece = f.get_tensor(key)
            if _digest(piece) != self._digests[process].get(key):
                raise UserError(f"damaged checkpoint {self.directory}: {key!r} does not match its checksum")
            src = tuple(slice(l - a, h - a) for l, h, (a, _) in zip(lo, hi, block))
            dst = tuple(slice(l - w, h - w) for l, h, (w, _) in zip(lo, hi, want))
            out[dst] = piece[src]
        return out


def read_block(source, name, index=None):
    """Block `index` of array `name` from a Source or a plain {name: array} (a single-file checkpoint's)."""
    if isinstance(source, Source):
        return source.read(name, index)
    value = np.asarray(source[name])
    return value if index is None else value[index]


def _shape(source, name):
    return source.shape(name) if isinstance(source, Source) else tuple(np.shape(source[name]))


def _layout(source, name, layout):
    """How array `name` is found in `source`: ("direct",), ("part", flat name, start, shape) or
    ("parts", [names]); KeyError when it is not there, ValueError when its shape is not the layout's."""
    names = set(source)
    if name in names:
        return ("direct",)
    offsets, total = {}, 0
    for key, shape in layout:
        offsets[key] = (total, tuple(shape))
        total += int(np.prod(shape))
    head, _, key = name.rpartition("['")
    if head in names and key.endswith("']") and key[:-2] in offsets:  # one parameter's part of a flat vector
        if _shape(source, head) != (total,):
            raise ValueError(f"its flat {head!r} has shape {_shape(source, head)}, expected ({total},)")
        return ("part", head) + offsets[key[:-2]]
    parts = [f"{name}['{key}']" for key, _ in layout]
    if parts and all(p in names for p in parts):  # a flat vector from per-parameter arrays
        for p, (_, shape) in zip(parts, layout):
            if _shape(source, p) != tuple(shape):
                raise ValueError(f"{p!r} has shape {_shape(source, p)}, expected {tuple(shape)}")
        return ("parts", parts)
    raise KeyError(name)


def leaf_shape(source, name, layout):
    """The whole shape `read_leaf` gives array `name` (KeyError, ValueError as `read_leaf`)."""
    how = _layout(source, name, layout)
    if how[0] == "direct":
        return _shape(source, name)
    return how[3] if how[0] == "part" else (sum(int(np.prod(s)) for _, s in layout),)


def read_leaf(source, name, index, layout):
    """Block `index` of array `name`, converting between the two ways optimizer state is kept: one flat
    vector for all parameters (`P`, the replicated runs' raveled Adam) and one array per parameter
    (`P['wte']`, the sharded runs'). `layout`: [(parameter name, shape)] in raveling order (sorted)."""
    how = _layout(source, name, layout)
    if how[0] == "direct":
        return read_block(source, name, index)
    if how[0] == "part":
        _, head, start, shape = how
        whole = read_block(source, head, (slice(start, start + int(np.prod(shape))),)).reshape(shape)
    else:
        whole = np.concatenate([read_block(source, p).reshape(-1) for p in how[1]])
    return whole if index is None else whole[index]
