"""Streaming separation compiled with numba: one machine-code call per chunk, BLAS for the products.

:class:`NumbaStreamingTasNet` runs the same computation as :class:`binaural.realtime.streaming.StreamingTasNet`
(the reference, and the test oracle of this engine) with the same interface (``reset``,
``process_chunk`` with any number of samples, ``flush``, ``latency``), but a chunk is one call
into a function compiled by numba (:func:`_separate_frames`) instead of about 330 PyTorch
operations. At 2 to 8 new frames a chunk each of those operations costs more in dispatch (1.5 to
5 us) than in arithmetic; compiled, what is left is the arithmetic and reading the weights.

* The products (encoder, bottleneck, the two 1x1 convolutions of every TCN block, the mask and
  decoder convolutions) call ``sgemm`` of the BLAS that scipy ships (``scipy.linalg.cython_blas``,
  OpenBLAS), the residual add riding on its ``beta = 1``. A chunk is cut into runs of at most
  :data:`MAX_FRAMES` frames, which keeps every product under the size from which OpenBLAS splits
  one over threads: the engine runs on the calling thread only.
* Everything between the products (biases, PReLUs, channel-wise layer norms, the dilated depthwise
  convolutions, softmax or ReLU masks, masking, overlap-add) is loops over one frame's channels,
  which LLVM vectorises.
* Each block's depthwise convolution reads its past from a ring buffer (a power-of-two number of
  frames, at least its reach plus :data:`MAX_FRAMES`): writing a new frame is one row, and nothing
  is ever moved.
* The weights and the rings sit in one memory map backed by 2 MB pages where the OS has
  transparent huge pages (:class:`_Arena`): a chunk reads from thousands of 4 KB pages, more
  than the TLB holds.

The weights are the reference engine's, already folded (:class:`binaural.realtime.streaming._StreamingMaskNets`:
the affine parts of the norms that precede a 1x1 convolution folded into it, the residual offset
into the next bias), copied as float32 numpy arrays at construction. Results equal the PyTorch
engine's to float rounding (a few 1e-7; the products are summed in another order).

The first call compiles the kernel (seconds); numba caches the machine code beside this file (or
in its user cache when that folder is read-only), so later processes load it.
"""
from __future__ import annotations

import mmap
import re

import numpy as np
import torch

from binaural.models.tasnet import BinauralTasNet
from binaural.realtime.streaming import StreamingTasNet, _Slopes, algorithmic_latency, end_of_stream

import numba
from llvmlite import binding as llvm_binding
from llvmlite import ir as llvm_ir
from numba.core import cgutils, types
from numba.experimental import structref
from numba.extending import get_cython_function_address, intrinsic

__all__ = ["HUGE_PAGE", "MAX_FRAMES", "NumbaStreamingTasNet"]

#: Most frames one pass of the kernel processes; a longer chunk is cut into runs of this many.
#: OpenBLAS runs a product ``m x k @ k x n`` on one thread while ``m * n * k <= 2**18``; with the
#: published sizes the largest here is 16 x 64 @ 64 x 128 (a block's input, a talker's mask).
MAX_FRAMES = 16

#: Cache lines of every 4 KB page of the next product's weights asked for after each frame's
#: norm. A chunk of a few frames is bound by reading the 4.3 MB of weights, which do not fit in a
#: core's 2 MB L2, and the core's own prefetcher streams one 4 KB page at a time, starting once a
#: page has been touched: touching the first lines of every page of the product to come while
#: the norms compute starts all its pages' streams at once. Measured with the weights in huge
#: pages (interleaved, medians of 5; RTF at 2 ms / 8 ms chunks): the first 1 KB of the product
#: 0.0944 / 0.0352, 2 lines of each page 0.0923 / 0.0333, 1 line 0.0928 / 0.0333, 4 lines
#: 0.0929 / 0.0352; more than that holds the line-fill buffers that the norms' own loads need.
PREFETCH_LINES = 2

#: Bytes of a small page: the span of the core's stream prefetcher, and each array's alignment in the arena.
_PAGE = 4096

#: Bytes of a huge page (x86-64 and arm64 Linux's transparent huge pages), the arena's alignment.
HUGE_PAGE = 2 << 20

