//! End-to-end PacificA tests of the real binary: a meta and three replica servers; writes
//! go to primaries and must be on every replica; a replica whose mutation log is corrupt is
//! moved aside to `.err` at restart and rebuilt by learning, losing nothing.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::*;
use pegasus_rs::idl::dsn::Blob;
use pegasus_rs::idl::dsn_layer2::QueryCfgResponse;
use pegasus_rs::idl::rrdb;
use pegasus_rs::rpc::frame::Protocol;

const META: u16 = 28621;
const REPLICAS: [u16; 3] = [28821, 28822, 28823];

fn healthy(r: &QueryCfgResponse) -> bool {
    r.partitions.as_ref().is_some_and(|ps| {
        !ps.is_empty()
            && ps.iter().all(|p| {
                p.primary.is_some_and(|a| !a.is_invalid())
                    && p.secondaries.as_ref().map_or(0, |s| s.len()) == 2
            })
    })
}

fn wait_healthy(meta: &mut Conn) -> QueryCfgResponse {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let r = query(meta, "temp");
        if healthy(&r) {
            return r;
        }
        assert!(Instant::now() < deadline, "not healthy in time: {r:?}");
        std::thread::sleep(Duration::from_millis(300));
    }
}

fn primary_port(r: &QueryCfgResponse, pidx: i32) -> u16 {
    r.partitions.as_ref().unwrap()[pidx as usize]
        .primary
        .unwrap()
        .port()
}

/// Writes through the primaries, retrying while a partition changes hands.
fn put(meta: &mut Conn, app_id: i32, hk: &str, value: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let cfg = query(meta, "temp");
        let p = pidx_of(hk.as_bytes(), 4);
        let port = primary_port(&cfg, p);
        if port != 0 {
            let mut c = Conn::connect(port, Protocol::Rdsn);
            let req = rrdb::UpdateRequest {
                key: Some(key(hk.as_bytes(), b"s")),
                value: Some(Blob(value.as_bytes().to_vec())),
                expire_ts_seconds: Some(0),
                ..Default::default()
            };
            let (e, b) = c.call("RPC_RRDB_RRDB_PUT", app_id, p, &req);
            if e == "ERR_OK" && result::<rrdb::UpdateResponse>(&b).error == Some(0) {
                return;
            }
        }
        assert!(Instant::now() < deadline, "write of {hk} never succeeded");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn get(port: u16, app_id: i32, hk: &str) -> (String, Option<Vec<u8>>) {
    let mut c = Conn::connect(port, Protocol::Rdsn);
    let (e, b) = c.call(
        "RPC_RRDB_RRDB_GET",
        app_id,
        pidx_of(hk.as_bytes(), 4),
        &key(hk.as_bytes(), b"s"),
    );
    if e != "ERR_OK" {
        return (e, None);
    }
    let r: rrdb::ReadResponse = result(&b);
    (e, r.value.map(|v| v.0).filter(|_| r.error == Some(0)))
}

fn log_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let reps = dir.join("data/replica/reps");
    for r in std::fs::read_dir(reps).into_iter().flatten().flatten() {
        for f in std::fs::read_dir(r.path().join("plog"))
            .into_iter()
            .flatten()
            .flatten()
        {
            let len = f.metadata().map(|m| m.len()).unwrap_or(0);
            if len > 200 {
                out.push(f.path());
            }
        }
    }
    out.sort();
    out
}

