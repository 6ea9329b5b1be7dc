"""Optional compiled build: the hot modules compiled by Cython from their ``.py`` source (pure-Python mode).

Everything else about the package lives in pyproject.toml. This file only adds the extension modules:

* with Cython and a C compiler, ``pip install .`` / ``pip install -e .`` / ``python -m build`` compile the
  modules in :data:`COMPILED` (the ``.py`` files stay the only source and are installed next to them);
* without Cython, or when compilation fails, the build goes on and the package is pure Python;
* ``SAFELOAD_PURE_PYTHON=1`` in the build environment skips compilation (and at run time makes safeload
  import the ``.py`` modules even where compiled ones exist, see safeload/_build.py).

Cython's ``boundscheck`` and ``wraparound`` stay at their defaults (on), and ``annotation_typing`` is off so that
annotations never add type coercions or ``None`` checks the Python source does not have. C types come only from
explicit ``cython.locals`` declarations and ``if cython.compiled:`` branches in safeload/_vm.py's run loop
(typed positions, a typed view of the input); run as Python, safeload/_cy.py stands in for Cython. Both builds
must give the same results and errors (tests/test_builds.py).
"""

from __future__ import annotations

import os
import sys

from setuptools import setup
from setuptools.command.build_ext import build_ext

# Kept in step with safeload/_build.py's COMPILED (tests/test_builds.py checks that they agree).
COMPILED = ("safeload._budget", "safeload._opcodes", "safeload._vm", "safeload._views", "safeload._tensors",
            "safeload._containers.zip", "safeload._containers.torch", "safeload._rebuild.torch")

DIRECTIVES = {
    "language_level": 3,
    "annotation_typing": False,  # annotations are documentation, never C types or None checks
    "binding": True,  # functions stay introspectable like Python functions
    "always_allow_keywords": True,  # keyword arguments work exactly as in the source
    "boundscheck": True,  # the defaults, spelled out: the compiled VM must be exactly as safe
    "wraparound": True,
}


def _pure_requested() -> bool:
    return os.environ.get("SAFELOAD_PURE_PYTHON", "").strip() not in ("", "0")


def _warn(message: str) -> None:
    print(f"safeload setup.py: {message}; installing the pure-Python build", file=sys.stderr)


class OptionalBuildExt(build_ext):
    """build_ext that never fails the install: a module that does not compile stays pure Python."""

    def run(self) -> None:
        try:
            super().run()
        except Exception as exc:  # no compiler, no Python headers, ...
            _warn(f"compiled build failed ({type(exc).__name__}: {exc})")

    def build_extension(self, ext):  # type: ignore[no-untyped-def]
        try:
            super().build_extension(ext)
        except Exception as exc:
            _warn(f"compiling {ext.name} failed ({type(exc).__name__}: {exc})")
            return
        _write_digest(ext.name, self.get_ext_fullpath(ext.name))

    def copy_extensions_to_source(self) -> None:  # the in-place (editable) build: the digests go along
        super().copy_extensions_to_source()
        build_py = self.get_finalized_command("build_py")
        for ext in self.extensions:
            inplace_file, regular_file = self._get_inplace_equivalent(build_py, ext)
            if os.path.exists(regular_file + DIGEST_SUFFIX):
                self.copy_file(regular_file + DIGEST_SUFFIX, inplace_file + DIGEST_SUFFIX, level=self.verbose)


# Next to each extension module, the CRC-32 and length of the .py file it was compiled from: at run time safeload
# uses a compiled module only while its .py file still has that digest (safeload/_build.py: prepare and
# source_digest, which computes the same text).
DIGEST_SUFFIX = ".crc32"


def _write_digest(name: str, ext_path: str) -> None:
    import zlib

    source = os.path.join(os.path.dirname(os.path.abspath(__file__)), *name.split(".")) + ".py"
    with open(source, "rb") as fh:
        data = fh.read()
    with open(ext_path + DIGEST_SUFFIX, "w", encoding="ascii") as fh:
        fh.write(f"crc32:{zlib.crc32(data):08x} size:{len(data)}\n")


def _extensions() -> list:  # type: ignore[type-arg]
    if _pure_requested():
        print("safeload setup.py: SAFELOAD_PURE_PYTHON is set; installing the pure-Python build", file=sys.stderr)
        return []
    try:
        from Cython.Build import cythonize
    except ImportError:
        _warn("Cython is not installed")
        return []
    from setuptools import Extension

    exts = [Extension(name, [name.replace(".", "/") + ".py"]) for name in COMPILED]
    try:
        compiled = list(cythonize(exts, compiler_directives=DIRECTIVES, build_dir="build/cython", quiet=True))
    except Exception as exc:  # a Cython compile error: keep the install working
        _warn(f"Cython could not compile the modules ({type(exc).__name__}: {exc})")
        return []
    for ext in compiled:
        ext.optional = True  # an extension that fails to build is skipped, in every setuptools command
    return compiled


setup(ext_modules=_extensions(), cmdclass={"build_ext": OptionalBuildExt})
