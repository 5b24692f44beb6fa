# Backup policies on a private onebox (1 meta, 3 replica servers, ports 22601/22801), managed
# with `pegasus_admin` (the C++ shell's policy commands; the Go admin-cli has none): a policy
# takes scheduled backups (the one-day floor of the interval lowered to 5 s by
# [meta_server] backup_policy_min_interval_seconds), its GC keeps the history count on the
# block service, `/meta/backup_policy` lists it, the shared admin-cli restores its latest
# backup, and upstream's refusals answer bad policies.
import json
import os
import re
import time
import urllib.request

import pytest

import pgharness
from pgharness import OK

pytestmark = pytest.mark.restart  # a cluster of its own; sorted with the restarting tests

META_PORT_BASE = 22600
REPLICA_PORT_BASE = 22800
SETTINGS = {
    ("meta_server", "backup_policy_min_interval_seconds"): "5",
    ("replication", "cold_backup_checkpoint_reserve_minutes"): "0",
}


class PolicyCluster(pgharness.ConfiguredOnebox):
    def __init__(self):
        super().__init__("pegasus-policy-", "policy_run_sh.log", META_PORT_BASE,
                         REPLICA_PORT_BASE, SETTINGS, pgharness.log)


@pytest.fixture(scope="module")
def pol(reactor_thread):
    c = PolicyCluster()
    if c.bin is None:
        pytest.skip("no pegasus_server binary (set PEGASUS_SERVER_BIN)")
    try:
        c.run("start_onebox", timeout=300)
        c.wait_healthy()
        yield c
    finally:
        c.destroy()


def completed_backups(out):
    """The ids of finished backups in `query_backup_policy` output."""
    return [int(m.group(1)) for m in re.finditer(r"^\s+(\d{13})\s+\d{13}\s+(\d{13})\s", out, re.M)]


def test_policy_backups_on_schedule_and_gc(pol):
    c = pgharness.open_client(pol.metas, "temp", deadline_s=60)
    data = {}
    try:
        for i in range(200):
            hk, sk, v = "p%02d" % (i % 23), "s%03d" % i, "v%d" % i
            assert c.set(hk, sk, v) == (OK, None)
            data[(hk, sk)] = v
    finally:
        c.close()

    # upstream's refusals
    rc, out = pol.tool("add_backup_policy", "-p", "quick", "-b", "local_service", "-a", "1",
                       "-i", "2", "-s", "24:00", "-c", "1")
    assert rc != 0 and "backup interval must be >= 5" in out, out
    rc, out = pol.tool("add_backup_policy", "-p", "1bad", "-b", "local_service", "-a", "1",
                       "-i", "10", "-s", "24:00", "-c", "1")
    assert rc != 0 and "invalid policy name: '1bad'" in out, out
    rc, out = pol.tool("add_backup_policy", "-p", "quick", "-b", "local_service", "-a", "999",
                       "-i", "10", "-s", "24:00", "-c", "1")
    assert rc != 0 and "invalid app 999" in out, out
    rc, out = pol.tool("add_backup_policy", "-p", "quick", "-b", "nope", "-a", "1",
                       "-i", "10", "-s", "24:00", "-c", "1")
    assert rc != 0 and "invalid backup_provider_type: nope" in out, out

    rc, out = pol.tool("add_backup_policy", "-p", "quick", "-b", "local_service", "-a", "1",
                       "-i", "10", "-s", "24:00", "-c", "1")
    assert rc == 0 and "add backup policy succeed, policy_name = quick" in out, out
    rc, out = pol.tool("add_backup_policy", "-p", "quick", "-b", "local_service", "-a", "1",
                       "-i", "10", "-s", "24:00", "-c", "1")
    assert rc != 0 and "policy name is already exist" in out, out

    # two scheduled backups; the GC keeps one
    seen = set()
    deadline = time.time() + 90
    out = ""
    while time.time() < deadline:
        rc, out = pol.tool("query_backup_policy", "-p", "quick", "-b", "5")
        assert rc == 0, out
        done = completed_backups(out)
        seen.update(done)
        if len(seen) >= 2 and len(done) == 1:
            break
        time.sleep(1)
    assert len(seen) >= 2, "fewer than 2 scheduled backups in 90 s:\n%s" % out
    latest = max(seen)
    assert completed_backups(out) == [latest], out
    pgharness.log("policy quick: backups %s; kept %d" % (sorted(seen), latest))
    bs = os.path.join(pol.onebox_dir, "block_service", "local_service", "onebox")
    deadline = time.time() + 30
    while time.time() < deadline:
        kept = sorted(int(d) for d in os.listdir(bs) if d.isdigit())
        finished = [k for k in kept if os.path.exists(os.path.join(bs, str(k), "backup_info"))]
        if min(seen) not in kept:
            break
        time.sleep(1)
    assert min(seen) not in kept, (sorted(seen), kept)
    assert latest in finished, (latest, kept)
    info = json.load(open(os.path.join(bs, str(latest), "backup_info")))
    assert info["backup_id"] == latest and info["end_time_ms"] > 0, info
    assert os.path.isfile(os.path.join(bs, str(latest), "temp_1", "meta", "app_backup_status"))

    with urllib.request.urlopen("http://%s/meta/backup_policy" % pol.metas[0], timeout=10) as r:
        page = json.loads(r.read().decode())
    assert page["quick"] == {"name": "quick", "backup_provider_type": "local_service",
                             "backup_interval": "10", "app_ids": "[1]", "start_time": "24:00",
                             "status": "enabled", "backup_history_count": "1"}, page

    rc, out = pol.tool("disable_backup_policy", "-p", "quick", "-f")
    assert rc == 0, out
    rc, out = pol.tool("ls_backup_policy")
    assert "status               : disabled" in out, out

    # the latest backup restores with the shared admin-cli
    out = pol.admin("restore -c onebox -a temp -i 1 -t %d -b local_service -n temp_back" % latest)
    assert "Done!" in out, out
    c = pgharness.open_client(pol.metas, "temp_back", deadline_s=60)
    try:
        for (hk, sk), v in sorted(data.items()):
            assert c.get(hk, sk) == (OK, v.encode()), (hk, sk)
    finally:
        c.close()
