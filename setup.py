"""Builds the private compiled fast paths, bareprop.fast._kernel and bareprop.fast._conv (src/bareprop/fast/).

Everything else about the package is in pyproject.toml. The extension is optional: it is built
with OpenMP where the compiler has it, without where it has not, and skipped (with a warning) where
it cannot be built at all; bareprop then trains on its NumPy paths, which give the same results.
"""

import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

OPENMP = {"msvc": (["/openmp"], [])}  # compiler type -> (compile flags, link flags)
OPTIMIZE = {"msvc": ["/O2"]}


class BuildKernel(build_ext):
    """Try OpenMP first, then without it; if neither builds, go on without the extension."""

    def build_extension(self, ext):
        kind = self.compiler.compiler_type
        base_compile = OPTIMIZE.get(kind, ["-O3", "-Wno-psabi"])
        omp_compile, omp_link = OPENMP.get(kind, (["-fopenmp"], ["-fopenmp"]))
        attempts = [(base_compile + omp_compile, omp_link, "with OpenMP"), (base_compile, [], "without OpenMP")]
        for compile_args, link_args, how in attempts:
            ext.extra_compile_args, ext.extra_link_args = compile_args, link_args
            try:
                super().build_extension(ext)
                print(f"bareprop: built {ext.name} {how}")
                return
            except Exception as error:  # CompileError, LinkError, a missing compiler ...
                print(f"bareprop: could not build {ext.name} {how}: {error}", file=sys.stderr)
        print(f"bareprop: going on without {ext.name}: training uses the readable path", file=sys.stderr)


setup(
    ext_modules=[
        Extension(
            "bareprop.fast._kernel",
            sources=["src/bareprop/fast/_kernel.c"],
            depends=["src/bareprop/fast/_kernel_body.h", "src/bareprop/fast/_kernel_types.h",
                     "src/bareprop/fast/_kernel_builds.h"],
        ),
        Extension("bareprop.fast._conv", sources=["src/bareprop/fast/_conv.c"], depends=["src/bareprop/fast/_conv_body.h"]),
    ],
    cmdclass={"build_ext": BuildKernel},
)