#[test]
fn three_replicas_survive_a_corrupt_log_by_learning() {
    let tmp = tempfile::tempdir().unwrap();
    let mdir = tmp.path().join("meta1");
    std::fs::create_dir_all(&mdir).unwrap();
    write_config_with(&mdir, META, REPLICAS[0], 3, "");
    let _meta_srv = start(&mdir, "meta");
    let mut dirs = Vec::new();
    let mut servers = Vec::new();
    for port in REPLICAS {
        let d = tmp.path().join(format!("replica{port}"));
        std::fs::create_dir_all(&d).unwrap();
        write_config_with(&d, META, port, 3, "");
        servers.push(Some(start(&d, "replica")));
        dirs.push(d);
    }
    let mut meta = Conn::connect(META, Protocol::Rdsn);
    let cfg = wait_healthy(&mut meta);
    let app_id = cfg.app_id.unwrap();
    let keys: Vec<String> = (0..200).map(|i| format!("k{i}")).collect();
    for k in &keys {
        put(&mut meta, app_id, k, &format!("v-{k}"));
    }
    // Every replica logged the writes of its partitions: corrupt one of replica 2's logs.
    servers[1].take();
    let files = log_files(&dirs[1]);
    assert!(!files.is_empty(), "replica 2 has no mutation log with data");
    let victim = &files[0];
    let mut bytes = std::fs::read(victim).unwrap();
    // Block 0 is the 60-byte file header; the first mutation block's body starts at 76.
    bytes[76 + 20] ^= 0xFF;
    std::fs::write(victim, &bytes).unwrap();
    servers[1] = Some(start(&dirs[1], "replica"));
    // The replica with the corrupt log is moved aside and rebuilt by learning.
    let deadline = Instant::now() + Duration::from_secs(30);
    let moved = loop {
        let reps = dirs[1].join("data/replica/reps");
        let errs: Vec<_> = std::fs::read_dir(&reps)
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().ends_with(".err"))
            .collect();
        if !errs.is_empty() || Instant::now() > deadline {
            break errs.len();
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(moved, 1, "the corrupt replica must be renamed to .err");
    // Writes keep working meanwhile, and the group heals to 3 replicas.
    for k in &keys[..20] {
        put(&mut meta, app_id, k, &format!("v2-{k}"));
    }
    let cfg = wait_healthy(&mut meta);
    for (i, k) in keys.iter().enumerate() {
        let want = if i < 20 {
            format!("v2-{k}")
        } else {
            format!("v-{k}")
        };
        let port = primary_port(&cfg, pidx_of(k.as_bytes(), 4));
        let (e, v) = get(port, app_id, k);
        assert_eq!(
            (e.as_str(), v.as_deref()),
            ("ERR_OK", Some(want.as_bytes())),
            "key {k}"
        );
    }
    // The rebuilt replica holds every key too: read its partitions as backup requests.
    let reps = dirs[1].join("data/replica/reps");
    let victim_dir = victim.parent().and_then(|p| p.parent()).unwrap();
    let name = victim_dir
        .file_name()
        .unwrap()
        .to_string_lossy()
        .to_string();
    assert!(
        reps.join(&name).join("data/rdb/CURRENT").exists(),
        "replica {name} was not rebuilt"
    );
    let victim_pidx: i32 = name.split('.').nth(1).unwrap().parse().unwrap();
    if primary_port(&cfg, victim_pidx) != REPLICAS[1] {
        let mut c = Conn::connect(REPLICAS[1], Protocol::Rdsn);
        let mut checked = 0;
        for (i, k) in keys.iter().enumerate() {
            if pidx_of(k.as_bytes(), 4) != victim_pidx {
                continue;
            }
            let want = if i < 20 {
                format!("v2-{k}")
            } else {
                format!("v-{k}")
            };
            // The meta lists the rebuilt replica as a secondary a moment before the replica
            // itself learns the new configuration; until then it refuses reads.
            let deadline = Instant::now() + Duration::from_secs(30);
            let (e, b) = loop {
                let (e, b) = c.call_backup(
                    "RPC_RRDB_RRDB_GET",
                    app_id,
                    victim_pidx,
                    &key(k.as_bytes(), b"s"),
                );
                if e != "ERR_INVALID_STATE" || Instant::now() > deadline {
                    break (e, b);
                }
                std::thread::sleep(Duration::from_millis(200));
            };
            assert_eq!(e, "ERR_OK");
            let r: rrdb::ReadResponse = result(&b);
            // The learner may trail the primary by the last commit; older keys must be there.
            if i >= 20 {
                assert_eq!(
                    r.value.map(|v| v.0),
                    Some(want.into_bytes()),
                    "key {k} on the rebuilt replica"
                );
                checked += 1;
            }
        }
        assert!(checked > 0);
    }
}
