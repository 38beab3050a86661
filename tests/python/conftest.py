"""ctest runs the model and measure tests once per kernel path (ATS_KERNEL=generic|avx2|avx512|
neon, see CMakeLists.txt). A path this CPU lacks makes attnscope exit 2 naming the ones it has;
then every test of that run is skipped, saying so, instead of failing on the machine."""
import os
import subprocess

import pytest


def _kernel_unsupported():
    path = os.environ.get("ATS_KERNEL")
    if not path:
        return None
    exe = os.environ.get("ATTNSCOPE", "build/attnscope")
    p = subprocess.run([exe, "--version"], capture_output=True, text=True)
    if p.returncode == 2:
        return p.stderr.strip()
    return None


def pytest_collection_modifyitems(config, items):
    why = _kernel_unsupported()
    if why:
        skip = pytest.mark.skip(reason=f"ATS_KERNEL={os.environ['ATS_KERNEL']}: {why}")
        for item in items:
            item.add_marker(skip)


@pytest.fixture(scope="module")
def package():
    """The Python package (python/attnscope over the built libattnscope.so), or a skip when the
    shared library is not built in this configuration."""
    import sys
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
        os.path.abspath(__file__)))), "python"))
    try:
        import attnscope
    except Exception as e:
        pytest.skip(f"the Python package does not load: {e}")
    return attnscope
