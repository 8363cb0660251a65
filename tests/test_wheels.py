"""The release build, end to end: an sdist, the wheel a machine with a C compiler builds from
it (the kernel inside), the pure wheel (``MODELOTEL_BUILD_KERNEL=0``: ``py3-none-any``, no
compiled code) and the build where the compiler is missing (one line, no kernel); each wheel
installed into a fresh virtual environment where an instrumented call runs.

Slow (a minute or two: two fresh environments get their dependencies from pip's cache), and
run in CI by tests/run.sh like every other test.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from modelotel.stats import kernel

ROOT = Path(__file__).resolve().parents[1]
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]

# a small instrumented call in the installed package, and what the doctor says about it
_PROBE = """
import json, numpy as np, modelotel
from modelotel import _doctor
from modelotel.stats import kernel
from modelotel.testing import capture
predict = modelotel.instrument(model="wheel", feature_names=["a", "b"])(lambda X: X[:, 0] * 2)
with capture() as cap:
    for _ in range(100):
        out = predict(np.ones((32, 2)))
    count = cap.metric("ml.feature.count", **{"ml.feature": "b"}).value
    spans = len(cap.spans())
print(json.dumps({"compiled": kernel.COMPILED, "status": kernel.STATUS, "count": count,
                  "spans": spans, "out": float(out.sum()), "file": modelotel.__file__,
                  "doctor": _doctor.check_kernel().status}))
"""


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("MODELOTEL_", "OTEL_", "PYTHON"))}
    return {**env, **extra}


def _run(*argv: str | Path, env: dict[str, str] | None = None,
         cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    out = subprocess.run([str(a) for a in argv], env=env or _env(), cwd=cwd,
                         capture_output=True, text=True, check=False, timeout=900)
    assert out.returncode == 0, f"{argv}\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
    return out


@pytest.fixture(scope="module")
def sdist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    dist = tmp_path_factory.mktemp("sdist")
    _run(sys.executable, "-m", "build", "--sdist", "--outdir", dist, ROOT)
    (found,) = dist.glob("modelotel-*.tar.gz")
    return found


def _wheel(sdist: Path, where: Path, **env: str) -> tuple[Path, str]:
    out = _run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-cache-dir", "-v",
               "-w", where, sdist, env=_env(**env))
    (wheel,) = where.glob("modelotel-*.whl")
    return wheel, out.stdout + out.stderr


def _names(wheel: Path) -> list[str]:
    with zipfile.ZipFile(wheel) as z:
        return z.namelist()


def _install_and_probe(wheel: Path, venv: Path) -> dict[str, object]:
    _run(sys.executable, "-m", "venv", venv)
    python = venv / "bin" / "python"
    _run(python, "-m", "pip", "install", "-q", wheel)
    out = _run(python, "-c", _PROBE, cwd=venv)  # not the repository: only the installed copy
    return {**json.loads(out.stdout.splitlines()[-1]), "stderr": out.stderr}


@pytest.fixture(scope="module")
def wheels(sdist: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, str]]:
    base = tmp_path_factory.mktemp("wheels")
    return {
        "default": _wheel(sdist, base / "default"),
        "pure": _wheel(sdist, base / "pure", MODELOTEL_BUILD_KERNEL="0"),
        "no-compiler": _wheel(sdist, base / "no-compiler", CC="/nonexistent/cc"),
    }


def test_the_sdist_carries_the_kernel_source_and_the_build_script(sdist: Path) -> None:
    import tarfile

    with tarfile.open(sdist) as tar:
        names = {n.split("/", 1)[1] for n in tar.getnames() if "/" in n}
    assert {"setup.py", "pyproject.toml", "src/modelotel/stats/_kernel.c"} <= names


def test_the_default_build_compiles_the_kernel_without_setuptools_warnings(
    wheels: dict[str, tuple[Path, str]],
) -> None:
    wheel, log = wheels["default"]
    names = _names(wheel)
    assert any(n.startswith("modelotel/stats/_kernel.") and n.endswith((".so", ".pyd"))
               for n in names), names
    assert not any(n.endswith(".c") for n in names)
    assert "-cp3" in wheel.name
    assert "py3-none-any" not in wheel.name
    assert "experimental" not in log.lower()
    assert "modelotel: the optional statistics kernel was not compiled" not in log


def test_the_pure_build_is_a_wheel_for_every_platform(
    wheels: dict[str, tuple[Path, str]],
) -> None:
    wheel, log = wheels["pure"]
    assert wheel.name.endswith("-py3-none-any.whl"), wheel.name
    names = _names(wheel)
    assert not any(n.endswith((".so", ".pyd", ".c")) for n in names), names
    assert "modelotel/stats/kernel.py" in names
    assert "experimental" not in log.lower()


def test_a_missing_compiler_builds_without_the_kernel_and_one_line_says_why(
    wheels: dict[str, tuple[Path, str]],
) -> None:
    wheel, log = wheels["no-compiler"]
    assert not any(n.endswith((".so", ".pyd")) for n in _names(wheel))
    said = [line for line in log.splitlines()
            if "modelotel: the optional statistics kernel was not compiled" in line]
    assert len(said) == 1, log[-3000:]
    assert "/nonexistent/cc" in said[0]
    assert "MODELOTEL_BUILD_KERNEL=0" in said[0]


def test_the_kernel_required_and_no_compiler_fails_the_build(sdist: Path, tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-cache-dir", "-v",
         "-w", str(tmp_path), str(sdist)],
        env=_env(CC="/nonexistent/cc", MODELOTEL_BUILD_KERNEL="1"),
        capture_output=True, text=True, check=False, timeout=900)
    assert out.returncode != 0
    assert "MODELOTEL_BUILD_KERNEL=1 and the statistics kernel did not compile" in (
        out.stdout + out.stderr)
    assert not list(tmp_path.glob("*.whl"))


def test_each_wheel_installs_in_a_fresh_environment_and_instruments_a_call(
    wheels: dict[str, tuple[Path, str]], tmp_path: Path,
) -> None:
    compiled = _install_and_probe(wheels["default"][0], tmp_path / "compiled")
    pure = _install_and_probe(wheels["pure"][0], tmp_path / "pure")
    for got in (compiled, pure):
        assert str(got["file"]).startswith(str(tmp_path))  # the installed copy ran
        assert got["count"] == 100 * 32
        assert got["spans"] == 100
        assert got["out"] == 64.0
    assert (compiled["compiled"], compiled["status"], compiled["doctor"]) == (
        True, "compiled", "ok")
    assert compiled["stderr"] == ""
    assert (pure["compiled"], pure["status"], pure["doctor"]) == (False, "not-built", "warn")
    # the one line that says so, once for the whole process
    lines = str(pure["stderr"]).splitlines()
    assert len(lines) == 1, lines
    assert "compiled statistics kernel is not installed" in lines[0]


def test_this_checkout_runs_the_kernel_where_the_wheels_were_built() -> None:
    # the development install and the default wheel come from the same sources and compiler
    assert kernel.STATUS == "compiled", kernel.REASON
