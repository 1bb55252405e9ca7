"""The ss2d C ABI's structs and signatures for ctypes (standard library only), shared by
golden.py and fork.py. Mirrors include/ss2d.h."""
import ctypes as C

MAX_DIMS = 6


class Tensor(C.Structure):
    """ss2d_tensor / ss2d_const_tensor (same layout; constness is C-side only)."""

    _fields_ = [
        ("data", C.c_void_p),
        ("ndim", C.c_size_t),
        ("shape", C.c_size_t * MAX_DIMS),
        ("strides", C.c_ssize_t * MAX_DIMS),
    ]


ITEM_FN = C.CFUNCTYPE(None, C.c_void_p, C.c_size_t)
PARALLEL_FOR_FN = C.CFUNCTYPE(None, C.c_void_p, C.c_size_t, ITEM_FN, C.c_void_p)


class Exec(C.Structure):
    _fields_ = [
        ("n_threads", C.c_size_t),
        ("parallel_for", PARALLEL_FOR_FN),
        ("parallel_for_ctx", C.c_void_p),
        ("n_items", C.c_size_t),
        ("scratch", C.c_void_p),
        ("scratch_len", C.c_size_t),
    ]


PT = C.POINTER(Tensor)


class ScanInputs(C.Structure):
    _fields_ = [
        ("u", PT),
        ("delta", PT),
        ("A", PT),
        ("B", PT),
        ("C", PT),
        ("D", PT),
        ("z", PT),
        ("delta_bias", PT),
        ("initial_state", PT),
        ("delta_softplus", C.c_int),
    ]


class NamedTensor(C.Structure):
    _fields_ = [("name", C.c_char_p), ("tensor", Tensor)]


class LayerConfig(C.Structure):
    _fields_ = [
        ("d_model", C.c_size_t),
        ("d_state", C.c_size_t),
        ("ssm_ratio", C.c_double),
        ("dt_rank", C.c_size_t),
        ("d_conv", C.c_size_t),
        ("conv_bias", C.c_int),
        ("forward_type", C.c_char_p),
        ("channel_first", C.c_int),
    ]


def load_lib(path):
    lib = C.CDLL(path)
    lib.ss2d_version.restype = C.c_char_p
    lib.ss2d_isa.restype = C.c_char_p
    lib.ss2d_last_error.restype = C.c_char_p
    lib.ss2d_status_name.restype = C.c_char_p
    lib.ss2d_status_name.argtypes = [C.c_int]
    lib.ss2d_selective_scan.argtypes = [C.POINTER(ScanInputs), PT, PT, C.POINTER(Exec)]
    lib.ss2d_scan_scratch_size.argtypes = [
        C.POINTER(ScanInputs),
        C.POINTER(Exec),
        C.POINTER(C.c_size_t),
    ]
    lib.ss2d_layer_create.argtypes = [
        C.POINTER(LayerConfig),
        C.POINTER(NamedTensor),
        C.c_size_t,
        C.c_char_p,
        C.POINTER(C.c_void_p),
    ]
    lib.ss2d_layer_forward.argtypes = [C.c_void_p, PT, PT, C.POINTER(Exec)]
    lib.ss2d_layer_free.argtypes = [C.c_void_p]
    lib.ss2d_layer_free.restype = None
    return lib
