"""Builds libattnscope.so with CMake from the repository this folder lives in, and ships it
inside the package (the Python side loads it with ctypes)."""
import os
import shutil
import subprocess

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.dist import Distribution

try:
    from setuptools.command.bdist_wheel import bdist_wheel
except ImportError:  # setuptools < 70.1
    from wheel.bdist_wheel import bdist_wheel

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


class BuildWithLibrary(build_py):
    def run(self):
        super().run()
        build_dir = os.path.join(HERE, "build-cmake")
        subprocess.check_call(["cmake", "-S", ROOT, "-B", build_dir, "-DCMAKE_BUILD_TYPE=Release"])
        subprocess.check_call(["cmake", "--build", build_dir, "--target", "attnscope_shared",
                               "-j", str(os.cpu_count() or 2)])
        target = os.path.join(self.build_lib, "attnscope")
        os.makedirs(target, exist_ok=True)
        shutil.copy2(os.path.join(build_dir, "libattnscope.so"), os.path.join(target, "libattnscope.so"))


class BinaryDistribution(Distribution):
    """The package carries a native library: wheels are platform wheels."""

    def has_ext_modules(self):
        return True


class AnyPythonWheel(bdist_wheel):
    """The library is loaded with ctypes, not built against Python's C API: one wheel serves
    every Python 3 on the platform (py3-none-<platform>)."""

    def get_tag(self):
        return ("py3", "none", super().get_tag()[2])


setup(cmdclass={"build_py": BuildWithLibrary, "bdist_wheel": AnyPythonWheel},
      distclass=BinaryDistribution)