#: SpeechBrain's ``conv_tasnet.EPS``, inside the square root of its layer norms.
LN_EPS = np.float32(1e-8)

#: Rows of a block's ``vectors [6 + P, H]``: the first 1x1 convolution's bias, the PReLU slopes,
#: the first norm's affine, the depthwise bias, the second PReLU's slopes, then the ``P`` taps.
_VECTORS = ("b_in", "slope1", "gamma1", "beta1", "b_dw", "slope2", "taps")
_B_IN, _SLOPE1, _GAMMA1, _BETA1, _B_DW, _SLOPE2, _TAPS = range(len(_VECTORS))

#: Every fast-math licence but "no NaNs / no infinities": a NaN in stays a NaN out.
_FASTMATH = {"nsz", "arcp", "contract", "afn", "reassoc"}

# Fortran sgemm(transa, transb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc), every argument a
# pointer; called by symbol name (not as a ctypes object) so that numba can cache the kernel.
llvm_binding.add_symbol(
    "binaural_tasnet_sgemm", get_cython_function_address("scipy.linalg.cython_blas", "sgemm")
)
_sgemm = types.ExternalFunction("binaural_tasnet_sgemm", types.void(*([types.voidptr] * 13)))


@intrinsic
def _address(typingctx, array):  # noqa: ANN001, ANN201 (numba typing)
    """The address of ``array[0, ...]`` as a ``void *`` (what a C function takes)."""

    def codegen(context, builder, signature, args):  # noqa: ANN001, ANN202
        data = context.make_array(signature.args[0])(context, builder, args[0]).data
        return builder.bitcast(data, llvm_ir.IntType(8).as_pointer())

    return types.voidptr(array), codegen


@intrinsic
def _prefetch(typingctx, array, offset):  # noqa: ANN001, ANN201 (numba typing)
    """Ask for the cache line ``offset`` bytes into ``array``'s data (into L2 and L1; no fault if out of range)."""

    def codegen(context, builder, signature, args):  # noqa: ANN001, ANN202
        data = context.make_array(signature.args[0])(context, builder, args[0]).data
        byte = llvm_ir.IntType(8).as_pointer()
        address = builder.gep(builder.bitcast(data, byte), [args[1]])
        i32 = llvm_ir.IntType(32)
        function = cgutils.get_or_insert_function(
            builder.module, llvm_ir.FunctionType(llvm_ir.VoidType(), [byte, i32, i32, i32]), "llvm.prefetch.p0i8"
        )
        # read, locality 3 (keep in all levels), data cache
        builder.call(function, [address, i32(0), i32(3), i32(1)])
        return context.get_dummy_value()

    return types.void(array, types.intp), codegen


@structref.register
class _KernelType(types.StructRef):
    """numba's type of :class:`_Kernel`: one argument, so that a call unboxes one object, not 30 arrays."""


class _Kernel(structref.StructRefProxy):
    """The arguments of :func:`_separate_frames` other than the chunk (see there): fixed, state, scratch."""


structref.define_proxy(_Kernel, _KernelType, ["front", "blocks", "back", "state", "scratch"])

#: ``counters`` entries of a :class:`_Kernel`'s state.
_FRAMES_DONE, _WAITING = 0, 1


@numba.njit(cache=True, fastmath=_FASTMATH, inline="always")
def _gemm(a: np.ndarray, b: np.ndarray, c: np.ndarray, accumulate: bool, scalars: np.ndarray, sizes: np.ndarray) -> None:
    """``c = a @ b`` (or ``c += a @ b``) for C-ordered ``a [m, k]``, ``b [k, n]``, ``c [m, n]``.

    Row-major ``c = a @ b`` is column-major ``c^T = b^T a^T``: sgemm with no transposes, the
    operands swapped. ``scalars`` is ``[1, 0, 1]`` (alpha, then beta for ``=`` and ``+=``),
    ``sizes`` int32 scratch for the sizes sgemm takes by reference (first element ``ord("N")``).
    """
    m, k = a.shape
    n = b.shape[1]
    sizes[1] = n
    sizes[2] = m
    sizes[3] = k
    beta = scalars[2:] if accumulate else scalars[1:]
    _sgemm(_address(sizes), _address(sizes), _address(sizes[1:]), _address(sizes[2:]), _address(sizes[3:]),
           _address(scalars), _address(b), _address(sizes[1:]), _address(a), _address(sizes[3:]),
           _address(beta), _address(c), _address(sizes[1:]))


