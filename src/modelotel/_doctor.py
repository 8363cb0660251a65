"""``modelotel doctor``: what this installation and environment will do, and what is wrong.

Example (in a shell; the exit status is 1 when a check fails)::

    $ modelotel doctor --baseline churn-v3.baseline.json
    [ok]   statistics kernel: compiled (ABI 3, .../_kernel.cpython-311-x86_64-linux-gnu.so)
    [ok]   dependencies: every requirement meets its floor
    [ok]   modelotel settings: 2 from the environment, 11 defaults
    [ok]   OpenTelemetry settings: http/protobuf to http://collector:4318
    [ok]   endpoint (traces): http://collector:4318/v1/traces answered 200 to an empty export
    ...

The same from Python:

    >>> from modelotel import _doctor
    >>> check = _doctor.check_settings({"MODELOTEL_ROW_CAP": "500"})
    >>> check.status, check.data["MODELOTEL_ROW_CAP"]
    ('ok', {'value': 500, 'source': 'environment'})

Each check returns a :class:`Check` with a status: ``ok``; ``warn`` (works, but not as well
as it could: numpy runs for want of the compiled kernel, an environment value was ignored);
``fail`` (something to fix: a dependency below its floor, an endpoint that refuses or never
answers, a baseline that does not load). Nothing here changes the process's OpenTelemetry
state; the endpoint checks (:mod:`modelotel._probe`) open their own connections, each
bounded by ``timeout``.
"""

from __future__ import annotations

import argparse
import functools
import importlib.metadata
import json
import os
import platform
import re
import shutil
import sys
import sysconfig
from collections.abc import Callable, Mapping, Sequence
from dataclasses import fields
from typing import Any

from modelotel import _exporters
from modelotel._probe import DEFAULT_TIMEOUT, FAIL, OK, WARN, Check, Target, probe
from modelotel._settings import Settings
from modelotel._version import __version__
from modelotel.stats import kernel
from modelotel.stats.baseline import Baseline, BaselineError

_RANK = {OK: 0, WARN: 1, FAIL: 2}
SIGNALS: tuple[_exporters.Signal, ...] = ("traces", "metrics", "logs")
_ENV_SIGNAL = {"traces": "TRACES", "metrics": "METRICS", "logs": "LOGS"}
_HTTP_DEFAULT = "http://localhost:4318"
_GRPC_DEFAULT = "http://localhost:4317"


# --------------------------------------------------------------------- the kernel
def check_kernel() -> Check:
    """Which code computes the statistics (:mod:`modelotel.stats.kernel`), and why."""
    status = {"compiled": OK, "numpy-chosen": OK, "not-built": WARN}.get(kernel.STATUS, FAIL)
    what = "compiled" if kernel.COMPILED else "numpy"
    lines = []
    if kernel.STATUS == "not-built":
        cc = (sysconfig.get_config_var("CC") or "cc").split()[0]
        found = shutil.which(cc)
        lines.append(f"a C compiler here: {found}; reinstall to build the kernel: pip install "
                     "--no-cache-dir --force-reinstall modelotel" if found else
                     f"no C compiler ({cc}) here: numpy runs; install one and reinstall "
                     "modelotel for the kernel (docs/kernel.md)")
    elif kernel.STATUS in ("stale", "unloadable"):
        lines.append("reinstall modelotel to rebuild it: pip install --no-cache-dir "
                     "--force-reinstall modelotel")
    return Check("statistics kernel", status, f"{what} ({kernel.REASON})", lines,
                 {"compiled": kernel.COMPILED, "status": kernel.STATUS, "reason": kernel.REASON})


# ------------------------------------------------------------------ dependencies
_FLOOR = re.compile(r"^\s*([A-Za-z0-9_.\-]+)\s*>=\s*([0-9][0-9.]*)\s*$")
_RELEASE = re.compile(r"^(\d+(?:\.\d+)*)(.*)$")


