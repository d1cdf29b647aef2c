#!/usr/bin/env python3
"""
The side-by-side benchmark: ``python bench/run.py`` (about 15 minutes on 2 cores) or
``python bench/run.py --quick`` (about 2). It installs what it lacks, starts every server on
127.0.0.1, measures, prints one table and writes ``bench/RESULTS.md``. See ``bench/README.md``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Callable, Dict, List, Optional, Tuple

HERE = os.path.dirname(os.path.abspath(__file__))
REPOSITORY = os.path.dirname(HERE)
if REPOSITORY not in sys.path:
    sys.path.insert(0, REPOSITORY)

from bench import dataset, profile  # noqa: E402
from bench.install import ensure_tools  # noqa: E402
from bench.floors import measure as measure_floors  # noqa: E402
from bench.framework import measure as measure_framework  # noqa: E402
from bench.load import big_get, big_put, md5_rate, run_wrk  # noqa: E402
from bench.presign import Signer  # noqa: E402
from bench.report import machine_description, markdown, table, targets  # noqa: E402
from bench.peers import Moto, Nginx, Rclone, Seaweed  # noqa: E402
from bench.servers import Gateway, Server  # noqa: E402
from bench.suite import Suite  # noqa: E402

SINGLE, MULTI = "gateway", "gateway-auto"


def options(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="about 2 minutes: 256 MiB objects, 10,000 listing keys, one round")
    parser.add_argument("--big-mib", type=int, help="size of the large object in MiB (1024)")
    parser.add_argument("--list-keys", type=int, help="keys of each listing layout (100000)")
    parser.add_argument("--peer-list-keys", type=int,
                        help="listing keys uploaded to SeaweedFS and moto (10000)")
    parser.add_argument("--upload-seconds", type=float,
                        help="at most this long uploading listing keys to each such peer (20)")
    parser.add_argument("--rounds", type=int, help="rounds of every test (3)")
    parser.add_argument("--duration", type=int, help="seconds of each wrk run (2)")
    parser.add_argument("--judged-duration", type=int,
                        help="seconds of each wrk run at c=64, where the targets are judged (4)")
    parser.add_argument("--budget", type=float,
                        help="seconds the whole run may take; rounds stop to fit (860)")
    parser.add_argument("--servers", help="comma-separated subset of: " + ", ".join(
        [SINGLE, MULTI, "rclone", "seaweedfs", "moto", "nginx"]))
    parser.add_argument("--gateway-source", default=REPOSITORY,
                        help="source tree of the gateway to run (this repository)")
    parser.add_argument("--workdir", help="where the data and servers live (a new temporary "
                                          "directory, removed afterwards)")
    parser.add_argument("--output", default=os.path.join(HERE, "RESULTS.md"))
    parser.add_argument("--no-install", action="store_true", help="install nothing")
    parser.add_argument("--no-profile", action="store_true", help="skip the py-spy profiles")
    args = parser.parse_args(argv)
    quick = args.quick
    defaults = {
        "big_mib": 256 if quick else 1024, "list_keys": 10_000 if quick else 100_000,
        "peer_list_keys": 2_000 if quick else 10_000, "upload_seconds": 5 if quick else 20,
        "rounds": 1 if quick else 3, "duration": 1 if quick else 2,
        "judged_duration": 1 if quick else 4,
        "budget": 150 if quick else 860,
    }
    for name, value in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    return args


def snapshot_source(source: str, target: str) -> str:
    """
    A copy of the gateway's code (``gateway/`` and its twistd plugin), so that edits to the
    working tree while the benchmark runs do not change what is measured.
    """
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "dropin.cache")
    shutil.copytree(os.path.join(source, "gateway"), os.path.join(target, "gateway"), ignore=ignore)
    shutil.copytree(os.path.join(source, "twisted"), os.path.join(target, "twisted"), ignore=ignore)
    return target


def make_servers(args: argparse.Namespace, tools, say: Callable[[str], None]) -> List[Server]:
    """
    Every server of the comparison; those that cannot run get C{unavailable} set.
    """
    data = os.path.join(args.workdir_path, "gateway-data")
    single = Gateway(SINGLE, source=args.snapshot, repository=args.gateway_source, data=data)
    multi = Gateway(MULTI, source=args.snapshot, repository=args.gateway_source, data=data,
                    workers="auto", cold_listing=False)
    if not multi.has_workers_option():
        multi.unavailable = "not available: this gateway has no --workers option"
    peers: List[Server] = [single, multi]
    for server, tool in ((Rclone("rclone"), "rclone"), (Seaweed("seaweedfs"), "weed"),
                         (Moto("moto"), "moto_server"), (Nginx("nginx"), "nginx")):
        if tools.get(tool):
            server.binary = tools.get(tool)  # type: ignore[attr-defined]
        else:
            server.unavailable = "not available: " + tools.missing.get(tool, "not installed")
        peers.append(server)
    if args.servers:
        wanted = {name.strip() for name in args.servers.split(",")}
        peers = [server for server in peers if server.name in wanted]
    return peers


def server_version(server: Server) -> str:
    """
    What C{server} says its version is, or why it could not say (a moto_server of another Python
    than this one has no version here): a version is worth no run.
    """
    try:
        return server.version()
    except Exception as error:
        return f"{server.name} (version unknown: {error!r})"


def wrk_version(wrk: Optional[str]) -> str:
    if not wrk:
        return "not available"
    done = subprocess.run([wrk, "-v"], capture_output=True, text=True, timeout=30, check=False)
    return (done.stdout + done.stderr).split("Copyright")[0].strip()


def profile_gateway(suite: Suite, server: Server, py_spy: str, seconds: float) -> str:
    """
    py-spy profiles of the single-worker gateway under four kinds of load, summarised.
    """
    assert server.endpoint is not None
    signer = Signer(server.endpoint)
    big_target = signer.target("GET", dataset.big_key())
    put_target = signer.targets("PUT", ["put/profile/big"])

    def small(method: str) -> Callable[[], object]:
        body = suite.body_file() if method == "put" else None
        targets_file = suite.targets_file(server, method)
        return lambda: run_wrk(suite.wrk, server.endpoint, targets_file, method.upper(), 64,
                               seconds, body)

    loads: List[Tuple[str, Callable[[], object]]] = []
    if suite.wrk:
        loads += [("4 KiB GET, c=64", small("get")), ("4 KiB PUT, c=64", small("put"))]
    loads += [
        ("large GET, 1 stream", lambda: big_get(server.endpoint, big_target, suite.sizes.big, 1)),
        ("large PUT, 1 stream",
         lambda: big_put(server.endpoint, put_target, suite.source, suite.sizes.big)),
    ]
    lines: List[str] = []
    for title, load in loads:
        name = title.replace(" ", "-").replace(",", "").replace("=", "")
        output = os.path.join(suite.workdir, f"profile-{name}.txt")
        try:
            text = profile.record(py_spy, server.pid, seconds, load, output)
            lines += profile.summary(title, text)
        except Exception as error:
            lines += [f"**{title}**: profile failed: {error}", ""]
    return "\n".join(lines)


def main(argv: Optional[List[str]] = None) -> int:
    args = options(argv)
    started = time.monotonic()
    deadline = started + args.budget
    def say(text: str) -> None:
        print(f"[{time.monotonic() - started:5.0f}s] {text}", flush=True)

    sizes = dataset.Sizes(big=args.big_mib << 20, list_keys=args.list_keys,
                          peer_list_keys=min(args.peer_list_keys, args.list_keys))
    say("== tools")
    tools = ensure_tools(install=not args.no_install, say=say)
    for name, reason in tools.missing.items():
        say(f"  {name}: {reason}")
    notes: List[str] = []
    load_at_start = os.getloadavg()
    say("== hashlib.md5 alone")
    md5 = statistics.median(md5_rate(min(sizes.big, 1 << 30)) for _ in range(3))
    say(f"  {md5:,.0f} MB/s")
    workdir = args.workdir or tempfile.mkdtemp(prefix="s3gw-bench-")
    root, source = os.path.join(workdir, "files"), os.path.join(workdir, "upload-source")
    os.makedirs(root, exist_ok=True)
    args.workdir_path = workdir
    args.snapshot = snapshot_source(args.gateway_source, os.path.join(workdir, "gateway-source"))
    servers = make_servers(args, tools, say)
    running: List[Server] = []
    versions: Dict[str, str] = {}
    profile_text = ""
    suite: Optional[Suite] = None
    floors: Dict[str, str] = {}
    try:
        say(f"== data set in {workdir}")
        say(f"  made in {dataset.make_shared_tree(root, source, sizes):.1f} s")
        say("== the filesystem's own floors")
        floors = measure_floors(workdir, min(sizes.big, 1 << 30))
        say("== Twisted's own ceilings for a small GET")
        floors.update(measure_framework(tools.get("wrk"), workdir, args.duration))
        for name, value in floors.items():
            say(f"  {name}: {value}")
        say("== servers")
        for server in servers:
            if server.unavailable:
                versions[server.name] = server.unavailable
                say(f"  {server.name}: {server.unavailable}")
                continue
            try:
                server.start(workdir, root)
            except Exception as error:
                server.unavailable = f"not available: failed to start ({error})"
                versions[server.name] = server.unavailable
                say(f"  {server.name}: {server.unavailable}\n{server.log_tail(800)}")
                continue
            versions[server.name] = server_version(server) + (
                " (`--workers auto`)" if server.name == MULTI else "")
            say(f"  {server.name}: {versions[server.name]} on {server.endpoint.base_url}")
            running.append(server)
        versions["wrk (load generator)"] = wrk_version(tools.get("wrk"))
        suite = Suite(running, sizes, workdir, source, tools.get("wrk"), duration=args.duration,
                      judged_duration=args.judged_duration,
                      walk_limit=10.0 if args.quick else 25.0, say=say)
        for server in running:
            if server.own_storage:
                say(f"== uploading the data set to {server.name}")
                stored, seconds = dataset.upload(
                    server, source, sizes, deadline=time.monotonic() + args.upload_seconds
                )
                suite.listing_keys[server.name] = stored
                say(f"  {stored:,} listing keys per layout in {seconds:.1f} s")
                if stored < sizes.list_keys:
                    notes.append(
                        f"{server.name} keeps its own storage: {stored:,} keys per listing layout "
                        f"were uploaded to it (of {sizes.list_keys:,}, within "
                        f"{args.upload_seconds:g} s), and its walk times are scaled linearly to "
                        f"{sizes.list_keys:,} keys."
                    )
        say("== warm-up (first listings recorded as cold)")
        suite.warm_up()
        reserve = 0 if args.no_profile else 50
        rounds = suite.run(args.rounds, deadline - reserve)
        notes.append(f"{rounds} round(s) of every test (of {args.rounds} asked), server order "
                     f"rotated each round; wrk runs of {args.duration:g} s, "
                     f"{args.judged_duration:g} s at c=64.")
        gateway = next((s for s in running if s.name == SINGLE), None)
        if not args.no_profile and gateway and tools.get("py-spy"):
            say("== profiling the gateway (py-spy)")
            seconds = 3 if args.quick else 5
            profile_text = profile_gateway(suite, gateway, tools.get("py-spy"), seconds)
    finally:
        say("== stopping servers")
        for server in running:
            server.stop()
        if not args.workdir:
            shutil.rmtree(workdir, ignore_errors=True)
    if suite is None:
        say("the run ended before any measurement")
        return 1
    results = suite.results
    results.servers = [server.name for server in servers]
    for name, reason in tools.missing.items():
        notes.append(f"{name}: {reason}")
    notes.append(
        f"Before each test the run waited until no server used more than a tenth of a core: "
        f"{suite.idle_waited:.0f} s in all (servers that work on after a test would otherwise "
        f"take CPU from the next one measured)."
    )
    notes.append(
        "Load average (1, 5, 15 min) before the run: %.2f %.2f %.2f; after it: %.2f %.2f %.2f "
        "(the benchmark's own load included; anything else running on the machine skews the "
        "figures)." % (load_at_start + os.getloadavg())
    )
    checks = targets(results, md5, SINGLE, MULTI)
    say("")
    say(table(results))
    say("")
    for check in checks:
        say(f"target: {check.text}: {check.verdict} ({check.detail})")
    command = "python bench/run.py " + " ".join(argv if argv is not None else sys.argv[1:])
    with open(args.output, "w") as out:
        machine = {**machine_description(), **floors}
        out.write(markdown(results, machine, versions, checks, md5, notes,
                           profile_text, command.strip(), time.strftime("%Y-%m-%d %H:%M %Z")))
    say(f"\nwritten {args.output} after {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