@numba.njit(cache=True, fastmath=_FASTMATH, inline="always")
def _inverse_std(x: np.ndarray, mean: np.float32) -> np.float32:
    """``1 / sqrt(var(x) + eps)`` of one frame ``[C]`` whose mean is ``mean``: the second pass of a
    two-pass variance (as ``torch.layer_norm``), not ``E[x^2] - E[x]^2``."""
    spread = np.float32(0)
    for c in range(x.shape[0]):
        d = x[c] - mean
        spread += d * d
    return np.float32(1) / np.sqrt(spread / np.float32(x.shape[0]) + LN_EPS)


@numba.njit(cache=True, fastmath=_FASTMATH, inline="always")
def _prelu_norm(x: np.ndarray, bias: np.ndarray, slope: np.ndarray, gamma: np.ndarray, beta: np.ndarray,
                out: np.ndarray) -> None:
    """``out = cLN(PReLU(x + bias)) * gamma + beta`` over the channels of one frame ``[C]`` (``x`` is overwritten)."""
    total = np.float32(0)
    for c in range(x.shape[0]):
        v = x[c] + bias[c]
        v = v if v >= 0 else v * slope[c]
        x[c] = v
        total += v
    mean = total / np.float32(x.shape[0])
    scale = _inverse_std(x, mean)
    for c in range(x.shape[0]):
        out[c] = (x[c] - mean) * scale * gamma[c] + beta[c]


@numba.njit(cache=True, fastmath=_FASTMATH, inline="always")
def _norm(x: np.ndarray) -> None:
    """In-place channel-wise layer norm (no affine) of one frame ``[C]``."""
    total = np.float32(0)
    for c in range(x.shape[0]):
        total += x[c]
    mean = total / np.float32(x.shape[0])
    scale = _inverse_std(x, mean)
    for c in range(x.shape[0]):
        x[c] = (x[c] - mean) * scale


@numba.njit(cache=True, fastmath=_FASTMATH, inline="always")
def _depthwise3(z: np.ndarray, v: np.ndarray, p0: np.ndarray, p1: np.ndarray, p2: np.ndarray) -> None:
    """``z = cLN(PReLU(b + w0 p0 + w1 p1 + w2 p2))`` (no affine) for one frame ``[H]``: a 3-tap block's depthwise step.

    ``v`` is the block's :data:`_VECTORS` rows, ``p0, p1, p2`` the past frames the taps read.
    """
    channels = z.shape[0]
    bias, slope, w0, w1, w2 = v[_B_DW], v[_SLOPE2], v[_TAPS], v[_TAPS + 1], v[_TAPS + 2]
    total = np.float32(0)
    for c in range(channels):
        x = bias[c] + w0[c] * p0[c] + w1[c] * p1[c] + w2[c] * p2[c]
        x = x if x >= 0 else x * slope[c]
        z[c] = x
        total += x
    mean = total / np.float32(channels)
    scale = _inverse_std(z, mean)
    for c in range(channels):
        z[c] = (z[c] - mean) * scale


@numba.njit(cache=True, inline="always")
def _prefetch_run(array: np.ndarray, start: int, done: int, size: int) -> int:
    """Ask for the next :data:`PREFETCH_LINES` cache lines of every page of bytes ``start ... start + size``
    of ``array``'s data, ``done`` lines of each asked for so far; returns the new ``done``."""
    if done * 64 < _PAGE:
        for page in range(start, start + size, _PAGE):
            for line in range(done, done + PREFETCH_LINES):
                _prefetch(array, page + 64 * line)
    return done + PREFETCH_LINES


