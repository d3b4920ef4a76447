#!/usr/bin/env python3
"""Judges protector-sim's HTTP mode with the official clients.

Runs python-openstackclient (which talks to the clouds through openstacksdk) and
py-pure-client against a served world and compares what they parse with what the
world holds (``--expect``, written by protector-sim/tests/judge.rs from the
in-process ports). Every call must succeed with the clients' normal parsing: a
non-zero exit, anything on a CLI call's stderr (warnings, logged errors), a
Python warning or a logged warning in process, or an answer that differs from
the world fails the judge. The first failure ends the run with a line
``FAIL <call>: <why>`` on stderr and exit status 1.

Usage:
    judge.py --clouds clouds.yaml --arrays arrays.json --expect expect.json
             [--only SECTION ...]
"""

import argparse
import json
import logging
import os
import re
import subprocess
import sys
import time
import warnings

CLI_TIMEOUT = 120
# `-v` sends the clients' INFO logs to stderr (keystoneauth reports a version
# document it cannot use only at INFO) and turns Python warnings on. Of those,
# only the libraries' notes about their own deprecated internals are not about
# what the server answered.
DEPRECATION = re.compile(
    r"^\S+:\d+: (\w*Removed\w*|\w*Deprecat\w*|LegacyAPI)Warning: "
)
WAIT_TIMEOUT = 60
# Read-only sections first: the last two change the clouds and the array.
SECTIONS = (
    "token",
    "catalog",
    "servers",
    "flavors",
    "networks",
    "volumes",
    "volume-types",
    "array",
    "volume-create-delete",
    "volume-manage",
)


class Failure(Exception):
    """A call failed or answered something other than what the world holds."""

    def __init__(self, call, why):
        super().__init__(f"{call}: {why}")
        self.call = call
        self.why = why


def check(cond, call, why):
    if not cond:
        raise Failure(call, why)


def by(items, key):
    return {item[key]: item for item in items}


