"""Working memory of the model: scratch tensors reused between calls, and the blocks of rows
that bound the memory of a large batch.

* **Scratch memory.** Temporaries come from a small cache of reused tensors: a fresh
  multi-megabyte tensor costs a page fault per 4 KiB every call, a large part of the time of a
  forward + backward pass (``benchmarks/RESULTS.md``). :func:`clear_scratch` releases it.
* **Blocks.** Large batches are processed block by block over the leading batch axis
  (:data:`BLOCK_BYTES` per array, :func:`block_rows`) to bound the working memory.
* **Batch shapes.** The broadcast batch shape of forcing and parameters, which every array the
  model allocates has, is computed here without :func:`torch.broadcast_shapes`' Python overhead.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

import torch

__all__ = ["block_rows", "BLOCK_BYTES", "clear_scratch"]


class _Scratch:
    """A small cache of CPU scratch tensors, reused across calls.

    A fresh multi-megabyte tensor costs more than the arithmetic done in it: the C allocator
    hands large blocks back to the operating system when they are freed, and the next call
    pays a page fault (and zero-filling) for every 4 KiB it touches again. Temporaries that
    never leave the model are therefore taken from and given back to this cache; tensors that
    reach the caller (outputs, tensors saved for a backward pass) are ordinary allocations.
    CUDA has its own caching allocator, so the cache is bypassed there. Thread-safe; bounded
    in size.
    """

    def __init__(self, max_bytes: int = 1 << 30):
        self.max_bytes = max_bytes
        self._free: dict[tuple, list[torch.Tensor]] = {}
        self._bytes = 0
        self._lock = threading.Lock()

    def take(self, shape: Sequence[int], like: torch.Tensor) -> torch.Tensor:
        """An uninitialised tensor of ``shape`` with the dtype and device of ``like``."""
        if like.device.type == "cpu":
            key = (tuple(shape), like.dtype)
            with self._lock:
                free = self._free.get(key)
                if free:
                    t = free.pop()
                    self._bytes -= t.nbytes
                    return t
        return torch.empty(tuple(shape), dtype=like.dtype, device=like.device)

    def give(self, *tensors: torch.Tensor | None) -> None:
        """Return tensors obtained from :meth:`take` (no reference to them may remain)."""
        with self._lock:
            for t in tensors:
                if t is None or t.device.type != "cpu" or self._bytes + t.nbytes > self.max_bytes:
                    continue
                self._free.setdefault((tuple(t.shape), t.dtype), []).append(t)
                self._bytes += t.nbytes

    def clear(self) -> None:
        """Release every cached tensor."""
        with self._lock:
            self._free.clear()
            self._bytes = 0


_SCRATCH = _Scratch()


def clear_scratch() -> None:
    """Release the scratch memory the model keeps between calls (at most 1 GiB, CPU only)."""
    _SCRATCH.clear()


#: Bytes of one array per block of rows on the CPU (bounds the working memory of a large
#: batch; 196 sites x 3650 days in float32 is one block). Smaller, cache-sized blocks measured
#: slower: the per-call overhead of the extra operations outweighed the cache gain
#: (benchmarks/RESULTS.md). On CUDA: at most 256 MiB per array.
BLOCK_BYTES = 1 << 22
_CUDA_BLOCK_BYTES = 1 << 28


def block_rows(row_bytes: int, device: torch.device | str) -> int:
    """Rows of ``row_bytes`` bytes (of one array) per block on ``device`` (at least 1)."""
    limit = BLOCK_BYTES if torch.device(device).type == "cpu" else _CUDA_BLOCK_BYTES
    return max(1, limit // max(int(row_bytes), 1))


def _leading_slice(t: torch.Tensor, rows: slice, n_lead: int, batch_ndim: int) -> torch.Tensor:
    """Rows ``rows`` of the leading axis of a broadcast batch of ``batch_ndim`` axes.

    ``t`` has ``batch_ndim`` or fewer batch axes (then right-aligned) plus one trailing axis;
    it is sliced only where its leading batch axis has the full length ``n_lead``.
    """
    if t.ndim - 1 == batch_ndim and t.shape[0] == n_lead and n_lead > 1:
        return t[rows]
    return t


def _blocks(shape: Sequence[int], like: torch.Tensor) -> list[slice]:
    """Slices of the leading axis of an array of ``shape`` (dtype and device of ``like``)
    into blocks (see :func:`block_rows`)."""
    if len(shape) < 2:
        return [slice(None)]
    row_bytes = like.element_size()
    for n in shape[1:]:
        row_bytes *= n
    step = block_rows(row_bytes, like.device)
    return [slice(i, min(i + step, shape[0])) for i in range(0, shape[0], step)]


def _bshape(a: Sequence[int], b: Sequence[int]) -> tuple[int, ...]:
    """``torch.broadcast_shapes(a, b)`` for valid shapes, without its Python overhead (the
    hot paths call it several times per block)."""
    a, b = tuple(a), tuple(b)
    if a == b:
        return a
    n = max(len(a), len(b))
    a = (1,) * (n - len(a)) + a
    b = (1,) * (n - len(b)) + b
    return tuple(y if x == 1 else x for x, y in zip(a, b, strict=True))
