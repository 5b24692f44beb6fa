# Cold backup and restore through the shared, unmodified admin-cli against the session's
# cluster (its local_service block service under onebox/block_service/local_service): records
# written with pypegasus3, a one-off backup, more writes, a restore into a new table that must
# hold exactly the backed-up records while the old table keeps its later writes, and the files
# named as upstream names them.
import json
import os
import re
import time

import pytest

import pgharness
from pgharness import NOT_FOUND, OK
from test_admin_cli import admin, new_table, table_id  # noqa: F401 - fixtures and helpers

CLUSTER = "onebox"


def wait_backup(admin, app_id, backup_id, timeout=180):  # noqa: F811
    deadline = time.time() + timeout
    out = ""
    while time.time() < deadline:
        out = admin("query-backup-status %d %d" % (app_id, backup_id))
        if "completed" in out:
            return out
        assert not re.search(r"\|\s*failed\s*\|", out), out
        time.sleep(2)
    raise AssertionError("backup %d not completed after %ds:\n%s" % (backup_id, timeout, out))


def test_backup_then_restore_into_a_new_table(cluster, admin):  # noqa: F811
    name = new_table(admin, "bk")
    app_id = table_id(admin, name)
    c = pgharness.open_client(cluster.metas, name, deadline_s=60)
    before = {}
    try:
        for i in range(300):
            hk, sk, v = "hk%03d" % (i % 37), "sk%03d" % i, "v%d" % i
            assert c.set(hk, sk, v) == (OK, None)
            before[(hk, sk)] = v
    finally:
        c.close()

    out = admin("backup %d local_service" % app_id)
    m = re.search(r"BackupID: (\d+)", out)
    assert m, out
    assert "Backup succeed" in out, out
    backup_id = int(m.group(1))
    status = wait_backup(admin, app_id, backup_id)
    pgharness.log("backup %d of %s:\n%s" % (backup_id, name, status))
    assert "local_service" in status and name in status, status

    # writes after the backup: new keys, changed values, removed keys
    c = pgharness.open_client(cluster.metas, name, deadline_s=60)
    after = dict(before)
    try:
        for i in range(100):
            assert c.set("late", "sk%03d" % i, "late%d" % i) == (OK, None)
            after[("late", "sk%03d" % i)] = "late%d" % i
        for i in range(0, 300, 10):
            hk, sk = "hk%03d" % (i % 37), "sk%03d" % i
            assert c.set(hk, sk, "changed") == (OK, None)
            after[(hk, sk)] = "changed"
        for i in range(5, 300, 50):
            hk, sk = "hk%03d" % (i % 37), "sk%03d" % i
            assert c.remove(hk, sk)[0] == OK
            del after[(hk, sk)]
    finally:
        c.close()

    new = name + "_restored"
    out = admin("restore -c %s -a %s -i %d -t %d -b local_service -n %s"
                % (CLUSTER, name, app_id, backup_id, new), timeout=300)
    assert re.search(r"new AppID: \d+", out), out
    assert "Done!" in out, out

    # the restored table holds exactly what was backed up
    c = pgharness.open_client(cluster.metas, new, deadline_s=60)
    try:
        for (hk, sk), v in sorted(before.items()):
            assert c.get(hk, sk) == (OK, v.encode()), (hk, sk)
        for i in range(0, 100, 7):
            assert c.get("late", "sk%03d" % i)[0] == NOT_FOUND
        total = 0
        for h in range(37):
            n = c.sort_key_count("hk%03d" % h)
            assert n[0] == OK, n
            total += n[1]
        assert total == len(before), (total, len(before))
        # and it takes writes
        assert c.set("new", "sk", "x") == (OK, None)
    finally:
        c.close()
    # the old table is untouched by the restore
    c = pgharness.open_client(cluster.metas, name, deadline_s=60)
    try:
        for (hk, sk), v in sorted(after.items()):
            assert c.get(hk, sk) == (OK, v.encode()), (hk, sk)
    finally:
        c.close()

    # upstream's layout on the block service
    root = os.path.join(cluster.onebox_dir, "block_service", "local_service", CLUSTER,
                        str(backup_id))
    info = json.load(open(os.path.join(root, "backup_info")))
    assert info["backup_id"] == backup_id and info["app_id"] == app_id, info
    assert info["app_name"] == name
    assert os.path.isfile(os.path.join(root, ".backup_info.meta"))
    app_dir = os.path.join(root, "%s_%d" % (name, app_id))
    meta = json.load(open(os.path.join(app_dir, "meta", "app_metadata")))
    assert meta["app_name"] == name and meta["partition_count"] == 4 and meta["envs"] == {}
    for pidx in range(4):
        pdir = os.path.join(app_dir, str(pidx))
        chkpt = open(os.path.join(pdir, "current_checkpoint")).read()
        assert re.match(r"^chkpt_[\w.-]+_\d+$", chkpt), chkpt
        md = json.load(open(os.path.join(pdir, chkpt, "backup_metadata")))
        assert {"checkpoint_decree", "checkpoint_timestamp", "files",
                "checkpoint_total_size"} <= set(md), md
        assert md["checkpoint_total_size"] == sum(f["size"] for f in md["files"])
        for f in md["files"]:
            side = json.load(open(os.path.join(pdir, chkpt, ".%s.meta" % f["name"])))
            assert side == {"md5": f["md5"], "size": f["size"]}, (side, f)