def _release(version: str) -> tuple[tuple[int, ...], bool]:
    """``(release numbers, is a pre-release)`` of a version string such as ``1.45.0rc1``."""
    m = _RELEASE.match(version.strip())
    if m is None:
        return (), True
    nums = tuple(int(p) for p in m.group(1).split("."))
    return nums, bool(re.match(r"[.\-_]?(a|b|c|rc|alpha|beta|pre|preview|dev)", m.group(2)))


def meets(installed: str, floor: str) -> bool:
    """Whether ``installed`` >= ``floor`` (release numbers; a pre-release of the floor is below it).

    >>> meets("1.45.2", "1.45"), meets("1.44.9", "1.45"), meets("1.45.0rc1", "1.45")
    (True, False, False)
    """
    have, pre = _release(installed)
    want, _ = _release(floor)
    width = max(len(have), len(want))
    have_p, want_p = have + (0,) * (width - len(have)), want + (0,) * (width - len(want))
    return have_p > want_p or (have_p == want_p and not pre)


#: The exporters configure() builds (both pulled in by opentelemetry-exporter-otlp).
_EXPORTERS = ("opentelemetry-exporter-otlp-proto-http", "opentelemetry-exporter-otlp-proto-grpc")


def check_dependencies(requirements: Sequence[str] | None = None) -> Check:
    """Installed versions of modelotel's requirements against their floors (its metadata)."""
    if requirements is None:
        try:
            requirements = importlib.metadata.requires("modelotel") or []
        except importlib.metadata.PackageNotFoundError:
            return Check("dependencies", WARN, "modelotel's metadata is not installed (run from "
                         "a source tree?): floors not checked")
    status, lines, data = OK, [], {}
    for req in requirements:
        if ";" in req:  # extras ("; extra == 'dev'") are not needed to run
            continue
        m = _FLOOR.match(req)
        if m is None:
            continue
        name, floor = m.groups()
        try:
            have = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            status = FAIL
            lines.append(f"{name}: not installed (needs >={floor}): pip install '{name}>={floor}'")
            data[name] = {"installed": None, "floor": floor, "ok": False}
            continue
        good = meets(have, floor)
        data[name] = {"installed": have, "floor": floor, "ok": good}
        if good:
            lines.append(f"{name} {have} (>={floor})")
        else:
            status = FAIL
            lines.append(f"{name} {have} is below the floor {floor}: pip install '{name}>={floor}'")
    for extra in _EXPORTERS:
        try:
            data[extra] = {"installed": importlib.metadata.version(extra)}
            lines.append(f"{extra} {data[extra]['installed']}")
        except importlib.metadata.PackageNotFoundError:
            data[extra] = {"installed": None}
            lines.append(f"{extra}: not installed (that protocol cannot be used)")
    summary = ("every requirement meets its floor" if status == OK
               else "a requirement is missing or below its floor")
    return Check("dependencies", status, summary, lines, data)


# ---------------------------------------------------------------------- settings
def check_settings(environ: Mapping[str, str] | None = None) -> Check:
    """Every ``MODELOTEL_*`` setting in effect, and where it came from (never a secret)."""
    env = os.environ if environ is None else environ
    status, lines, data = OK, [], {}
    from_env = 0
    for f in fields(Settings):
        name, parse = f.metadata["env"], f.metadata["parse"]
        raw = env.get(name)
        value, source = f.default, "default"
        if raw is not None and raw.strip():
            try:
                value, source = parse(raw), "environment"
                from_env += 1
            except ValueError as exc:  # the parser's message says what it expects
                status = WARN
                shown = "<secret>" if not f.repr else repr(raw)
                source = f"default: the environment's {shown} {exc}"
        if not f.repr:  # a secret: whether it is set, never its value
            value = "<set>" if source == "environment" else "<not set>"
        data[name] = {"value": value, "source": source}
        lines.append(f"{name} = {value!r} ({source})")
    summary = f"{from_env} from the environment, {len(data) - from_env} defaults"
    if status == WARN:
        summary += "; an environment value was ignored"
    return Check("modelotel settings", status, summary, lines, data)


