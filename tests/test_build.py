"""setup.py: how the build chooses to compile the statistics kernel, and with which flags.

The whole build (sdist -> compiled and pure wheels -> fresh virtual environments) is
tests/test_wheels.py; here are the choices it rests on, without a compiler run.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from setuptools.errors import CompileError

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def build() -> ModuleType:
    spec = importlib.util.spec_from_file_location("modelotel_build", ROOT / "setup.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # not as __main__: setup() does not run
    return module


@pytest.mark.parametrize(
    ("value", "mode"),
    [(None, "auto"), ("", "auto"), ("auto", "auto"), (" AUTO ", "auto"), ("0", "off"),
     ("false", "off"), ("no", "off"), ("off", "off"), ("1", "required"), ("true", "required"),
     ("Yes", "required"), ("on", "required")],
)
def test_the_switch_chooses_auto_off_or_required(
    build: ModuleType, value: str | None, mode: str
) -> None:
    environ = {} if value is None else {"MODELOTEL_BUILD_KERNEL": value}
    assert build.kernel_mode(environ) == mode


def test_a_bad_switch_stops_the_build_saying_what_it_takes(build: ModuleType) -> None:
    with pytest.raises(SystemExit, match=r"MODELOTEL_BUILD_KERNEL='maybe': use auto .*0 .*1"):
        build.kernel_mode({"MODELOTEL_BUILD_KERNEL": "maybe"})


def test_other_pythons_than_cpython_build_pure_unless_required(
    build: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(build.platform, "python_implementation", lambda: "PyPy")
    assert build.kernel_mode({}) == "off"
    assert build.kernel_mode({"MODELOTEL_BUILD_KERNEL": "1"}) == "required"


class _Compiler:
    """Stands for a distutils compiler: records the probe's arguments, rejects what it must."""

    def __init__(self, compiler_type: str, rejects: str | None = None) -> None:
        self.compiler_type = compiler_type
        self.rejects = rejects
        self.calls: list[list[str]] = []

    def compile(self, sources: list[str], output_dir: str, extra_postargs: list[str]) -> Any:
        self.calls.append(list(extra_postargs))
        if self.rejects in extra_postargs:
            raise CompileError(f"unknown option {self.rejects}")
        return [str(Path(output_dir, "probe.o"))]


def test_msvc_gets_o2_and_no_probe(build: ModuleType) -> None:
    msvc = _Compiler("msvc")
    assert build.optimize_flags(msvc) == ["/O2"]
    assert msvc.calls == []


def test_o3_is_given_only_to_a_compiler_that_takes_it(build: ModuleType) -> None:
    gcc = _Compiler("unix")
    assert build.optimize_flags(gcc) == ["-O3"]
    assert gcc.calls == [["-O3"]]
    picky = _Compiler("unix", rejects="-O3")
    assert build.optimize_flags(picky) == []
    absent = _Compiler("mingw32")
    absent.compile = _raise(OSError("cc: not found"))  # type: ignore[method-assign]
    assert build.optimize_flags(absent) == []


def _raise(exc: BaseException) -> Any:
    def compile(*args: Any, **kwargs: Any) -> Any:
        raise exc

    return compile