def test_backup_and_restore_errors(cluster, admin):  # noqa: F811
    out = admin("backup 99999 local_service")
    assert "ERR_APP_NOT_EXIST" in out, out
    name = new_table(admin, "bkerr")
    app_id = table_id(admin, name)
    out = admin("backup %d no_such_provider" % app_id)
    assert "ERR_INVALID_PARAMETERS" in out and "invalid backup_provider_type" in out, out
    out = admin("query-backup-status %d 12345" % app_id)
    assert "Backup not found" in out, out
    out = admin("restore -c %s -a %s -i %d -t 12345 -b local_service -n %s_r"
                % (CLUSTER, name, app_id, name))
    assert "ERR_OBJECT_NOT_FOUND" in out, out


@pytest.mark.restart
def test_replica_killed_during_a_backup(cluster, admin):  # noqa: F811
    """A replica server killed with -9 right after a backup starts: the backup still ends,
    completed (the new primaries upload) or failed with a clear status, never hung; a
    completed one restores exactly."""
    if cluster.box is None:
        pytest.skip("an external cluster: its servers are not ours to kill")
    name = new_table(admin, "bkkill")
    app_id = table_id(admin, name)
    c = pgharness.open_client(cluster.metas, name, deadline_s=60)
    data = {}
    try:
        for i in range(2000):
            hk, sk, v = "h%03d" % (i % 101), "s%04d" % i, "v%d-" % i + "x" * 200
            assert c.set(hk, sk, v) == (OK, None)
            data[(hk, sk)] = v
    finally:
        c.close()
    out = admin("backup %d local_service" % app_id)
    m = re.search(r"BackupID: (\d+)", out)
    assert m, out
    backup_id = int(m.group(1))
    pid_file = os.path.join(cluster.onebox_dir, "replica1", "pegasus_server.pid")
    os.kill(int(open(pid_file).read().strip()), 9)
    t_kill = time.time()
    try:
        deadline = time.time() + 240
        status = ""
        while time.time() < deadline:
            out = admin("query-backup-status %d %d" % (app_id, backup_id))
            row = [l for l in out.splitlines() if str(backup_id) in l]
            if row and ("completed" in row[0] or re.search(r"\|\s*failed\s*\|", row[0])):
                status = "completed" if "completed" in row[0] else "failed"
                break
            time.sleep(2)
        assert status, "backup %d neither completed nor failed %.0fs after the kill:\n%s" \
            % (backup_id, time.time() - t_kill, out)
        pgharness.log("backup %d %s %.1fs after replica1 was killed" %
                      (backup_id, status, time.time() - t_kill))
    finally:
        cluster.box.run("start_onebox_instance", "-r", "1", timeout=180)
        cluster.box.wait_healthy()
    if status == "completed":
        new = name + "_r"
        out = admin("restore -c %s -a %s -i %d -t %d -b local_service -n %s"
                    % (CLUSTER, name, app_id, backup_id, new), timeout=300)
        assert "Done!" in out, out
        c = pgharness.open_client(cluster.metas, new, deadline_s=60)
        try:
            for (hk, sk), v in sorted(data.items())[::7]:
                assert c.get(hk, sk) == (OK, v.encode()), (hk, sk)
        finally:
            c.close()