@numba.njit(cache=True, fastmath=_FASTMATH, inline="always")
def _prelu_norm_inplace(z: np.ndarray, slope: np.ndarray) -> None:
    """PReLU then channel-wise norm (no affine: it is folded into the next product) of one frame ``[C]``."""
    for c in range(z.shape[0]):
        v = z[c]
        z[c] = v if v >= 0 else v * slope[c]
    _norm(z)


@numba.njit(cache=True, fastmath=_FASTMATH)
def _separate_frames(kernel, samples, n_frames, out):  # noqa: ANN001 (numba)
    """Encode, mask and decode ``n_frames`` frames: the kernel of :class:`NumbaStreamingTasNet`.

    Numpy arrays, float32 unless said; ``E`` output ears, ``K`` TCN blocks, ``C`` talkers, ``S``
    the hop (samples), ``n`` at most :data:`MAX_FRAMES` (the rows of the scratch arrays).

    Arguments
    ---------
    kernel : :class:`_Kernel`, whose fields are ``front``, ``blocks``, ``back``, ``state`` and ``scratch``:
    samples : ``[(n_frames - 1) * S + L, 2]`` input samples; frame ``k`` starts at sample ``k * S``.
    n_frames : int
    front : ``(w_encoder [E, 2L, I*N], w_bottleneck [E, I*N, B])``.
    blocks : ``(w_in [E, K, B, H], w_out [E, K, H, B], vectors [E, K, 6 + P, H], dilation [K],
        left [K], ring_start [K], ring_mask [K])``, the last four int64. A block's vectors lie
        side by side (:data:`_VECTORS`), so that each block reads them as one run of memory
        rather than nine (at 2 frames a chunk their cache misses cost as much as the norms).
    back : ``(w_mask [E, C, B, N], b_mask [E, C, N], softmax bool [1], w_decoder [E, N, hops*S],
        decoder_bias [E])``.
    state : ``(ring [E, rows, H], counters int64 [2], tail [E, hops - 1, C, S], inbox [rows', 2])``,
        updated: ``counters`` holds the frames done so far and the samples waiting in ``inbox``.
    scratch : ``(frames [n, 2L], enc [n, I*N], normed [n, I*N], residual [n, B], hidden [n, H],
        score [C, n, N], masked [n*C, N], pieces [n*C, hops*S], overlap [n + hops - 1, C, S],
        scalars [3], sizes int32 [4])``.
    out : ``[n_frames * S, E, C]``, written.
    """
    w_encoder, w_bottleneck = kernel.front
    w_in, w_out, vectors, dilation, left, ring_start, ring_mask = kernel.blocks
    w_mask, b_mask, softmax, w_decoder, decoder_bias = kernel.back
    ring, position, tail, _ = kernel.state
    frames_all, enc_all, normed_all, res_all, hid_all, score_all, masked_all, pieces_all, overlap_all, scalars, sizes = kernel.scratch
    n_ears, n_blocks, n_taps = w_encoder.shape[0], w_in.shape[1], vectors.shape[2] - _TAPS
    window, n_enc = w_encoder.shape[1] // 2, w_encoder.shape[2]
    n_spks, hop = tail.shape[2], tail.shape[3]
    hops = tail.shape[1] + 1
    n_filters, n_mask = w_decoder.shape[1], w_mask.shape[3]
    n_streams = n_enc // n_filters
    block_bytes = w_in.shape[2] * w_in.shape[3] * 4
    done = 0
    while done < n_frames:
        n = min(n_frames - done, frames_all.shape[0])
        frames, enc, normed, res, hid = frames_all[:n], enc_all[:n], normed_all[:n], res_all[:n], hid_all[:n]
        masked, pieces, overlap = masked_all[: n * n_spks], pieces_all[: n * n_spks], overlap_all[: n + hops - 1]
        for t in range(n):  # frames interleaved [n, 2L], as a [time, 2] stream lies in memory
            first = (done + t) * hop
            for j in range(window):
                frames[t, 2 * j] = samples[first + j, 0]
                frames[t, 2 * j + 1] = samples[first + j, 1]
        for e in range(n_ears):
            _gemm(frames, w_encoder[e], enc, False, scalars, sizes)  # [n, I*N]
            for t in range(n):
                for c in range(n_enc):
                    v = max(enc[t, c], np.float32(0))
                    enc[t, c] = v
                    normed[t, c] = v
                _norm(normed[t])
            _gemm(normed, w_bottleneck[e], res, False, scalars, sizes)  # [n, B]
            ring_e = ring[e]
            for k in range(n_blocks):
                start, mask, reach, d = ring_start[k], ring_mask[k], left[k], dilation[k]
                v = vectors[e, k]
                _gemm(res, w_in[e, k], hid, False, scalars, sizes)  # [n, H]
                # While the norms run: this block's w_out, then the next block's w_in.
                here, fetched_out, fetched_in = (e * n_blocks + k) * block_bytes, 0, 0
                ahead = here + block_bytes if k + 1 < n_blocks else -1
                for t in range(n):  # frame t's depthwise input goes to its ring row
                    row = ring_e[start + ((position[_FRAMES_DONE] + done + t) & mask)]
                    _prelu_norm(hid[t], v[_B_IN], v[_SLOPE1], v[_GAMMA1], v[_BETA1], row)
                    fetched_out = _prefetch_run(w_out, here, fetched_out, block_bytes)
                for t in range(n):  # tap j reads frame t - left + j * d
                    now = position[_FRAMES_DONE] + done + t
                    z = hid[t]
                    if n_taps == 3:  # SpeechBrain's P: one pass for taps, bias, PReLU and the sum
                        _depthwise3(z, v, ring_e[start + ((now - reach) & mask)],
                                    ring_e[start + ((now - reach + d) & mask)], ring_e[start + ((now - reach + 2 * d) & mask)])
                    else:
                        z[:] = v[_B_DW]
                        for j in range(n_taps):
                            past = ring_e[start + ((now - reach + j * d) & mask)]
                            tap = v[_TAPS + j]
                            for c in range(z.shape[0]):
                                z[c] += tap[c] * past[c]
                        _prelu_norm_inplace(z, v[_SLOPE2])
                    if ahead >= 0:
                        fetched_in = _prefetch_run(w_in, ahead, fetched_in, block_bytes)
                _gemm(hid, w_out[e, k], res, True, scalars, sizes)  # residual += [n, H] @ [H, B]
            for s in range(n_spks):
                score = score_all[s, :n]
                _gemm(res, w_mask[e, s], score, False, scalars, sizes)  # [n, N]
                for t in range(n):
                    row = score[t]
                    for c in range(n_mask):
                        row[c] += b_mask[e, s, c]
                    if softmax[0]:  # MaskNet's softmax runs over its last (filter) axis
                        top = row.max()
                        total = np.float32(0)
                        for c in range(n_mask):
                            row[c] = np.exp(row[c] - top)
                            total += row[c]
                        for c in range(n_mask):
                            row[c] /= total
                    else:
                        for c in range(n_mask):
                            row[c] = max(row[c], np.float32(0))
                    dest = masked[t * n_spks + s]
                    dest[:] = 0
                    for i in range(n_streams):  # the streams' masked encodings add up
                        for c in range(n_filters):
                            dest[c] += row[i * n_filters + c] * enc[t, i * n_filters + c]
            _gemm(masked, w_decoder[e], pieces, False, scalars, sizes)  # [n*C, hops*S]
            overlap[: hops - 1] = tail[e]
            overlap[hops - 1 :] = 0
            for t in range(n):  # hop q of frame t lands on output hop t + q
                for s in range(n_spks):
                    piece = pieces[t * n_spks + s]
                    for q in range(hops):
                        for i in range(hop):
                            overlap[t + q, s, i] += piece[q * hop + i]
            for t in range(n):
                for i in range(hop):
                    for s in range(n_spks):
                        out[(done + t) * hop + i, e, s] = overlap[t, s, i] + decoder_bias[e]
            tail[e] = overlap[n:]
        done += n
    position[_FRAMES_DONE] += n_frames


