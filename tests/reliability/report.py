"""Renders the reliability figures (collected by the suite) as RELIABILITY.md.

The suite writes it at the end of a ``--long`` run; figures of runs made apart (the soak
in one process, the rest in another) are merged by hand::

    python tests/reliability/report.py a.json b.json -o RELIABILITY.md
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

HEADER = """# Reliability: measured, not assumed

Written by the reliability suite (`tests/reliability`, long form: `pytest tests/reliability
--long`), {when}, at commit {commit}{apart}, Python {python}, {machine}. The machine
is shared with other engineers: the load average is stated with each figure; latencies
move with it, counts do not. Nothing here is a target typed in by hand: every number below
was measured by the run that wrote this file. CI runs the short form of the same tests
(smaller, with the same assertions; see tests/reliability/conftest.py).

What is asserted (each by a test; a run that fails one writes no file by itself, and a
file merged by hand from runs made apart says below which assertion failed):

- every span, payload record and outcome record is delivered or counted in
  `ml.telemetry.dropped`, exactly (generated = delivered + counted dropped), in every
  scenario;
- no personal data (canaries) in any exported byte, with payload capture on and a predict
  function that raises with its input in the message;
- a 30-minute outage under load: RSS slope after the first 2 minutes below 1 MiB per
  10 minutes, open file descriptors bounded;
- collector overload: alive, anonymous RSS under the limit plus the stated margin, what is
  refused is retried by the SDK and delivered or counted;
- no exception reaches a caller (but its own), no internal error, no call over 1 s, no
  crash; fuzzed inputs and direct kernel calls neither raise, change nor lose anything.
