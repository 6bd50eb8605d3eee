r"""Linear and meta ops of the default op table.

*Linear* ops are linear in their input-dependent tensor arguments once the
other arguments are fixed (views, indexing, concatenation, sums and means,
convolutions, average pooling, BatchNorm in eval mode, dropout given its mask,
``F.linear`` with a constant weight, interpolation, padding). They keep their
ordinary gradient under every rule.

*Meta* ops carry no numeric dependence that a gradient could follow: sizes,
dtypes, devices, ``zeros_like``/``ones_like`` and the other constructors,
comparisons and logical ops (piecewise constant), ``detach``. Their results do
not depend on the inputs for the purpose of the modified chain rule, so
``h * torch.ones_like(h)`` is a product with a constant, not of two
input-dependent values.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from captum_unified.ops.table import OpEntry, OpKind, op_name

__all__ = ["linear_entries", "meta_entries", "GATE_PRESERVING"]

LINEAR_NAMES = """
add sub subtract rsub neg negative positive sum nansum mean nanmean cumsum diff trace diag diagonal
diag_embed diagflat tril triu flip fliplr flipud roll rot90 reshape view view_as reshape_as flatten
unflatten squeeze unsqueeze permute transpose t movedim moveaxis swapaxes swapdims expand expand_as
broadcast_to repeat repeat_interleave tile contiguous clone narrow narrow_copy select index_select
gather take take_along_dim masked_select masked_fill masked_scatter scatter scatter_add scatter_reduce
index_add index_copy index_fill index_put index_reduce put __getitem__ __setitem__ copy_ cat concat
concatenate stack hstack vstack dstack column_stack row_stack split split_with_sizes chunk unbind
tensor_split hsplit vsplit dsplit unfold fold pad interpolate upsample upsample_nearest upsample_bilinear
pixel_shuffle pixel_unshuffle channel_shuffle native_channel_shuffle conv1d conv2d conv3d conv_transpose1d
conv_transpose2d conv_transpose3d conv_tbc avg_pool1d avg_pool2d avg_pool3d adaptive_avg_pool1d
adaptive_avg_pool2d adaptive_avg_pool3d dropout dropout1d dropout2d dropout3d alpha_dropout
feature_alpha_dropout embedding float double half bfloat16 to type_as type cpu cuda where
__add__ __radd__ __iadd__ __sub__ __rsub__ __isub__ __neg__ __pos__ __reversed__ unsafe_split
unsafe_chunk as_strided expand_copy view_copy permute_copy squeeze_copy unsqueeze_copy t_copy
transpose_copy select_copy slice_copy index_put_ fill_diagonal_ zero_ fill_ new_tensor resolve_conj
resolve_neg conj real imag affine_grid grid_sample native_dropout sum_to_size broadcast_tensors as_tensor
atleast_1d atleast_2d atleast_3d _pack_padded_sequence _pad_packed_sequence
""".split()

#: Linear ops through which a gate (a sigmoid / softmax output) stays a gate
#: (for the ``"gate"`` product policy), by entry name.
GATE_PRESERVING = frozenset(
    """
Tensor.__getitem__ Tensor.view Tensor.reshape torch.reshape Tensor.transpose torch.transpose Tensor.permute
torch.permute Tensor.contiguous Tensor.clone torch.clone Tensor.expand Tensor.expand_as Tensor.squeeze
Tensor.unsqueeze torch.squeeze torch.unsqueeze F.dropout Tensor.chunk torch.chunk Tensor.split torch.split
Tensor.unbind torch.unbind Tensor.flatten torch.flatten Tensor.unflatten Tensor.to Tensor.float Tensor.double
Tensor.narrow torch.narrow Tensor.select torch.select Tensor.T Tensor.mT
""".split()
)

#: Tensor properties whose value is a linear function of the tensor.
LINEAR_PROPERTIES = ("T", "mT", "H", "mH", "real", "imag")

META_NAMES = """
size dim ndimension numel nelement is_floating_point is_complex is_contiguous is_signed is_nonzero
is_same_size is_set_to is_shared is_pinned is_inference element_size stride storage_offset data_ptr
get_device item tolist numpy __len__ __bool__ __format__ __repr__ __hash__ __index__ __int__ __float__
__complex__ __array__ __contains__ __deepcopy__ __reduce_ex__ __setstate__ __dir__ __iter__
__array_wrap__ __eq__ __ne__ __lt__ __le__ __gt__ __ge__ __and__ __or__ __xor__ __invert__
__rand__ __ror__ __rxor__ __iand__ __ior__ __ixor__ __lshift__ __rshift__ eq ne lt le gt ge equal
allclose isclose isnan isinf isfinite isposinf isneginf isreal logical_and logical_or logical_xor
logical_not bitwise_and bitwise_or bitwise_xor bitwise_not argmax argmin argsort argwhere nonzero
count_nonzero any all bucketize searchsorted unique unique_consecutive bincount histc zeros_like
ones_like empty_like full_like rand_like randn_like randint_like new_zeros new_ones new_empty new_full
detach detach_ requires_grad_ retain_grad register_hook register_post_accumulate_grad_hook
is_tensor is_storage numel_ result_type can_cast promote_types dim_order untyped_storage
storage _is_view is_leaf data_ptr __cuda_array_interface__ __dlpack__ __dlpack_device__ pin_memory
share_memory_ record_stream backward
""".split()


def _functions(names, namespaces):
    found = []
    for name in names:
        for ns in namespaces:
            f = getattr(ns, name, None)
            if f is not None and callable(f) and not isinstance(f, type):
                found.append(f)
    return found


def _properties():
    base = torch._C.TensorBase
    linear: list[tuple[str, Callable]] = []
    meta: list[tuple[str, Callable]] = []
    for name in dir(base):
        attr = getattr(base, name, None)
        if attr is None or type(attr).__name__ != "getset_descriptor":
            continue
        (linear if name in LINEAR_PROPERTIES else meta).append((name, attr.__get__))
    return linear, meta


def linear_entries() -> dict[Callable, OpEntry]:
    """Linear function objects of this torch version -> entries. In-place
    variants (``Tensor.add_``, ``Tensor.masked_fill_``, ...) stay in place:
    autograd differentiates them as they are."""
    names = LINEAR_NAMES + [n + "_" for n in LINEAR_NAMES if not n.startswith("__") and not n.endswith("_")]
    out: dict[Callable, OpEntry] = {}
    for f in _functions(names, (torch, torch.Tensor, F, torch._C._nn)):
        name = op_name(f)
        out[f] = OpEntry(name, OpKind.LINEAR, f, keeps_gate=name in GATE_PRESERVING)
    for prop, getter in _properties()[0]:
        name = f"Tensor.{prop}"
        out[getter] = OpEntry(name, OpKind.LINEAR, getter, keeps_gate=name in GATE_PRESERVING)
    return out


def meta_entries() -> dict[Callable, OpEntry]:
    """Meta function objects of this torch version -> entries."""
    out: dict[Callable, OpEntry] = {}
    for f in _functions(META_NAMES, (torch, torch.Tensor, F)):
        out[f] = OpEntry(op_name(f), OpKind.META, f)
    for name, getter in _properties()[1]:
        out[getter] = OpEntry(f"Tensor.{name}", OpKind.META, getter)
    return out