@numba.njit(cache=True)
def _process(kernel, chunk):  # noqa: ANN001, ANN202 (numba)
    """Append ``chunk`` ``[m, 2]`` to the samples waiting; separate every frame now complete.

    Returns ``[n * S, 2, C]``: the ``n`` frames' output hops (``n`` may be 0). The inbox holds
    :data:`MAX_FRAMES` frames; a longer chunk is taken in as many pieces.
    """
    _, counters, tail, inbox = kernel.state
    window, hop, n_spks = kernel.front[0].shape[1] // 2, tail.shape[3], tail.shape[2]
    waiting = counters[_WAITING]
    total = waiting + chunk.shape[0]
    n_total = (total - window) // hop + 1 if total >= window else 0
    out = np.empty((n_total * hop, 2, n_spks), np.float32)
    read = produced = 0
    while read < chunk.shape[0]:
        take = min(chunk.shape[0] - read, inbox.shape[0] - waiting)
        inbox[waiting : waiting + take] = chunk[read : read + take]
        waiting += take
        read += take
        if waiting >= window:
            n = (waiting - window) // hop + 1
            _separate_frames(kernel, inbox, n, out[produced * hop : (produced + n) * hop])
            produced += n
            used = n * hop
            for i in range(waiting - used):  # the next frame's first samples move to the front
                inbox[i] = inbox[used + i]
            waiting -= used
    counters[_WAITING] = waiting
    return out