"""


def _fmt(v: Any, nd: int = 1) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.{nd}f}"
    return str(v)


def _gdd(row: dict[str, Any], kind: str) -> str:
    return (f"{row['generated'][kind]} / {row['delivered'][kind]} / {row['dropped'][kind]}"
            + (f" (+{row['duplicates'][kind]} dup)" if row["duplicates"].get(kind) else ""))


def scenarios(rows: list[dict[str, Any]]) -> list[str]:
    out = ["## Accounting scenarios", "",
           "An instrumented application (4 threads at a steady rate; every call makes a span "
           "and is kept for a payload record, of which the payload budget (100 records/s) lets "
           "about half through, counted; an outcome every 4th call; one call in 25 raises) "
           "against a local OTLP endpoint or the real collector. Generated / delivered / "
           "counted dropped per kind (delivered: distinct prediction ids at the endpoint). "
           "Latency: the instrumented call as the caller sees it, p50 / p99 in microseconds "
           "(the bare function: ~2 us); added = this scenario minus healthy, same run.", "",
           "| scenario | fault | load | p50 / p99 (us) | added p50 / p99 (us) | spans | "
           "payload records | outcome records | RSS start / end (MiB) | exceptions | hangs | "
           "crashes | shutdown (s) |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        out.append(
            f"| {r['scenario']} | {r['fault']} | {r['load']} | {_fmt(r['p50_us'])} / "
            f"{_fmt(r['p99_us'])} | {_fmt(r.get('added_p50_us'))} / "
            f"{_fmt(r.get('added_p99_us'))} | {_gdd(r, 'span')} | {_gdd(r, 'payload')} | "
            f"{_gdd(r, 'outcome')} | {_fmt(r['rss_start_mib'])} / {_fmt(r['rss_end_mib'])} | "
            f"{r['exceptions']} | {r['hangs']} | {r['crashes']} | {_fmt(r['shutdown_s'], 2)} |")
    out += ["", "Counted drops by `ml.telemetry.reason`:", ""]
    for r in rows:
        reasons = ", ".join(f"{k} {v}" for k, v in sorted(r["reasons"].items()))
        out.append(f"- **{r['scenario']}**: {reasons or 'none'}")
    return out


def canary(rows: list[dict[str, Any]]) -> list[str]:
    out = ["## Privacy: canary sweep", "",
           "Payload capture on for three models (one with `deny_fields` / `hash_fields`, one "
           "with the built-in patterns only, one fed a numpy string array); half the calls "
           "raise `ValueError(f\"cannot score {rows}\")`; every call records an outcome whose "
           "label is an e-mail address. Every request the SDK sent was captured as raw bytes "
           "at a local endpoint and searched for each canary (e-mail, card as text and as "
           "an integer, phone, US SSN, IP, a password in a denied field, a customer id in a "
           "hashed field, their fragments), and so was the SDK's log output.", "",
           "| protocol | requests | bytes | spans | exception events (with message) | "
           "payload records | outcome records | canaries searched | found | in local logs |",
           "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        out.append(
            f"| {r['protocol']} | {r['requests']} | {r['bytes']} | {r['spans']} | "
            f"{r['exception_events']} ({r['exception_messages']}) | {r['payload_records']} | "
            f"{r['outcome_records']} | {r['needles']} | {len(r['canaries_found'])} | "
            f"{len(r['canaries_in_local_logs'])} |")
    return out


def soak(rows: list[dict[str, Any]]) -> list[str]:
    out = ["## Soak: a long outage under load", ""]
    for r in rows:
        out += [
            f"{r['load']}; collector black-holed (accepts, never answers) the whole time. "
            f"RSS (MiB) and open file descriptors sampled every {r['sample_every']:g} s.", "",
            f"- RSS slope after the first {r['warmup']:g} s (least squares): "
            f"**{r['rss_slope_mib_per_10min']:.3f} MiB per 10 minutes**; RSS at "
            f"{r['warmup']:g} s {r['rss_at_warmup_mib']} MiB, at the end "
            f"{r['rss_end_mib']} MiB, highest {r['rss_max_mib']} MiB.",
            "- the criterion (below 1 MiB per 10 minutes) is "
            + ("met." if r["rss_slope_mib_per_10min"] < 1.0 else
               "**not met**: see \"What grows\" below."),
            f"- calls over 1 s: {r['hangs']}"
            + (f" (t, ms: {r['slow_calls_s_ms']}; stalls of the whole process seen by a "
               f"thread that only sleeps: {r['stalls_s_ms'][:8]})"
               if r.get("slow_calls_s_ms") else "") + ".",
            f"- open file descriptors: {r['fds_min']} to {r['fds_max']} over the run "
            f"(after the first {r['warmup']:g} s: {r['fds_after_warmup']}); threads: "
            f"{r['threads']}.",
            f"- every record accounted for: spans {_gdd(r, 'span')}, payload records "
            f"{_gdd(r, 'payload')}, outcome records {_gdd(r, 'outcome')}; exceptions "
            f"{r['exceptions']}, hangs {r['hangs']}, crashes {r['crashes']}; latency p50 / "
            f"p99 {_fmt(r['p50_us'])} / {_fmt(r['p99_us'])} us.", "",
            "| t (s) | RSS (MiB) | fds | threads |", "|---|---|---|---|"]
        out += [f"| {t:g} | {rss:.1f} | {fd} | {th} |" for t, rss, fd, th in r["samples"]]
        out.append("")
    return out


def overload(rows: list[dict[str, Any]]) -> list[str]:
    out = ["## Collector overload", "",
           "collector-config/base.yaml, `GOMEMLIMIT` at 80% of `limit_mib`, spike limit 25%, "
           "16 clients sending ~3.1 MB OTLP/HTTP trace requests back to back (each honours "
           "a `Retry-After` if one comes; none did), inside a memory cgroup of limit + margin "
           "+ 64 MiB (a container's limit), while an instrumented application sends its spans "
           "over gRPC through the same collector. RSS from /proc: anonymous (Go heap and "
           "runtime) and file-backed (the persistent queue's memory-mapped file, page cache "
           "the kernel can reclaim).", "",
           "| limit / spike / GOMEMLIMIT (MiB) | flood (s) | idle RSS | peak RSS (anon + file) "
           "| margin | after | cgroup limit / max usage / OOM kills | responses | SDK spans "
           "made / delivered / dropped | SDK attempts refused / accepted | load |",
           "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        out.append(
            f"| {r['limit_mib']} / {r['spike_mib']} / {r['gomemlimit_mib']} | {r['seconds']:g} "
            f"| {r['idle_rss_mib']} | {r['peak_rss_mib']} ({r['peak_anon_mib']} + "
            f"{r['peak_file_mib']}) | {r['margin_mib']} | {r['after_rss_mib']} "
            f"(anon {r['after_anon_mib']}) | {_fmt(r['cgroup_limit_mib'])} / "
            f"{_fmt(r['cgroup_max_usage_mib'])} / {_fmt(r['oom_kills'])} | "
            f"{', '.join(f'{k}: {v}' for k, v in sorted(r['statuses'].items()))} | "
            f"{r['sdk_calls']} / {r['sdk_delivered']} / {sum(r['sdk_dropped'].values())} | "
            f"{r['refused_grpc']:.0f} / {r['accepted_grpc']:.0f} | {r['load']} |")
    return out


def fuzz(rows: list[dict[str, Any]]) -> list[str]:
    out = ["## Fuzzing", ""]
    for r in rows:
        if r["section"] == "fuzz_inputs":
            out.append(
                f"- hypothesis, an instrumented predict (statistics, payload capture on every "
                f"call, outcome cache) on nested lists / tuples / dicts of scalars and numpy "
                f"arrays of every dtype and shape: **{r['examples']} inputs**, "
                f"{r['records']} payload records emitted, {r['counted_drops']} counted drops, "
                f"{r['exceptions']} exceptions, no input changed, no result replaced, no "
                f"internal error.")
        else:
            calls = r["calls"]
            refused = sum(v for k, v in calls.items() if ":refused:" in k)
            checked = calls.get("stage:checked", 0) + calls.get("accumulate:checked", 0)
            out.append(
                f"- the compiled kernel called directly with odd buffers (dtype, length, "
                f"contiguity, writability, type, counts, offsets): **{r['iterations']} "
                f"calls**, {refused} refused cleanly (TypeError / ValueError / BufferError), "
                f"{checked} valid calls equal to numpy, {r['failures']} failures, "
                f"{r['crashes']} crashes, no write past a buffer.")
    return out


def write_reliability_md(data: dict[str, Any] | list[dict[str, Any]], path: Path,
                         notes: str = "") -> None:
    runs = data if isinstance(data, list) else [data]
    figures = [f for run in runs for f in run["figures"]]
    meta = runs[0]["meta"]
    commits = ", ".join(dict.fromkeys(run["meta"].get("commit", "?") for run in runs))
    apart = " (runs made apart, merged by report.py)" if len(runs) > 1 else ""
    text = [HEADER.format(when=time.strftime("%Y-%m-%d"), commit=commits, apart=apart,
                          python=meta.get("python", "?"), machine=meta.get("machine", "?"))]
    by = {s: [f for f in figures if f["section"] == s]
          for s in ("scenario", "canary", "soak", "overload", "fuzz_inputs", "kernel_fuzz")}
    if by["scenario"]:
        text += [*scenarios(by["scenario"]), ""]
    if by["canary"]:
        text += [*canary(by["canary"]), ""]
    if by["soak"]:
        text += [*soak(by["soak"]), ""]
    if by["overload"]:
        text += [*overload(by["overload"]), ""]
    if by["fuzz_inputs"] or by["kernel_fuzz"]:
        text += [*fuzz(by["fuzz_inputs"] + by["kernel_fuzz"]), ""]
    if notes:
        text += [notes.strip(), ""]
    text.append("")
    loads = "; ".join(run["meta"].get("load_at_end", "") for run in runs)
    text.append(f"Load at the end of the run(s): {loads}.")
    path.write_text("\n".join(text) + "\n")


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("figures", nargs="+")
    p.add_argument("-o", "--output", default="RELIABILITY.md")
    p.add_argument("--notes", default="", help="a markdown file appended (findings of the run)")
    args = p.parse_args()
    runs = [json.loads(Path(f).read_text()) for f in args.figures]
    notes = Path(args.notes).read_text() if args.notes else ""
    write_reliability_md(runs, Path(args.output), notes)


if __name__ == "__main__":
    main()
