"""Loading libnnkit and declaring every exported function.

PROTOTYPES is the one table of argtypes/restype; tests/test_bindings.py
checks that every function declared in the C headers appears in it.
"""
import ctypes
import ctypes.util
import os
import subprocess

__all__ = ["lib", "PROTOTYPES", "PACKAGE_VERSION", "load_library"]

PACKAGE_VERSION = "0.1.0"

c_float_p = ctypes.POINTER(ctypes.c_float)
c_double_p = ctypes.POINTER(ctypes.c_double)
c_int32_p = ctypes.POINTER(ctypes.c_int32)
c_size_p = ctypes.POINTER(ctypes.c_size_t)
c_void_pp = ctypes.POINTER(ctypes.c_void_p)
st = ctypes.c_int  # nnkit_status
vp = ctypes.c_void_p
sz = ctypes.c_size_t
u32 = ctypes.c_uint32
u64 = ctypes.c_uint64
i32 = ctypes.c_int32
cint = ctypes.c_int
dbl = ctypes.c_double
flt = ctypes.c_float
cstr = ctypes.c_char_p

# Callback types (must match include/nnkit/*.h).
LOG_FN = ctypes.CFUNCTYPE(None, ctypes.c_char_p, ctypes.c_void_p)

PROTOTYPES = {
    # core.h
    "nnkit_version": (cstr, []),
    "nnkit_version_number": (u32, []),
    "nnkit_status_string": (cstr, [st]),
    "nnkit_last_error": (cstr, []),
    "nnkit_clear_error": (None, []),
    "nnkit_set_num_threads": (st, [cint]),
    "nnkit_get_num_threads": (cint, []),
    # data.h
    "nnkit_dataset_from_buffers": (st, [c_void_pp, c_float_p, c_int32_p, sz, c_size_p, sz, u32]),
    "nnkit_dataset_from_targets": (st, [c_void_pp, c_float_p, c_float_p, sz, c_size_p, sz, sz]),
    "nnkit_dataset_load_idx": (st, [c_void_pp, cstr, cstr, u32]),
    "nnkit_dataset_save_idx": (st, [vp, cstr, cstr, cint]),
    "nnkit_dataset_subset": (st, [c_void_pp, vp, c_size_p, sz]),
    "nnkit_dataset_scale": (st, [vp, flt, flt]),
    "nnkit_dataset_free": (None, [vp]),
    "nnkit_dataset_count": (sz, [vp]),
    "nnkit_dataset_ndim": (sz, [vp]),
    "nnkit_dataset_dim": (sz, [vp, sz]),
    "nnkit_dataset_sample_size": (sz, [vp]),
    "nnkit_dataset_num_classes": (u32, [vp]),
    "nnkit_dataset_target_dim": (sz, [vp]),
    "nnkit_dataset_data": (c_float_p, [vp]),
    "nnkit_dataset_labels": (c_int32_p, [vp]),
    "nnkit_dataset_targets": (c_float_p, [vp]),
    "nnkit_dataset_class_counts": (st, [c_size_p, sz, vp]),
    # model.h: initializers
    "nnkit_init_create": (st, [c_void_pp, cint, dbl, dbl]),
    "nnkit_init_free": (None, [vp]),
    "nnkit_init_get_kind": (cint, [vp]),
    "nnkit_init_fill": (st, [vp, c_float_p, sz, sz, sz, u64, u64]),
    # model.h: nets
    "nnkit_net_create": (st, [c_void_pp, c_size_p, sz, u64]),
    "nnkit_net_free": (None, [vp]),
    "nnkit_net_add_dense": (st, [vp, sz]),
    "nnkit_net_add_activation": (st, [vp, cint]),
    "nnkit_net_add_leaky_relu": (st, [vp, flt]),
    "nnkit_net_set_init": (st, [vp, sz, vp, vp]),
    "nnkit_net_init_params": (st, [vp]),
    "nnkit_net_set_loss": (st, [vp, cint]),
    "nnkit_net_get_loss": (cint, [vp]),
    "nnkit_net_set_training": (None, [vp, cint]),
    "nnkit_net_is_training": (cint, [vp]),
    "nnkit_net_num_layers": (sz, [vp]),
    "nnkit_net_input_size": (sz, [vp]),
    "nnkit_net_output_size": (sz, [vp]),
    "nnkit_net_layer_shape": (st, [c_size_p, sz, c_size_p, vp, sz]),
    "nnkit_net_layer_describe": (cstr, [vp, sz]),
    "nnkit_net_layer_params": (st, [c_size_p, c_size_p, vp, sz]),
    "nnkit_net_num_params": (sz, [vp]),
    "nnkit_net_params": (c_float_p, [vp]),
    "nnkit_net_grads": (c_float_p, [vp]),
    "nnkit_net_forward": (st, [vp, c_float_p, sz, c_float_p, sz]),
    "nnkit_net_backward": (st, [vp, c_int32_p, c_float_p, c_double_p]),
    "nnkit_net_predict": (st, [c_int32_p, vp, c_float_p, sz]),
    "nnkit_net_predict_proba": (st, [c_float_p, sz, vp, c_float_p, sz]),
    "nnkit_net_evaluate": (st, [c_double_p, c_double_p, vp, vp]),
    # optim.h
    "nnkit_optimizer_create": (st, [c_void_pp, cint]),
    "nnkit_optimizer_free": (None, [vp]),
    "nnkit_optimizer_kind": (cint, [vp]),
    "nnkit_optimizer_set": (st, [vp, cint, dbl]),
    "nnkit_optimizer_get": (st, [c_double_p, vp, cint]),
    "nnkit_optimizer_bounds": (st, [c_double_p, c_double_p, cint, cint]),
    "nnkit_optimizer_step": (st, [vp, vp]),
    "nnkit_optimizer_steps": (u64, [vp]),
    # train.h
    "nnkit_trainer_create": (st, [c_void_pp, vp, vp]),
    "nnkit_trainer_free": (None, [vp]),
    "nnkit_trainer_set": (st, [vp, cint, dbl]),
    "nnkit_trainer_get": (st, [c_double_p, vp, cint]),
    "nnkit_trainer_set_logger": (None, [vp, LOG_FN, vp]),
    "nnkit_trainer_fit": (st, [vp, vp, vp]),
    "nnkit_trainer_epochs_done": (sz, [vp]),
    "nnkit_trainer_metric": (st, [c_double_p, vp, sz, cint]),
}