def _round_up(nbytes: int, unit: int) -> int:
    return -(-nbytes // unit) * unit


class _Arena:
    """One anonymous memory map, aligned to :data:`HUGE_PAGE` and asked to be backed by huge pages,
    holding copies of the kernel's weights and depthwise pasts.

    Every 2 ms chunk reads all the weights (4.3 MB at the published size) and a few rows of the
    pasts (4.4 MB) from L3: in 4 KB pages that is more than 2000 pages a chunk, more than the
    core's TLB holds, so each page costs a page walk; in 2 MB pages it is five (2 ms chunks:
    RTF 0.1002 -> 0.0940, 8 ms: 0.0383 -> 0.0349 on this project's machine, interleaved medians
    of 5). Where the OS has no transparent huge pages (``never``, or not Linux) the arena is
    plain memory: same results, a little slower.

    Arguments
    ---------
    parts : tuple of tuples
        The kernel's argument groups; :attr:`parts` is the same with every numpy array replaced
        by a C-ordered copy in the arena (each aligned to a small page), other items as they are.
    """

    def __init__(self, parts: tuple[tuple, ...]) -> None:
        nbytes = sum(_round_up(a.nbytes, _PAGE) for part in parts for a in part if isinstance(a, np.ndarray))
        whole = _round_up(max(nbytes, 1), HUGE_PAGE)  # whole huge pages: a part page gets small ones
        private = getattr(mmap, "MAP_PRIVATE", 0) | getattr(mmap, "MAP_ANONYMOUS", 0)  # shared maps get no huge pages
        self._map = mmap.mmap(-1, whole + HUGE_PAGE, flags=private) if private else mmap.mmap(-1, whole + HUGE_PAGE)
        if hasattr(mmap, "MADV_HUGEPAGE"):  # before the first touch, so that faults take huge pages
            self._map.madvise(mmap.MADV_HUGEPAGE)
        raw = np.frombuffer(self._map, np.uint8)
        self._bytes = raw[-raw.ctypes.data % HUGE_PAGE :][:nbytes]
        self._used = 0
        self.parts = tuple(tuple(self._copy(a) if isinstance(a, np.ndarray) else a for a in part) for part in parts)

    def _copy(self, array: np.ndarray) -> np.ndarray:
        out = self._bytes[self._used : self._used + array.nbytes].view(array.dtype).reshape(array.shape)
        out[...] = array
        self._used += _round_up(array.nbytes, _PAGE)
        return out

    def huge_page_bytes(self) -> int | None:
        """Bytes of the arena that the OS backs with huge pages (``AnonHugePages`` of its mapping);
        None where ``/proc/self/smaps`` cannot tell (not Linux)."""
        try:
            with open("/proc/self/smaps") as smaps:
                text = smaps.read()
        except OSError:
            return None
        first = self._bytes.ctypes.data
        for match in re.finditer(r"^([0-9a-f]+)-([0-9a-f]+) [^\n]*\n((?:[A-Z][^\n]*\n)*)", text, re.MULTILINE):
            if int(match.group(1), 16) <= first < int(match.group(2), 16):
                found = re.search(r"^AnonHugePages:\s+(\d+) kB", match.group(3), re.MULTILINE)
                return None if found is None else int(found.group(1)) * 1024
        return None


def _numpy(tensor: torch.Tensor) -> np.ndarray:
    return np.ascontiguousarray(tensor.detach().cpu().numpy(), dtype=np.float32)


def _per_block(blocks: list, value) -> np.ndarray:  # noqa: ANN001 (a function of a block)
    """``[E, K, ...]``: ``value(block)`` (an ``[E, 1, C]`` or ``[E, ...]`` tensor) of each block, stacked."""
    return np.ascontiguousarray(np.stack([_numpy(value(block)) for block in blocks], axis=1))


def _slopes(slopes: _Slopes) -> torch.Tensor:
    return slopes.full[:, 0]  # [E, C]


def _kernel_arguments(reference: StreamingTasNet) -> tuple[tuple, tuple, tuple, int, tuple]:
    """``front, blocks, back, ring_rows, scratch`` of :func:`_separate_frames` from the reference engine's folded weights."""
    masknets, blocks = reference.masknets, reference.masknets.blocks
    n_ears, n_spks, hop = 2, reference.n_spks, reference.stride
    zeros = [torch.zeros_like(block.b_in) if block.b_dw is None else block.b_dw for block in blocks]
    lefts = np.array([block.left for block in blocks], np.int64)
    sizes = np.array([1 << int(left + MAX_FRAMES - 1).bit_length() for left in lefts], np.int64)
    front = (_numpy(reference.w_encoder), _numpy(masknets.w_bottleneck))
    vectors = [  # in the order of _VECTORS, each [E, H] per block
        [block.b_in[:, 0], _slopes(block.prelu1), block.gamma1[:, 0], block.beta1[:, 0], zero[:, 0],
         _slopes(block.prelu2), *block.tap_stack[:, 0].permute(2, 0, 1)]
        for block, zero in zip(blocks, zeros)
    ]
    kernel_blocks = (
        _per_block(blocks, lambda b: b.w_in), _per_block(blocks, lambda b: b.w_out),
        np.ascontiguousarray(np.stack([np.stack([_numpy(v) for v in per], axis=1) for per in vectors], axis=1)),
        np.array([block.dilation for block in blocks], np.int64), lefts,
        np.concatenate(([0], np.cumsum(sizes)[:-1])).astype(np.int64), sizes - 1,
    )
    n_mask = masknets.n_in
    w_mask = masknets.w_mask.reshape(n_ears, -1, n_spks, n_mask).permute(0, 2, 1, 3)  # [E, C, B, N]
    bias = reference.decoder_bias
    back = (
        _numpy(w_mask), _numpy(masknets.b_mask.reshape(n_ears, n_spks, n_mask)),
        np.array([masknets.mask_nonlinear == "softmax"]), _numpy(reference.w_decoder),
        np.zeros(n_ears, np.float32) if bias is None else _numpy(bias[:, 0]),
    )
    n_enc, n_filters = front[0].shape[2], reference.n_filters
    bottleneck, hidden = kernel_blocks[0].shape[2:]
    hops = reference.hops_per_window
    f32 = np.float32
    scratch = (
        np.zeros((MAX_FRAMES, 2 * reference.window), f32), np.zeros((MAX_FRAMES, n_enc), f32),
        np.zeros((MAX_FRAMES, n_enc), f32), np.zeros((MAX_FRAMES, bottleneck), f32),
        np.zeros((MAX_FRAMES, hidden), f32), np.zeros((n_spks, MAX_FRAMES, n_mask), f32),
        np.zeros((MAX_FRAMES * n_spks, n_filters), f32), np.zeros((MAX_FRAMES * n_spks, hops * hop), f32),
        np.zeros((MAX_FRAMES + hops - 1, n_spks, hop), f32),
        np.array([1, 0, 1], f32), np.array([ord("N"), 0, 0, 0], np.int32),
    )
    return front, kernel_blocks, back, int(sizes.sum()), scratch


class NumbaStreamingTasNet:
    """A causal binaural TasNet on a stream, each chunk one compiled call (see the module docstring).

    The interface of :class:`binaural.realtime.streaming.StreamingTasNet`: ``process_chunk`` takes any number of new
    samples ``[time, 2]`` and returns the separated samples now final ``[time', 2, n_spks]``
    (torch tensors, CPU, float32), ``flush`` ends the stream, ``reset`` starts a new one.

    Arguments
    ---------
    model : ParallelTasNet, IndependentTasNet or StreamingTasNet
        Causal (``causal: True``, ``norm_type: cLN``), as :func:`binaural.realtime.streaming.check_streamable`
        requires; or the reference engine already built from one.
    """

    def __init__(self, model: BinauralTasNet | StreamingTasNet) -> None:
        reference = model if isinstance(model, StreamingTasNet) else StreamingTasNet(model, device="cpu")
        self.window: int = reference.window
        self.stride: int = reference.stride
        self.n_spks: int = reference.n_spks
        self.hops_per_window: int = reference.hops_per_window
        self.decoder_bias = None if reference.decoder_bias is None else reference.decoder_bias.detach().cpu()
        front, blocks, back, ring_rows, self._scratch = _kernel_arguments(reference)
        ring = np.zeros((2, ring_rows, blocks[0].shape[3]), np.float32)  # [E, rows, H]
        self._arena = _Arena((front, blocks, back, (ring,)))
        self._front, self._blocks, self._back, (self._ring,) = self._arena.parts
        self.reset()

    def huge_page_bytes(self) -> int | None:
        """Bytes of the weights and depthwise pasts in huge pages (see :class:`_Arena`); None if unknown."""
        return self._arena.huge_page_bytes()

    def reset(self) -> None:
        """Start a new stream: the pending samples, depthwise pasts and decoder tail back to zero."""
        self._ring[...] = 0
        self._tail = np.zeros((2, self.hops_per_window - 1, self.n_spks, self.stride), np.float32)
        inbox = np.zeros(((MAX_FRAMES - 1) * self.stride + self.window, 2), np.float32)
        state = (self._ring, np.zeros(2, np.int64), self._tail, inbox)
        self._kernel = _Kernel(self._front, self._blocks, self._back, state, self._scratch)
        self.received = 0
        self.emitted = 0
        self._as_torch = True

    def latency(self, chunk: int) -> int:
        """Algorithmic latency (samples) for chunks of ``chunk`` samples (see :func:`binaural.realtime.streaming.algorithmic_latency`)."""
        return algorithmic_latency(self.window, self.stride, chunk)

    def process_chunk(self, chunk: torch.Tensor | np.ndarray) -> torch.Tensor | np.ndarray:
        """Feed the next ``[time, 2]`` samples; returns the newly final ``[time', 2, n_spks]``.

        A numpy chunk gives a numpy array (what an audio callback hands over and wants back, with
        no conversion in the real-time path); a torch tensor gives a CPU torch tensor. ``flush``
        returns the type the last chunk got.
        """
        as_torch = self._as_torch = isinstance(chunk, torch.Tensor)
        samples = np.ascontiguousarray(chunk.detach().cpu().numpy() if as_torch else chunk, dtype=np.float32)
        if samples.ndim != 2 or samples.shape[1] != 2:
            raise ValueError(f"a chunk is [time, 2] (left, right); got shape {tuple(samples.shape)}")
        out = _process(self._kernel, samples)
        self.received += samples.shape[0]
        self.emitted += out.shape[0]
        return torch.from_numpy(out) if as_torch else out

    def flush(self) -> torch.Tensor | np.ndarray:
        """End of stream: the remaining ``[time', 2, n_spks]`` (decoder tail, then zeros as offline).

        A numpy array if the last chunk was one, else a torch tensor; the next chunk starts a new stream.
        """
        as_torch = self._as_torch
        out = end_of_stream(self.received - self.emitted, torch.from_numpy(self._tail.copy()), self.emitted > 0,
                            self.window - self.stride, self.decoder_bias)
        self.reset()
        return out if as_torch else out.numpy()