class Judge:
    def __init__(self, args, expect):
        self.args = args
        self.expect = expect
        self.tenant = expect["tenant_cloud"]
        self.admin = expect["admin_cloud"]
        self.openstack = os.path.join(os.path.dirname(sys.executable), "openstack")
        self.env = dict(os.environ)
        self.env["OS_CLIENT_CONFIG_FILE"] = args.clouds
        self.calls = 0

    # ------------------------------------------------------------------ helpers

    @staticmethod
    def cli(cloud, *argv):
        """How a CLI call is named in the judge's output."""
        return f"openstack --os-cloud {cloud} {' '.join(argv)}"

    def osc(self, cloud, *argv, json_out=True, must_fail=False):
        """Runs `openstack -v --os-cloud CLOUD ARGV -f json`; returns the parsed
        JSON (or None without output). With must_fail, the command has to fail:
        returns its (exit status, stderr)."""
        label = self.cli(cloud, *argv)
        cmd = [self.openstack, "-v", "--os-cloud", cloud, *argv]
        if json_out:
            cmd += ["-f", "json"]
        started = time.monotonic()
        try:
            proc = subprocess.run(
                cmd,
                env=self.env,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=CLI_TIMEOUT,
            )
        except subprocess.TimeoutExpired:
            raise Failure(label, f"no answer within {CLI_TIMEOUT} s") from None
        self.calls += 1
        took = time.monotonic() - started
        if must_fail:
            check(proc.returncode != 0, label, f"succeeded: {proc.stdout.strip()[:500]}")
            return proc.returncode, proc.stderr
        if proc.returncode != 0:
            raise Failure(
                label,
                f"exit status {proc.returncode}; stderr:\n{proc.stderr.strip()}",
            )
        noise = complaints(proc.stderr)
        check(
            not noise,
            label,
            "the client logged or warned (about the answers):\n" + "\n".join(noise),
        )
        print(f"ok   {label} ({took:.1f} s)", flush=True)
        if not json_out:
            check(not proc.stdout.strip(), label, f"unexpected output: {proc.stdout!r}")
            return None
        try:
            return json.loads(proc.stdout)
        except ValueError as e:
            raise Failure(label, f"output is not JSON ({e}): {proc.stdout[:500]!r}") from None

    def wait(self, label, probe, timeout=WAIT_TIMEOUT):
        """Polls probe() until it returns a true value."""
        deadline = time.monotonic() + timeout
        while True:
            got = probe()
            if got:
                return got
            if time.monotonic() > deadline:
                raise Failure(label, f"not reached within {timeout} s")
            time.sleep(0.5)

    # ------------------------------------------------------------------ identity

    def token(self):
        label = self.cli(self.tenant, "token", "issue")
        tok = self.osc(self.tenant, "token", "issue")
        check(isinstance(tok, dict), label, f"not an object: {tok!r}")
        check(tok.get("id"), label, f"no token id: {sorted(tok)}")
        check(
            tok.get("project_id") == self.expect["project_id"],
            label,
            f"project_id {tok.get('project_id')!r}, expected {self.expect['project_id']!r}",
        )
        check(
            tok.get("user_id") == self.expect["user_id"],
            label,
            f"user_id {tok.get('user_id')!r}, expected {self.expect['user_id']!r}",
        )
        check(tok.get("expires"), label, "no expiry")

    def catalog(self):
        label = self.cli(self.tenant, "catalog", "list")
        entries = self.osc(self.tenant, "catalog", "list")
        check(isinstance(entries, list) and entries, label, f"empty or not a list: {entries!r}")
        types = {e.get("Type"): e for e in entries}
        for needed in ("identity", "compute", "network"):
            check(needed in types, label, f"no {needed} service; types: {sorted(types)}")
        check(
            "volumev3" in types or "block-storage" in types,
            label,
            f"no block-storage service; types: {sorted(types)}",
        )
        for e in entries:
            endpoints = e.get("Endpoints")
            check(endpoints, label, f"service {e.get('Name')} lists no endpoints")
            text = json.dumps(endpoints)
            check(
                self.expect["region"] in text and "public" in text and "http" in text,
                label,
                f"service {e.get('Name')} endpoints unparsed: {endpoints!r}",
            )

    # ------------------------------------------------------------------ compute

    def servers(self):
        label = self.cli(self.tenant, "server", "list")
        listed = self.osc(self.tenant, "server", "list")
        check(isinstance(listed, list), label, f"not a list: {listed!r}")
        want = by(self.expect["servers"], "id")
        got = by(listed, "ID")
        check(
            sorted(got) == sorted(want),
            label,
            f"ids {sorted(got)}, expected {sorted(want)}",
        )
        for sid, server in got.items():
            check(server.get("Name") == want[sid]["name"], label, f"{sid}: name {server.get('Name')!r}")
            check(server.get("Status") == want[sid]["status"], label, f"{sid}: status {server.get('Status')!r}")
            check(server.get("Networks"), label, f"{sid}: no networks parsed")
        for sid, server in want.items():
            label = self.cli(self.tenant, "server", "show", sid)
            shown = self.osc(self.tenant, "server", "show", sid)
            check(shown.get("id") == sid, label, f"id {shown.get('id')!r}")
            check(shown.get("name") == server["name"], label, f"name {shown.get('name')!r}")
            check(shown.get("status") == server["status"], label, f"status {shown.get('status')!r}")
            attached = shown.get("volumes_attached") or []
            attached_ids = sorted(
                v.get("id") if isinstance(v, dict) else str(v) for v in attached
            )
            check(
                attached_ids == sorted(server["volumes"]),
                label,
                f"volumes_attached {attached!r}, expected {server['volumes']}",
            )
            addresses = shown.get("addresses") or {}
            check(
                sorted(addresses) == sorted(set(server["networks"])),
                label,
                f"addresses {addresses!r}, expected networks {server['networks']}",
            )
            check(shown.get("flavor"), label, "no flavor parsed")

    def flavors(self):
        label = self.cli(self.tenant, "flavor", "list")
        listed = self.osc(self.tenant, "flavor", "list")
        want = by(self.expect["flavors"], "id")
        got = by(listed, "ID")
        check(sorted(got) == sorted(want), label, f"ids {sorted(got)}, expected {sorted(want)}")
        for fid, f in want.items():
            g = got[fid]
            check(
                (g.get("Name"), g.get("VCPUs"), g.get("RAM"), g.get("Disk"))
                == (f["name"], f["vcpus"], f["ram"], f["disk"]),
                label,
                f"{fid}: {g!r}, expected {f!r}",
            )

    # ------------------------------------------------------------------ network

    def networks(self):
        label = self.cli(self.tenant, "network", "list")
        listed = self.osc(self.tenant, "network", "list")
        want = by(self.expect["networks"], "id")
        got = by(listed, "ID")
        check(sorted(got) == sorted(want), label, f"ids {sorted(got)}, expected {sorted(want)}")
        for nid, n in want.items():
            check(got[nid].get("Name") == n["name"], label, f"{nid}: name {got[nid].get('Name')!r}")
            check(
                sorted(got[nid].get("Subnets") or []) == sorted(n["subnets"]),
                label,
                f"{nid}: subnets {got[nid].get('Subnets')!r}, expected {n['subnets']}",
            )
        for nid, n in want.items():
            label = self.cli(self.tenant, "network", "show", nid)
            shown = self.osc(self.tenant, "network", "show", nid)
            check(shown.get("id") == nid, label, f"id {shown.get('id')!r}")
            check(shown.get("name") == n["name"], label, f"name {shown.get('name')!r}")
            check(shown.get("status") == n["status"], label, f"status {shown.get('status')!r}")
            check(shown.get("shared") == n["shared"], label, f"shared {shown.get('shared')!r}")

    # ------------------------------------------------------------------ block storage

    def volumes(self):
        label = self.cli(self.tenant, "volume", "list", "--long")
        listed = self.osc(self.tenant, "volume", "list", "--long")
        want = by(self.expect["volumes"], "id")
        got = by(listed, "ID")
        check(sorted(got) == sorted(want), label, f"ids {sorted(got)}, expected {sorted(want)}")
        for vid, v in want.items():
            g = got[vid]
            check(
                (g.get("Name"), g.get("Size"), g.get("Type"))
                == (v["name"], v["size"], v["type"]),
                label,
                f"{vid}: {g!r}, expected {v!r}",
            )
        for vid, v in want.items():
            label = self.cli(self.tenant, "volume", "show", vid)
            shown = self.osc(self.tenant, "volume", "show", vid)
            check(shown.get("id") == vid, label, f"id {shown.get('id')!r}")
            check(shown.get("name") == v["name"], label, f"name {shown.get('name')!r}")
            check(shown.get("size") == v["size"], label, f"size {shown.get('size')!r}")
            check(shown.get("status") == v["status"], label, f"status {shown.get('status')!r}")
            check(shown.get("type") == v["type"], label, f"type {shown.get('type')!r}")
            check(
                str(shown.get("bootable")).lower() == str(v["bootable"]).lower(),
                label,
                f"bootable {shown.get('bootable')!r}, expected {v['bootable']}",
            )

    def volume_types(self):
        label = self.cli(self.admin, "volume", "type", "list", "--long")
        listed = self.osc(self.admin, "volume", "type", "list", "--long")
        want = by(self.expect["volume_types"], "id")
        got = by(listed, "ID")
        check(sorted(got) == sorted(want), label, f"ids {sorted(got)}, expected {sorted(want)}")
        for tid, t in want.items():
            g = got[tid]
            check(g.get("Name") == t["name"], label, f"{tid}: name {g.get('Name')!r}")
            check(
                g.get("Properties") == t["properties"],
                label,
                f"{t['name']}: properties {g.get('Properties')!r}, expected {t['properties']!r}",
            )
        replicated = self.expect["replicated_type"]
        label = self.cli(self.admin, "volume", "type", "show", replicated)
        shown = self.osc(self.admin, "volume", "type", "show", replicated)
        props = shown.get("properties") or {}
        check(
            props.get("replication_enabled") == "<is> True",
            label,
            f"properties {props!r} lack replication_enabled='<is> True'",
        )

    def volume_create_delete(self):
        name = "judge-created-1"
        replicated = self.expect["replicated_type"]
        argv = (
            "volume", "create", "--size", "2", "--type", replicated,
            "--property", "purpose=judge", name,
        )
        label = self.cli(self.tenant, *argv)
        created = self.osc(self.tenant, *argv)
        vid = created.get("id")
        check(vid, label, f"no id in {created!r}")
        check(created.get("name") == name, label, f"name {created.get('name')!r}")
        check(created.get("size") == 2, label, f"size {created.get('size')!r}")
        check(created.get("type") == replicated, label, f"type {created.get('type')!r}")
        check(
            created.get("status") in ("creating", "available"),
            label,
            f"status {created.get('status')!r}",
        )

        def available():
            shown = self.osc(self.tenant, "volume", "show", vid)
            return shown if shown.get("status") == "available" else None

        label = self.cli(self.tenant, "volume", "show", vid)
        shown = self.wait(f"{label} (until available)", available)
        check(shown.get("name") == name, label, f"name {shown.get('name')!r}")
        props = shown.get("properties") or {}
        check(props.get("purpose") == "judge", label, f"properties {props!r}")
        listed = self.osc(self.tenant, "volume", "list")
        check(
            any(v.get("ID") == vid for v in listed),
            self.cli(self.tenant, "volume", "list"),
            f"the created volume {vid} is not listed",
        )
        self.osc(self.tenant, "volume", "delete", vid, json_out=False)

        def gone():
            return all(v.get("ID") != vid for v in self.osc(self.tenant, "volume", "list"))

        self.wait(f"{self.cli(self.tenant, 'volume', 'list')} (until {vid} is deleted)", gone)
        code, err = self.osc(self.tenant, "volume", "show", vid, must_fail=True)
        check(
            any(m in err.lower() for m in ("no volume", "could not be found", "not found")),
            f"{self.cli(self.tenant, 'volume', 'show', vid)} (deleted)",
            f"exit {code} without a not-found message: {err.strip()}",
        )
        print(f"ok   {self.cli(self.tenant, 'volume', 'show', vid)}: not found after delete", flush=True)

    def volume_manage(self):
        m = self.expect["manage"]
        name = "judge-managed-1"
        argv = (
            "volume", "create",
            "--remote-source", f"source-name={m['source_name']}",
            "--host", m["host"],
            "--type", m["type"],
            "--bootable",
            name,
        )
        label = self.cli(self.admin, *argv)
        managed = self.osc(self.admin, *argv)
        vid = managed.get("id")
        check(vid, label, f"no id in {managed!r}")
        check(managed.get("name") == name, label, f"name {managed.get('name')!r}")

        def available():
            shown = self.osc(self.admin, "volume", "show", vid)
            check(
                shown.get("status") in ("creating", "available"),
                self.cli(self.admin, "volume", "show", vid),
                f"the managed volume went {shown.get('status')!r}",
            )
            return shown if shown.get("status") == "available" else None

        label = self.cli(self.admin, "volume", "show", vid)
        shown = self.wait(f"{label} (until managed)", available)
        check(shown.get("size") == m["size"], label, f"size {shown.get('size')!r}, expected {m['size']}")
        check(shown.get("type") == m["type"], label, f"type {shown.get('type')!r}")
        check(str(shown.get("bootable")).lower() == "true", label, f"bootable {shown.get('bootable')!r}")
        check(
            shown.get("os-vol-host-attr:host") == m["host"],
            label,
            f"host {shown.get('os-vol-host-attr:host')!r}, expected {m['host']!r}",
        )
        self.osc(self.admin, "volume", "delete", "--remote", vid, json_out=False)

        def gone():
            return all(v.get("ID") != vid for v in self.osc(self.admin, "volume", "list"))

        self.wait(f"{self.cli(self.admin, 'volume', 'list')} (until {vid} is unmanaged)", gone)

    # ------------------------------------------------------------------ array

    def array(self):
        a = self.expect["array"]
        with open(self.args.arrays) as f:
            entry = json.load(f)[a["name"]]
        url = entry["url"]
        check(
            url.startswith("https://"),
            "arrays.json",
            f"py-pure-client speaks HTTPS only; the array is served at {url}",
        )
        target = url[len("https://"):].rstrip("/")
        label = f"flasharray.Client({target})"
        with watched(label):
            from pypureclient import flasharray
            from pypureclient.configuration import Configuration

            config = Configuration(ssl_ca_cert=entry["ca_file"])
            config.verify_ssl = True
            client = flasharray.Client(
                target, api_token=entry["api_token"], configuration=config, timeout=30
            )
        print(f"ok   {label} (login)", flush=True)

        def listed(call, fn, **kw):
            with watched(call):
                resp = fn(**kw)
            check(
                isinstance(resp, flasharray.ValidResponse),
                call,
                f"{type(resp).__name__}: {getattr(resp, 'errors', resp)!r}",
            )
            check(resp.status_code == 200, call, f"status {resp.status_code}")
            with watched(call):
                items = list(resp.items)
            print(f"ok   {call}: {len(items)} item(s)", flush=True)
            return items

        arrays = listed("get_arrays", client.get_arrays)
        check(
            [x.name for x in arrays] == [a["name"]],
            "get_arrays",
            f"names {[x.name for x in arrays]}",
        )

        vols = listed("get_volumes", client.get_volumes)
        got = {v.name: v for v in vols}
        want = by(a["volumes"], "name")
        check(sorted(got) == sorted(want), "get_volumes", f"names {sorted(got)}, expected {sorted(want)}")
        for name, v in want.items():
            check(
                (got[name].provisioned, got[name].destroyed) == (v["provisioned"], v["destroyed"]),
                "get_volumes",
                f"{name}: provisioned/destroyed {got[name].provisioned}/{got[name].destroyed}, "
                f"expected {v['provisioned']}/{v['destroyed']}",
            )
        check(all(v.id and v.serial for v in vols), "get_volumes", "a volume lacks id or serial")

        call = "get_volumes(limit=3, continuation_token=...)"
        names, token, pages = [], None, 0
        while True:
            kw = {"limit": 3}
            if token:
                kw["continuation_token"] = token
            with watched(call):
                page = client.get_volumes(**kw)
                check(
                    isinstance(page, flasharray.ValidResponse),
                    call,
                    f"{type(page).__name__}: {getattr(page, 'errors', page)!r}",
                )
                items = list(page.items)
            check(len(items) <= 3, call, f"{len(items)} items on a page of 3")
            names += [v.name for v in items]
            pages += 1
            token = page.continuation_token
            if not token:
                break
            check(pages < 100, call, "the continuation tokens never end")
        check(
            sorted(names) == sorted(want) and pages == (len(want) + 2) // 3,
            call,
            f"{pages} page(s) with {sorted(names)}, expected {sorted(want)}",
        )
        print(f"ok   {call}: {pages} page(s)", flush=True)

        pgs = listed("get_protection_groups", client.get_protection_groups)
        got = {g.name: g for g in pgs}
        want = by(a["protection_groups"], "name")
        check(sorted(got) == sorted(want), "get_protection_groups", f"names {sorted(got)}, expected {sorted(want)}")
        check(want, "get_protection_groups", "the world has no protection group to compare")
        for name, g in want.items():
            check(
                (got[name].volume_count, got[name].target_count) == (g["volume_count"], g["target_count"]),
                "get_protection_groups",
                f"{name}: volume/target count {got[name].volume_count}/{got[name].target_count}, "
                f"expected {g['volume_count']}/{g['target_count']}",
            )

        snaps = listed("get_protection_group_snapshots", client.get_protection_group_snapshots)
        got = {s.name: s for s in snaps}
        want = by(a["pg_snapshots"], "name")
        check(
            sorted(got) == sorted(want),
            "get_protection_group_snapshots",
            f"names {sorted(got)}, expected {sorted(want)}",
        )
        check(want, "get_protection_group_snapshots", "the world has no snapshot to compare")
        for name, s in want.items():
            check(
                (got[name].source.name, got[name].suffix) == (s["source"], s["suffix"]),
                "get_protection_group_snapshots",
                f"{name}: source/suffix {got[name].source.name}/{got[name].suffix}",
            )
        for name in want:
            call = f"get_protection_group_snapshots(names=[{name!r}])"
            one = listed(call, client.get_protection_group_snapshots, names=[name])
            check([s.name for s in one] == [name], call, f"names {[s.name for s in one]}")


