"""The heap policy of the torch recommenders (:mod:`hmspar.memory`): while it holds, a block above glibc's mmap
threshold comes from the heap and stays there once freed; leaving restores glibc's mapping of large blocks;
it can be turned off; and it changes no fitted byte."""

from __future__ import annotations

import ctypes

import pytest

from hmspar import memory

pytestmark = pytest.mark.skipif(memory._glibc() is None, reason="needs glibc's mallopt")

BLOCK = 64 << 20   # above glibc's largest mmap threshold (32 MiB): mmap-ed unless the policy holds


class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                                     "fsmblks", "uordblks", "fordblks", "keepcost")]


def libc() -> ctypes.CDLL:
    c = memory._glibc()
    if not hasattr(c, "mallinfo2"):
        pytest.skip("needs glibc >= 2.33 (mallinfo2)")
    c.mallinfo2.restype = MallInfo2
    c.posix_memalign.argtypes = [ctypes.POINTER(ctypes.c_void_p), ctypes.c_size_t, ctypes.c_size_t]
    c.free.argtypes = [ctypes.c_void_p]
    return c


def hold_block() -> tuple[int, int, int]:
    """Allocate a ``BLOCK`` as torch's CPU allocator does (``posix_memalign``, 64-byte alignment) and free it:
    (growth of the mmap-ed bytes while held, heap bytes in use while held minus before, heap size after the
    free minus before: negative when glibc trimmed the heap)."""
    c = libc()
    before = c.mallinfo2()
    block = ctypes.c_void_p()
    assert c.posix_memalign(ctypes.byref(block), 64, BLOCK) == 0
    held = c.mallinfo2()
    c.free(block)
    after = c.mallinfo2()
    return held.hblkhd - before.hblkhd, held.uordblks - before.uordblks, after.arena - before.arena


def test_a_large_block_comes_from_the_heap_and_stays_while_the_policy_holds():
    mapped, _, _ = hold_block()
    assert mapped >= BLOCK                                     # glibc's default: its own mapping
    with memory.heap_reuse() as acting:
        assert acting
        mapped, in_heap, kept = hold_block()
        assert mapped == 0 and in_heap >= BLOCK                # from the heap,
        assert kept >= 0                                       # which is not trimmed when the block is freed
        with memory.heap_reuse():                              # nested: the outer level keeps the policy
            pass
        assert hold_block()[0] == 0
    assert hold_block()[0] >= BLOCK                            # leaving: large blocks are mapped again


def test_the_environment_turns_it_off(monkeypatch):
    monkeypatch.setenv(memory.ENV, "0")
    assert not memory.enabled()
    with memory.heap_reuse() as acting:
        assert not acting and hold_block()[0] >= BLOCK
    assert memory.enabled({})


def test_a_fit_is_byte_identical_with_and_without(monkeypatch):
    from hmspar.rec.peers.sasrec import SASRec
    from rec_tiny import tiny_config, tiny_log

    data = tiny_log()

    def weights() -> bytes:
        model = SASRec(tiny_config(SASRec), seed=0).fit(data.train, data.items, data.val)
        return b"".join(v.numpy().tobytes() for v in model.module_.state_dict().values())

    on = weights()
    monkeypatch.setenv(memory.ENV, "0")
    assert weights() == on
