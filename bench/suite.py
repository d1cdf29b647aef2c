"""
The measurement plan: every test on every server, repeated, the order rotated each round so that
drift of the machine (page cache, thermal, background work) hits all servers alike.

Each run is bounded: sockets time out, ``wrk`` runs for a fixed time, a (test, server) pair whose
single run took longer than ``slow_run`` seconds is not repeated, and no new round starts when
the previous round's length would overrun the time budget.
"""

from __future__ import annotations

import os
import re
import time
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import attr

from bench import dataset
from bench.load import big_get, big_put, list_walk, md5_rate, run_wrk, write_targets
from bench.monitor import Watch, wait_until_idle
from bench.multipart import multipart_put
from bench.presign import Signer
from bench.results import GIB, Metric, Results, count_label, size_label
from bench.servers import Server

PUT_CYCLE = 10_000


def settle_disk() -> None:
    """
    Write out every dirty page before a timed write test (untimed): the gigabytes the previous
    server's test left in the page cache would otherwise be written back during this one, and
    slow most the servers that sync before they answer. Every server starts from the same idle
    disk.
    """
    os.sync()


def slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


@attr.s(frozen=True, auto_attribs=True)
class Test:
    """
    One kind of run: C{run(server)} returns {metric key: figure}.
    """

    key: str
    run: Callable[[Server], Dict[str, float]]
    s3_only: bool = False
    needs_wrk: bool = False
    watch_cpu_as: Optional[str] = None


