r"""The reference tape: the baseline pass recorded, replayed in the input pass.

Rules that need the baseline's values (DeepLIFT) get them from one extra
forward pass on the baseline, without gradients, that records the inputs (and
output) of every op the rule treats, in call order. The input pass pairs each
treated op with the next record: same op name, shapes that broadcast. A model
whose control flow depends on the input values breaks the pairing, and the
tape says so.

Frames: the top level is one frame (recording in the baseline pass, replaying
in the input pass). A *paired* composite (softmax with its shared shift) runs
its own local pair of passes inside the input pass: it pushes a recording
frame for its baseline side, then a replaying frame over those records.

Copy on write: a model may write in place into a tensor whose values a
record still holds (``x += block(x)``, ``h.mul_(g)``); before such a write
the recording pass gives every record sharing the written storage its own copy
(:meth:`ReferenceTape.protect`).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from torch import Tensor

__all__ = ["Record", "Frame", "ReferenceTape", "PairingError"]


class PairingError(RuntimeError):
    """The input pass's ops do not pair with the baseline pass's: the model's
    control flow depends on its input values (or, with a batch-1 baseline, the
    model folds its batch; the backend then retries with a full-batch one)."""


@dataclass
class Record:
    """The inputs (and output) of one treated op in a pass, detached."""

    name: str
    tensors: tuple[Tensor, ...]
    out: Tensor | None = None


@dataclass
class Frame:
    """One level of pairing: the top-level passes, or the two local passes of
    a composite whose constants are shared between passes."""

    recording: bool
    queue: list[Record] = field(default_factory=list)
    index: int = 0


def _broadcastable(a: Sequence[int], b: Sequence[int]) -> bool:
    """Whether two shapes broadcast (``torch.broadcast_shapes`` without its
    cost: it runs through torch._refs, ~70 us a call, once per paired op)."""
    return all(x == y or x == 1 or y == 1 for x, y in zip(reversed(a), reversed(b)))


class ReferenceTape:
    """Records of a baseline pass, and the position of the input pass in them.

    Args:
        rule_name (str): the rule's class name (for error messages).
        recording (bool): this pass records (the baseline pass).
        references (list of Record, optional): the records of a baseline
            pass, for the input pass.
    """

    def __init__(self, rule_name: str, recording: bool, references: list[Record] | None = None) -> None:
        self.rule_name = rule_name
        self.frames: list[Frame] = [Frame(recording, [] if recording else list(references or []))]
        self.has_references = recording or references is not None

    @property
    def recording(self) -> bool:
        """Whether the current frame records."""
        return self.frames[-1].recording

    @property
    def any_recording(self) -> bool:
        return any(frame.recording for frame in self.frames)

    @property
    def records(self) -> list[Record]:
        """What a recording pass recorded (top level)."""
        return self.frames[0].queue

    @contextmanager
    def frame(self, frame: Frame) -> Iterator[Frame]:
        """Run with ``frame`` on top (a composite's local pass)."""
        self.frames.append(frame)
        try:
            yield frame
        finally:
            self.frames.pop()

    def record(self, name: str, tensors: Sequence[Any], out: Tensor | None = None, copy: bool = False) -> None:
        """Record an op's inputs (``copy``: a copy of them, for an op that
        writes into its input) and output."""
        kept = tuple((t.detach().clone() if copy else t.detach()) if isinstance(t, Tensor) else t for t in tensors)
        self.frames[-1].queue.append(Record(name, kept, None if out is None else out.detach()))

    def next(self, name: str, tensors: Sequence[Any]) -> Record:
        """The record paired with the input pass's next treated op."""
        frame = self.frames[-1]
        if not self.has_references and len(self.frames) == 1:
            raise RuntimeError(f"{self.rule_name} needs a reference pass.")
        if frame.index >= len(frame.queue):
            raise PairingError(
                f"The model applied more treated ops to the inputs ({frame.index + 1}+, now '{name}') than to "
                f"the baselines ({len(frame.queue)}). {self.rule_name} pairs each op with the same "
                "op on the baseline, so the model's control flow must not depend on the input values."
            )
        rec = frame.queue[frame.index]
        frame.index += 1
        ok = rec.name == name and len(rec.tensors) == len(tensors)
        if ok:
            for r, t in zip(rec.tensors, tensors):
                if isinstance(r, Tensor) and isinstance(t, Tensor) and not _broadcastable(r.shape, t.shape):
                    ok = False
        if not ok:
            shapes = [tuple(t.shape) for t in tensors if isinstance(t, Tensor)]
            ref_shapes = [tuple(t.shape) for t in rec.tensors if isinstance(t, Tensor)]
            raise PairingError(
                f"Op {frame.index} differs between the input pass ({name}, shapes {shapes}) and the "
                f"baseline pass ({rec.name}, shapes {ref_shapes}): the model's control flow depends on "
                "its input values, which DeepLIFT's reference pass cannot follow."
            )
        return rec

    def check_complete(self) -> None:
        """Raise if the baseline pass saw more treated ops than the input pass."""
        frame = self.frames[0]
        if not frame.recording and self.has_references and frame.index != len(frame.queue):
            raise PairingError(
                f"The model applied {frame.index} treated ops to the inputs but {len(frame.queue)} to the "
                "baselines; the model's control flow must not depend on the input values."
            )

    def protect(self, targets: Sequence[Any]) -> None:
        """Give every recorded tensor that shares storage with ``targets`` its
        own copy (before something writes into ``targets``)."""
        ptrs = {t.untyped_storage().data_ptr() for t in targets if isinstance(t, Tensor)}
        if not ptrs:
            return

        def own(t: Any) -> Any:
            if isinstance(t, Tensor) and t.untyped_storage().data_ptr() in ptrs:
                return t.clone()
            return t

        for frame in self.frames:
            if frame.recording:
                for i, rec in enumerate(frame.queue):
                    tensors, out = tuple(own(t) for t in rec.tensors), own(rec.out)
                    if out is not rec.out or any(a is not b for a, b in zip(tensors, rec.tensors)):
                        frame.queue[i] = Record(rec.name, tensors, out)
