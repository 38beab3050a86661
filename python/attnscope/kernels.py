"""The kernel path: the instruction set attnscope's inner loops run on (see
include/attnscope/core.h). The library picks the fastest this CPU supports, or the one the
environment variable ATS_KERNEL names; set_kernel_path() chooses one for the rest of the
process, e.g. to compare the portable path with the vectorised ones."""
import ctypes

from ._lib import Error, P, _fn, check

_name = _fn("ats_kernel_path_name", ctypes.c_char_p, ctypes.c_int)
_supported = _fn("ats_kernel_path_supported", ctypes.c_int, ctypes.c_int)
_get = _fn("ats_kernel_path_get", ctypes.c_int)
_set = _fn("ats_kernel_path_set", ctypes.c_int, ctypes.c_int, P(Error))
_check_env = _fn("ats_kernel_path_check_env", ctypes.c_int, P(Error))
_version = _fn("ats_version", ctypes.c_char_p)


def _paths():
    names = []
    while _name(len(names)) is not None:  # the library names its paths; NULL past the last
        names.append(_name(len(names)).decode())
    return tuple(names)


PATHS = _paths()


def version():
    """The C library's version, "MAJOR.MINOR.PATCH"."""
    return _version().decode()


def kernel_paths():
    """The kernel paths this CPU and build support, e.g. ("generic", "avx2", "avx512")."""
    return tuple(name for p, name in enumerate(PATHS) if _supported(p))


def kernel_path():
    """The kernel path in use ("generic", "avx2", "avx512" or "neon")."""
    return PATHS[_get()]


def set_kernel_path(name):
    """Runs every later call on the path `name` (for the whole process). A path this CPU lacks
    raises AttnscopeError naming the ones it supports."""
    err = Error()
    if name not in PATHS:
        raise ValueError(f"kernel path {name!r}: one of {', '.join(PATHS)}")
    check(_set(PATHS.index(name), ctypes.byref(err)), err)


def check_kernel_env():
    """Raises AttnscopeError when ATS_KERNEL names no path or one this CPU lacks."""
    err = Error()
    check(_check_env(ctypes.byref(err)), err)