# ------------------------------------------------------------ OpenTelemetry config
def _get(env: Mapping[str, str], *names: str) -> tuple[str | None, str | None]:
    """The first of ``names`` set to a non-empty value: ``(value, name)``."""
    for name in names:
        raw = env.get(name)
        if raw is not None and raw.strip():
            return raw.strip(), name
    return None, None


def _header_names(raw: str | None) -> dict[str, str]:
    if not raw:
        return {}
    from opentelemetry.util.re import parse_env_headers

    return {k.lower(): v for k, v in parse_env_headers(raw, liberal=True).items()}


def resolve_targets(
    environ: Mapping[str, str] | None = None,
    endpoint: str | None = None,
    protocol: str | None = None,
) -> tuple[list[Target], list[str]]:
    """Where each enabled signal would be exported, as ``configure()`` and the stock OTLP
    exporters resolve it (argument > per-signal variable > general variable > default);
    and the problems found on the way (values that are ignored)."""
    env = os.environ if environ is None else environ
    targets, problems = [], []
    for signal in SIGNALS:
        s = _ENV_SIGNAL[signal]
        exporter, var = _get(env, f"OTEL_{s}_EXPORTER")
        if exporter is not None and exporter.lower() == "none":
            continue
        proto = protocol
        if proto is None:
            raw, var = _get(env, f"OTEL_EXPORTER_OTLP_{s}_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL")
            proto = _exporters.DEFAULT_PROTOCOL if raw is None else raw.lower()
            if proto not in _exporters.PROTOCOLS:
                problems.append(f"{var}={raw!r} is not one of {', '.join(_exporters.PROTOCOLS)}: "
                                f"{_exporters.DEFAULT_PROTOCOL} is used")
                proto = _exporters.DEFAULT_PROTOCOL
        own, own_var = _get(env, f"OTEL_EXPORTER_OTLP_{s}_ENDPOINT")
        base, base_var = _get(env, "OTEL_EXPORTER_OTLP_ENDPOINT")
        source = ("--endpoint" if endpoint is not None else own_var or base_var or "default")
        if proto == _exporters.GRPC:
            url = endpoint or own or base or _GRPC_DEFAULT
        elif endpoint is not None:
            url = f"{endpoint.rstrip('/')}/v1/{signal}"
        else:
            url = own or f"{(base or _HTTP_DEFAULT).rstrip('/')}/v1/{signal}"
        # the per-signal variable replaces the general one (as the exporters read them)
        raw_headers, _ = _get(env, f"OTEL_EXPORTER_OTLP_{s}_HEADERS", "OTEL_EXPORTER_OTLP_HEADERS")
        cert, _ = _get(env, f"OTEL_EXPORTER_OTLP_{s}_CERTIFICATE", "OTEL_EXPORTER_OTLP_CERTIFICATE")
        insecure_raw, _ = _get(env, f"OTEL_EXPORTER_OTLP_{s}_INSECURE",
                               "OTEL_EXPORTER_OTLP_INSECURE")
        insecure = None if insecure_raw is None else insecure_raw.lower() == "true"
        targets.append(
            Target(signal, proto, url, _header_names(raw_headers), source, cert, insecure))
    return targets, problems