@attr.s(auto_attribs=True)
class Suite:
    """
    The plan over the running C{servers}, its results in C{results}.
    """

    servers: List[Server]
    sizes: dataset.Sizes
    workdir: str
    source: str
    wrk: Optional[str]
    duration: float = 2.0
    #: Seconds of each wrk run at C{judged_concurrency}, where issue 4's small-object targets are
    #: judged (C{None}: L{duration}). Two-second runs there left a server's rounds a fifth to a
    #: third apart, and the targets' verdicts turned on that spread (bench/README.md).
    judged_duration: Optional[float] = None
    judged_concurrency: int = 64
    concurrencies: Sequence[int] = (1, 16, 64)
    streams: int = 8
    multipart_streams: int = 4
    slow_run: float = 10.0
    walk_limit: float = 25.0
    listing_keys: Dict[str, int] = attr.Factory(dict)
    results: Results = attr.Factory(Results)
    say: Callable[[str], None] = print
    _targets: Dict[Tuple[str, str], str] = attr.Factory(dict)
    _slow: Dict[Tuple[str, str], bool] = attr.Factory(dict)
    _repeatable: float = 0.0
    #: Seconds spent before tests waiting for every server to be idle (L{wait_until_idle}).
    idle_waited: float = 0.0

    def __attrs_post_init__(self) -> None:
        self.results.servers = [server.name for server in self.servers]
        self.results.metrics = self.metrics()

    # -- rows ------------------------------------------------------------------------------

    def metrics(self) -> List[Metric]:
        big = size_label(self.sizes.big)
        keys = count_label(self.sizes.list_keys)
        folders = count_label(max(1, self.sizes.list_keys // dataset.KEYS_PER_FOLDER))
        rows = [
            Metric("get_big_1", f"GET {big}, 1 stream", "MB/s", True),
            Metric("get_big_n", f"GET {big}, {self.streams} streams (ranges)", "MB/s", True),
            Metric("put_big_1", f"PUT {big}, 1 stream", "MB/s", True),
            Metric("md5_beside", f"  hashlib.md5 alone over {big}, just before that PUT", "MB/s",
                   True),
            Metric("put_big_n", f"PUT {big}, {self.streams} streams ({self.streams} objects)", "MB/s", True),
            Metric("mpu", f"Multipart PUT {big}, {size_label(self.sizes.part_size)} parts, "
                          f"{self.multipart_streams} at once", "MB/s", True),
        ]
        for method in ("get", "put"):
            for c in self.concurrencies:
                name = f"{method.upper()} 4 KiB, c={c}"
                rows += [
                    Metric(f"{method}_small_{c}_ops", name, "ops/s", True),
                    Metric(f"{method}_small_{c}_p50", f"{name}, p50", "ms", False),
                    Metric(f"{method}_small_{c}_p99", f"{name}, p99", "ms", False),
                ]
        rows += [
            Metric("list_flat", f"ListObjectsV2 walk, {keys} keys in 1 folder", "s", False),
            Metric("list_tree", f"ListObjectsV2 walk, {keys} keys in {folders} folders, delimiter /",
                   "s", False),
            Metric("list_flat_cold", "  same, 1 folder, first walk after start (cold)", "s", False),
            Metric("list_tree_cold", "  same, folders, first walk after start (cold)", "s", False),
            Metric("cpu_get", f"CPU seconds per GiB, GET {big} 1 stream", "s/GiB", False),
            Metric("cpu_put", f"CPU seconds per GiB, PUT {big} 1 stream", "s/GiB", False),
            Metric("rss_total", "Peak RSS, all processes of the server", "MB", False, peak=True),
            Metric("rss_process", "Peak RSS, largest single process", "MB", False, peak=True),
        ]
        return rows

    def tests(self) -> List[Test]:
        tests = [
            Test("get_big_1", lambda s: self._get_big(s, 1), watch_cpu_as="cpu_get"),
            Test("get_big_n", lambda s: self._get_big(s, self.streams)),
            Test("put_big_1", lambda s: self._put_big(s, 1), watch_cpu_as="cpu_put"),
            Test("put_big_n", lambda s: self._put_big(s, self.streams)),
            Test("mpu", self._multipart, s3_only=True),
        ]
        for method in ("get", "put"):
            for c in self.concurrencies:
                tests.append(Test(
                    f"{method}_small_{c}", lambda s, m=method, c=c: self._small(s, m, c),
                    needs_wrk=True,
                ))
        tests += [
            Test("list_flat", lambda s: self._list(s, "flat"), s3_only=True),
            Test("list_tree", lambda s: self._list(s, "tree"), s3_only=True),
        ]
        return tests

    # -- the runs --------------------------------------------------------------------------

    def _signer(self, server: Server) -> Signer:
        assert server.endpoint is not None
        return Signer(server.endpoint)

    def _get_big(self, server: Server, streams: int) -> Dict[str, float]:
        target = self._signer(server).target("GET", dataset.big_key())
        seconds = big_get(server.endpoint, target, self.sizes.big, streams)
        return {"get_big_1" if streams == 1 else "get_big_n": self.sizes.big / seconds / 1e6}

    def _put_big(self, server: Server, streams: int) -> Dict[str, float]:
        """
        One upload of the large object in C{streams} streams. Before a single stream,
        ``hashlib.md5`` alone over the same size, the floor that PUT is held to, measured in the
        same state of the machine (it runs in this process, not the server's, so the server's
        CPU figure does not count it).
        """
        base = f"put/{slug(server.name)}/big"
        keys = [base] if streams == 1 else [f"{base}.{i}" for i in range(streams)]
        figures = {}
        if streams == 1:
            figures["md5_beside"] = md5_rate(min(self.sizes.big, 1 << 30))
        settle_disk()
        seconds = big_put(server.endpoint, self._signer(server).targets("PUT", keys), self.source,
                          self.sizes.big)
        figures["put_big_1" if streams == 1 else "put_big_n"] = self.sizes.big / seconds / 1e6
        return figures

    def _multipart(self, server: Server) -> Dict[str, float]:
        settle_disk()
        seconds = multipart_put(
            server.endpoint, self._signer(server), f"put/{slug(server.name)}/multipart",
            self.source, self.sizes.big, self.sizes.part_size, self.multipart_streams,
        )
        return {"mpu": self.sizes.big / seconds / 1e6}

    def targets_file(self, server: Server, method: str) -> str:
        """
        The presigned targets ``wrk`` cycles through (made once per server and method).
        """
        if (server.name, method) not in self._targets:
            signer = self._signer(server)
            if method == "get":
                keys = dataset.small_keys(self.sizes)
            else:
                keys = ["put/%s/small/%05d" % (slug(server.name), i) for i in range(PUT_CYCLE)]
            path = os.path.join(self.workdir, f"targets-{slug(server.name)}-{method}.txt")
            self._targets[(server.name, method)] = write_targets(
                path, signer.targets(method.upper(), keys)
            )
        return self._targets[(server.name, method)]

    def body_file(self) -> str:
        path = os.path.join(self.workdir, "body-4k")
        if not os.path.exists(path):
            with open(path, "wb") as out:
                out.write(os.urandom(dataset.SMALL_SIZE))
        return path

    def _small(self, server: Server, method: str, concurrency: int) -> Dict[str, float]:
        assert self.wrk is not None and server.endpoint is not None
        if method == "put":
            settle_disk()
        seconds = self.duration
        if concurrency == self.judged_concurrency and self.judged_duration:
            seconds = self.judged_duration
        result = run_wrk(
            self.wrk, server.endpoint, self.targets_file(server, method), method.upper(),
            concurrency, seconds, self.body_file() if method == "put" else None,
        )
        if result.errors > result.requests * 0.01:
            raise RuntimeError(f"{result.errors} of {result.requests} requests failed")
        prefix = f"{method}_small_{concurrency}"
        return {f"{prefix}_ops": result.ops_per_s, f"{prefix}_p50": result.p50_ms,
                f"{prefix}_p99": result.p99_ms}

    def _list(self, server: Server, layout: str) -> Dict[str, float]:
        delimiter = "/" if layout == "tree" else ""
        walk = list_walk(server.endpoint, self._signer(server), layout + "/", delimiter,
                         self.walk_limit)
        expected = self.listing_keys.get(server.name, self.sizes.list_keys)
        if walk.complete and walk.keys < expected:
            raise RuntimeError(f"the walk saw {walk.keys} keys of {expected}")
        if not walk.keys:
            raise RuntimeError(f"no key listed within {self.walk_limit:g} s")
        seconds = walk.seconds
        if walk.keys < self.sizes.list_keys:
            if walk.complete:
                why = f"from {count_label(walk.keys)} keys uploaded to it"
            else:
                why = f"walk stopped at {self.walk_limit:g} s after {count_label(walk.keys)} keys"
            self.results.note(f"list_{layout}", server.name, why + ", scaled linearly")
            seconds *= self.sizes.list_keys / walk.keys
        return {f"list_{layout}": seconds}

    # -- the loop --------------------------------------------------------------------------

    def alive(self, server: Server) -> bool:
        return server.process is not None and server.process.poll() is None

    def run_one(self, test: Test, server: Server, record: bool = True) -> Optional[Dict[str, float]]:
        """
        Run C{test} on C{server} under a resource watch; record its figures (or its error).
        """
        if not self.alive(server):
            self.results.note(test.key, server.name, "server died")
            return None
        self.idle_waited += wait_until_idle([s.pid for s in self.servers if self.alive(s)])
        watch = Watch(server.pid).start()
        started = time.monotonic()
        try:
            figures = test.run(server)
        except Exception as error:  # one failed cell must not end the run
            watch.stop()
            self._repeatable += time.monotonic() - started
            self.say(f"  {test.key} on {server.name}: FAILED {error}")
            self.results.note(test.key, server.name, f"failed: {str(error)[:120]}")
            return None
        elapsed = time.monotonic() - started
        usage = watch.stop()
        if elapsed > self.slow_run:
            self._slow[(test.key, server.name)] = True
        else:
            self._repeatable += elapsed
        if record:
            for key, value in figures.items():
                self.results.add(key, server.name, value)
            if test.watch_cpu_as:
                self.results.add(test.watch_cpu_as, server.name, usage.cpu_seconds / (self.sizes.big / GIB))
        self.results.add("rss_total", server.name, usage.peak_rss / 1e6)
        self.results.add("rss_process", server.name, usage.peak_process_rss / 1e6)
        shown = ", ".join(f"{k}={v:,.1f}" for k, v in figures.items())
        self.say(f"  {server.name:<16} {shown}  ({elapsed:.1f} s)")
        return figures

    def applicable(self, test: Test, server: Server) -> bool:
        if test.s3_only and not server.s3:
            return False
        if test.needs_wrk and self.wrk is None:
            return False
        return True

    def warm_up(self) -> None:
        """
        The first listing walks after start (recorded as the cold figures), and one read of every
        object the timed loops read, so that the rounds measure a server's steady state.
        """
        for server in self.servers:
            for layout in ("flat", "tree") if server.s3 else ():
                figures = self.run_one(
                    Test(f"list_{layout}_cold", lambda s, l=layout: self._list(s, l)), server,
                    record=False,
                )
                if not figures:
                    continue
                note = self.results.notes.pop((f"list_{layout}", server.name), None)
                if getattr(server, "cold_listing", True):
                    self.results.add(f"list_{layout}_cold", server.name, figures[f"list_{layout}"])
                    if note:
                        self.results.note(f"list_{layout}_cold", server.name, note)
                else:
                    self.results.note(f"list_{layout}_cold", server.name,
                                      "shares the gateway's data directory: never cold")
            self.run_one(Test("warm big", lambda s: self._get_big(s, 1)), server, record=False)
            if self.wrk is not None:
                run_wrk(self.wrk, server.endpoint, self.targets_file(server, "get"), "GET", 4, 1.0)

    def run(self, rounds: int, deadline: float) -> int:
        """
        Up to C{rounds} rounds of every test on every server, the server order rotated each
        round; stops before a round that would end after C{deadline} (``time.monotonic``), the
        length of a round being foreseen from the runs of the last one that will be repeated.

        :return: the number of rounds run.
        """
        tests = self.tests()
        done = 0
        last_round = 0.0
        for number in range(rounds):
            if done and time.monotonic() + 1.1 * last_round > deadline:
                self.say(f"time budget: stopping after {done} round(s)")
                break
            self._repeatable = 0.0
            shift = number % len(self.servers)
            order = self.servers[shift:] + self.servers[:shift]
            self.say(f"round {number + 1} of {rounds}: " + ", ".join(s.name for s in order))
            for test in tests:
                for server in order:
                    if not self.applicable(test, server) or self._slow.get((test.key, server.name)):
                        continue
                    self.run_one(test, server)
            done += 1
            last_round = self._repeatable
        return done