def _candidates():
    env = os.environ.get("NNKIT_LIBRARY")
    if env:
        yield env
        return
    here = os.path.dirname(os.path.abspath(__file__))
    root = os.path.abspath(os.path.join(here, "..", "..", ".."))
    for build in ("build", "builddir", "build-asan"):
        path = os.path.join(root, build, "lib", "libnnkit.so")
        if os.path.exists(path):
            yield path
    found = ctypes.util.find_library("nnkit")
    if found:
        yield found
    try:
        libdir = subprocess.run(["pkg-config", "--variable=libdir", "nnkit"],
                                capture_output=True, text=True, check=True).stdout.strip()
        if libdir:
            yield os.path.join(libdir, "libnnkit.so")
    except (OSError, subprocess.CalledProcessError):
        pass


def load_library():
    """Finds, loads and declares libnnkit; raises ImportError with the reason."""
    tried = []
    for path in _candidates():
        try:
            handle = ctypes.CDLL(path)
        except OSError as e:
            tried.append("%s (%s)" % (path, e))
            continue
        handle.nnkit_version.restype = ctypes.c_char_p
        version = handle.nnkit_version().decode()
        if version != PACKAGE_VERSION:
            raise ImportError(
                "nnkit: %s is version %s but this package is %s; point NNKIT_LIBRARY "
                "at a matching libnnkit.so or reinstall the package" %
                (path, version, PACKAGE_VERSION))
        missing = []
        for name, (restype, argtypes) in PROTOTYPES.items():
            fn = getattr(handle, name, None)
            if fn is None:
                missing.append(name)
                continue
            fn.restype = restype
            fn.argtypes = argtypes
        if missing:
            raise ImportError("nnkit: %s lacks %s; it is not a matching build" %
                              (path, ", ".join(missing)))
        handle._nnkit_path = path
        return handle
    raise ImportError(
        "nnkit: cannot find libnnkit.so; build it (meson setup build && ninja -C build), "
        "install it, or set NNKIT_LIBRARY to its path. Tried: %s" %
        ("; ".join(tried) if tried else "nothing found"))


lib = load_library()