def check_otel_config(
    environ: Mapping[str, str] | None = None,
    endpoint: str | None = None,
    protocol: str | None = None,
) -> tuple[Check, list[Target]]:
    """The standard ``OTEL_*`` configuration ``configure()`` would use (header names only)."""
    env = os.environ if environ is None else environ
    targets, problems = resolve_targets(env, endpoint, protocol)
    status = WARN if problems else OK
    lines = list(problems)
    data: dict[str, Any] = {"problems": problems}

    def show(key: str, value: Any, source: str) -> None:
        data[key] = {"value": value, "source": source}
        lines.append(f"{key} = {value} ({source})")

    def from_env(key: str, default: str, *names: str) -> None:
        value, var = _get(env, *names)
        show(key, value if value is not None else default,
             f"{var}" if var is not None else "default")

    disabled, _ = _get(env, "OTEL_SDK_DISABLED")
    if disabled is not None and disabled.lower() == "true":
        status = WARN
        lines.insert(0, "OTEL_SDK_DISABLED=true: configure() sets up nothing, nothing is exported")
        data["sdk_disabled"] = True
    from_env("service name", "unknown_service", "OTEL_SERVICE_NAME")
    for t in targets:
        show(f"{t.signal} endpoint", f"{t.url} ({t.protocol})", t.source)
        if t.headers:
            show(f"{t.signal} header names", ", ".join(sorted(t.headers)), "environment")
    off = [s for s in SIGNALS if s not in {t.signal for t in targets}]
    if off:
        show("signals off", ", ".join(off), "OTEL_<SIGNAL>_EXPORTER=none")
    if not targets:
        status = WARN
    from_env("sampler", "parentbased_always_on", "OTEL_TRACES_SAMPLER")
    from_env("sampler argument", "(none)", "OTEL_TRACES_SAMPLER_ARG")
    from_env("metric export interval (ms)", "60000", "OTEL_METRIC_EXPORT_INTERVAL")
    from_env("export timeout (s)", "10", "OTEL_EXPORTER_OTLP_TIMEOUT")
    from_env("compression", "none", "OTEL_EXPORTER_OTLP_COMPRESSION")
    receivers: dict[tuple[str, str, int], list[str]] = {}
    for t in targets:
        receivers.setdefault(t.address, []).append(t.signal)
    summary = "; ".join(f"{', '.join(sigs)}: {proto} to {host}:{port}"
                        for (proto, host, port), sigs in receivers.items())
    summary = summary or "no signal is exported"
    if endpoint:
        summary += " (--endpoint; configure(endpoint=...) in code wins over the environment too)"
    return Check("OpenTelemetry settings", status, summary, lines, data), targets


# -------------------------------------------------------------------- baselines
def check_baseline(path: str) -> Check:
    """Whether a baseline file loads, with its hash, features and outputs; else what to fix."""
    try:
        b = Baseline.load(path)
    except BaselineError as exc:
        return Check(f"baseline {path}", FAIL, str(exc), data={"path": path, "error": str(exc)})
    names = list(b.feature_names)
    outputs = [o.name for o in b.outputs]
    shown = ", ".join(names[:12]) + (f", ... ({len(names)} in all)" if len(names) > 12 else "")
    return Check(
        f"baseline {path}", OK,
        f"{b.hash}: {len(names)} features, {len(outputs)} outputs, {b.rows} rows",
        [f"features: {shown or '(none)'}", f"outputs: {', '.join(outputs) or '(none)'}"],
        {"path": path, "hash": b.hash, "features": names, "outputs": outputs, "rows": b.rows},
    )


# ------------------------------------------------------------------ the command
def _checked(name: str, check: Callable[[], Check]) -> Check:
    try:
        return check()
    except Exception as exc:  # noqa: BLE001 - a check that breaks is reported, not raised
        return Check(name, FAIL, f"the check could not run: {type(exc).__name__}: {exc}")


