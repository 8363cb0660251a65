"""The build of modelotel's optional statistics kernel (the rest of the metadata: pyproject.toml).

``src/modelotel/stats/_kernel.c`` is an accelerator: without it numpy computes the same
statistics with the same results, slower per call (docs/kernel.md has the figures). So the
build tries to compile it and never lets it stop an install, unless asked to:

``MODELOTEL_BUILD_KERNEL``
    ``auto`` (or unset): compile it when the C compiler works; when it does not, print one
    line saying why and build modelotel without it. Off on Python implementations other
    than CPython.
    ``0`` (``false``, ``no``, ``off``): do not compile it: a pure wheel (``py3-none-any``)
    that installs anywhere.
    ``1`` (``true``, ``yes``, ``on``): compile it or fail the build (CI, release wheels).

Optimization flags are chosen per compiler: ``/O2`` for MSVC, ``-O3`` for a compiler that
accepts it (gcc, clang and most others; checked by compiling an empty file), none otherwise.
"""

from __future__ import annotations

import os
import platform
import sys
import tempfile
from typing import Any

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext
from setuptools.errors import BaseError, CCompilerError

SWITCH = "MODELOTEL_BUILD_KERNEL"
KERNEL = Extension("modelotel.stats._kernel", sources=["src/modelotel/stats/_kernel.c"])


def kernel_mode(environ: Any = os.environ) -> str:
    """``"auto"``, ``"off"`` or ``"required"``, from ``MODELOTEL_BUILD_KERNEL``."""
    raw = environ.get(SWITCH, "").strip().lower()
    if raw in ("", "auto"):
        return "auto" if platform.python_implementation() == "CPython" else "off"
    if raw in ("0", "false", "no", "off"):
        return "off"
    if raw in ("1", "true", "yes", "on"):
        return "required"
    sys.exit(f"{SWITCH}={raw!r}: use auto (the default), 0 (no kernel) or 1 (kernel required)")


def optimize_flags(compiler: Any) -> list[str]:
    """The optimization flags this compiler takes (see the module docstring)."""
    if compiler.compiler_type == "msvc":
        return ["/O2"]
    with tempfile.TemporaryDirectory() as tmp:
        probe = os.path.join(tmp, "probe.c")
        with open(probe, "w", encoding="ascii") as f:
            f.write("int modelotel_probe(void) { return 0; }\n")
        try:
            compiler.compile([probe], output_dir=tmp, extra_postargs=["-O3"])
        except (CCompilerError, BaseError, OSError):
            return []
    return ["-O3"]


class BuildKernel(build_ext):
    """``build_ext`` that picks the flags per compiler and, unless required, survives a
    failed compile (no compiler, no Python headers, a compiler that rejects the source)."""

    def build_extension(self, ext: Extension) -> None:
        try:
            ext.extra_compile_args = [*ext.extra_compile_args, *optimize_flags(self.compiler)]
            super().build_extension(ext)
        except (CCompilerError, BaseError, OSError) as exc:
            reason = " ".join(str(exc).split()) or type(exc).__name__
            if kernel_mode() == "required":
                print(f"modelotel: {SWITCH}=1 and the statistics kernel did not compile: "
                      f"{reason}", file=sys.stderr)
                raise
            # an older build of the kernel must not be shipped in place of this one
            stale = self.get_ext_fullpath(ext.name)
            if os.path.exists(stale):
                os.remove(stale)
            print(f"modelotel: the optional statistics kernel was not compiled ({reason}); "
                  "installing without it: numpy computes the same statistics, slower per call. "
                  f"For the kernel: install a C compiler and Python headers, then reinstall "
                  f"with pip install --no-cache-dir. {SWITCH}=0 skips it on purpose.",
                  file=sys.stderr)


if __name__ == "__main__":  # setuptools' build backend runs this file as __main__
    setup(
        ext_modules=[] if kernel_mode() == "off" else [KERNEL],
        cmdclass={"build_ext": BuildKernel},
    )