def complaints(stderr):
    """The lines of a `-v` CLI run's stderr that are not its start banner or a
    library's deprecation note (with the source line Python prints under it)."""
    out = []
    skip_source = False
    for line in stderr.splitlines():
        if skip_source and line.startswith("  "):
            skip_source = False
            continue
        skip_source = False
        if not line.strip() or line.startswith("START with options:"):
            continue
        if DEPRECATION.match(line):
            skip_source = True
            continue
        out.append(line)
    return out


class watched:
    """Fails the judge on any Python warning or logged warning/error inside."""

    def __init__(self, call):
        self.call = call

    def __enter__(self):
        self.warnings = warnings.catch_warnings(record=True)
        self.caught = self.warnings.__enter__()
        warnings.simplefilter("always")
        self.records = []
        judge = self

        class Capture(logging.Handler):
            def emit(self, record):
                judge.records.append(record)

        self.handler = Capture(level=logging.WARNING)
        logging.getLogger().addHandler(self.handler)
        return self

    def __exit__(self, exc_type, exc, tb):
        logging.getLogger().removeHandler(self.handler)
        self.warnings.__exit__(None, None, None)
        if exc is not None:
            if isinstance(exc, Failure):
                return False
            raise Failure(self.call, f"{type(exc).__name__}: {exc}") from exc
        if self.caught:
            w = self.caught[0]
            raise Failure(self.call, f"warning {w.category.__name__}: {w.message}")
        if self.records:
            r = self.records[0]
            raise Failure(self.call, f"logged {r.levelname}: {r.getMessage()}")
        return False


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clouds", required=True, help="the served clouds.yaml")
    parser.add_argument("--arrays", required=True, help="the served arrays.json")
    parser.add_argument("--expect", required=True, help="what the world holds (JSON)")
    parser.add_argument(
        "--only", action="append", choices=SECTIONS, help="run only these sections"
    )
    args = parser.parse_args()
    with open(args.expect) as f:
        expect = json.load(f)
    judge = Judge(args, expect)
    started = time.monotonic()
    for section in args.only or SECTIONS:
        try:
            getattr(judge, section.replace("-", "_"))()
        except Failure as f:
            print(f"FAIL {f.call}: {f.why}", file=sys.stderr, flush=True)
            return 1
    print(
        f"judge: {len(args.only or SECTIONS)} section(s) passed, "
        f"{judge.calls} CLI call(s), {time.monotonic() - started:.0f} s",
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