def run(
    baselines: Sequence[str] = (),
    endpoint: str | None = None,
    protocol: str | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    environ: Mapping[str, str] | None = None,
) -> list[Check]:
    """Every check, in the order they are printed."""
    checks = [_checked("statistics kernel", check_kernel),
              _checked("dependencies", check_dependencies),
              _checked("modelotel settings", functools.partial(check_settings, environ))]
    targets: list[Target] = []
    try:
        config, targets = check_otel_config(environ, endpoint, protocol)
    except Exception as exc:  # noqa: BLE001 - as in _checked
        config = Check("OpenTelemetry settings", FAIL,
                       f"the check could not run: {type(exc).__name__}: {exc}")
    checks.append(config)
    if not config.data.get("sdk_disabled"):
        # a receiver that did not answer for one signal is not tried again for the next:
        # the whole command stays within about one timeout per receiver
        silent: dict[tuple[str, str, int], Check] = {}
        for t in targets:
            name = f"endpoint ({t.signal})"
            first = silent.get(t.address)
            if first is not None:
                checks.append(Check(name, FAIL, f"{t.url}: not tried, see {first.name}",
                                    data={"url": t.url, "error": f"see {first.name}"}))
                continue
            result = _checked(name, functools.partial(probe, t, timeout))
            checks.append(result)
            if "error" in result.data or result.status == FAIL:
                silent[t.address] = result
    checks.extend(_checked(f"baseline {p}", functools.partial(check_baseline, p))
                  for p in baselines)
    return checks


def worst(checks: Sequence[Check]) -> str:
    return max((c.status for c in checks), key=_RANK.__getitem__, default=OK)


def render_text(checks: Sequence[Check]) -> str:
    out = [f"modelotel {__version__}, Python {platform.python_version()} "
           f"({sys.executable})"]
    for c in checks:
        out.append(f"[{c.status}]{' ' * (5 - len(c.status))}{c.name}: {c.summary}")
        out.extend(f"       {line}" for line in c.lines)
    failed = sum(c.status == FAIL for c in checks)
    warned = sum(c.status == WARN for c in checks)
    out.append(f"{failed} failed, {warned} warnings, {len(checks) - failed - warned} ok")
    return "\n".join(out)


def render_json(checks: Sequence[Check]) -> str:
    doc = {"modelotel": __version__, "python": platform.python_version(),
           "status": worst(checks), "ok": worst(checks) != FAIL,
           "checks": [c.to_json() for c in checks]}
    return json.dumps(doc, indent=2, default=str)


def command(args: argparse.Namespace) -> int:
    """``modelotel doctor``: print the checks; exit status 1 when one failed, else 0."""
    if not args.timeout > 0:
        print("modelotel doctor: --timeout must be a positive number of seconds", file=sys.stderr)
        return 2
    if args.endpoint is not None and "://" not in args.endpoint:
        print(f"modelotel doctor: --endpoint {args.endpoint!r}: give a URL with a scheme, like "
              "http://localhost:4318", file=sys.stderr)
        return 2
    checks = run(args.baseline, args.endpoint, args.protocol, args.timeout)
    print(render_json(checks) if args.json else render_text(checks))
    return 1 if worst(checks) == FAIL else 0


def add_parser(sub: Any) -> None:
    """Register ``doctor`` on the ``modelotel`` command's subparsers."""
    p = sub.add_parser(
        "doctor", help="check the installation, the configuration, the endpoint and baselines",
        description="Check what modelotel will do here: the statistics kernel, dependency "
                    "versions, MODELOTEL_* and OTEL_* settings, whether the OTLP endpoint "
                    "answers, and baseline files. Exit status 1 when a check fails.")
    p.add_argument("--baseline", action="append", default=[], metavar="PATH",
                   help="a baseline file to load and describe (repeatable)")
    p.add_argument("--endpoint", help="OTLP endpoint to check instead of the OTEL_EXPORTER_OTLP_* "
                                      "one (as configure(endpoint=...))")
    p.add_argument("--protocol", choices=list(_exporters.PROTOCOLS),
                   help="OTLP protocol (default: OTEL_EXPORTER_OTLP_PROTOCOL, else http/protobuf)")
    p.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT,
                   help=f"seconds each endpoint check may take ({DEFAULT_TIMEOUT:g})")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=command)
