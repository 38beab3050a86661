"""Builds libattnscope.so with CMake from the repository this folder lives in, and ships it
inside the package (the Python side loads it with ctypes)."""
import os
import shutil
import subprocess

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.dist import Distribution

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


setup(cmdclass={"build_py": BuildWithLibrary}, distclass=BinaryDistribution)
