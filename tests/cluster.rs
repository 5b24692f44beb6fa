//! End-to-end tests of the real `pegasus_server` binary: a meta and a replica server on their
//! own ports and directories, driven over the wire with RDSN (admin calls, as the C++ shell
//! does) and THFT v1 (the Java client's framing), including a restart.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::*;
use pegasus_rs::idl::dsn::{Blob, ErrorCode};
use pegasus_rs::idl::dsn_layer2::{AppStatus, QueryCfgRequest, QueryCfgResponse};
use pegasus_rs::idl::meta_admin::*;
use pegasus_rs::idl::protocol;
use pegasus_rs::idl::rrdb;
use pegasus_rs::rpc::frame::{Protocol, ReplyValue};

#[test]
fn meta_ddl_rrdb_over_thft_v1_and_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let (mp, rp) = (28601u16, 28801u16);
    let mdir = tmp.path().join("meta1");
    let rdir = tmp.path().join("replica1");
    for d in [&mdir, &rdir] {
        std::fs::create_dir_all(d).unwrap();
        write_config(d, mp, rp);
    }
    let mut meta_srv = Some(start(&mdir, "meta"));
    let mut rep_srv = Some(start(&rdir, "replica"));
    let mut meta = Conn::connect(mp, Protocol::Rdsn);

    // The default table exists with 4 partitions, ballot >= 1 once served.
    let temp = wait_served(&mut meta, "temp");
    assert_eq!(temp.partition_count, Some(4));
    assert_eq!(temp.is_stateful, Some(true));
    assert!(temp
        .partitions
        .unwrap()
        .iter()
        .all(|p| p.ballot.unwrap() >= 1));

    // Create, list, and refuse duplicates.
    let create = |meta: &mut Conn, name: &str, pc: i32, success_if_exist: bool| {
        let (e, b) = meta.call(
            "RPC_CM_CREATE_APP",
            0,
            0,
            &ConfigurationCreateAppRequest {
                app_name: Some(name.into()),
                options: Some(CreateAppOptions {
                    partition_count: Some(pc),
                    replica_count: Some(1),
                    success_if_exist: Some(success_if_exist),
                    app_type: Some("pegasus".into()),
                    is_stateful: Some(true),
                    envs: Some(Default::default()),
                    atomic_idempotent: None,
                }),
            },
        );
        assert_eq!(e, "ERR_OK");
        result::<ConfigurationCreateAppResponse>(&b)
    };
    let r = create(&mut meta, "t1", 2, false);
    assert_eq!(r.err, Some(ErrorCode::OK));
    let t1_id = r.appid.unwrap();
    assert!(t1_id > 1);
    assert_eq!(
        create(&mut meta, "t1", 2, false).err,
        Some(ErrorCode::APP_EXIST)
    );
    assert_eq!(create(&mut meta, "t1", 2, true).appid, Some(t1_id));
    assert_eq!(
        create(&mut meta, "t1", 4, true).err,
        Some(ErrorCode::INVALID_PARAMETERS)
    );
    assert_eq!(
        create(&mut meta, "bad", 0, false).err,
        Some(ErrorCode::INVALID_PARAMETERS)
    );
    let t1 = wait_served(&mut meta, "t1");
    assert_eq!(t1.app_id, Some(t1_id));

    // RRDB over THFT v1 (the Java framing) against the replica server.
    let mut rep = Conn::connect(rp, Protocol::Thft);
    let hk = b"hk-cam";
    let p = pidx_of(hk, 2);
    let put = rrdb::UpdateRequest {
        key: Some(key(hk, b"a")),
        value: Some(Blob(b"1".to_vec())),
        expire_ts_seconds: Some(0),
        ..Default::default()
    };
    let (e, b) = rep.call("RPC_RRDB_RRDB_PUT", t1_id, p, &put);
    assert_eq!(e, "ERR_OK");
    let u: rrdb::UpdateResponse = result(&b);
    assert_eq!(
        (u.error, u.app_id, u.partition_index),
        (Some(0), Some(t1_id), Some(p))
    );
    assert!(u.decree.unwrap() >= 1);
    // A request for a partition this server does not host.
    let (e, _) = rep.call("RPC_RRDB_RRDB_GET", 999, 0, &key(hk, b"a"));
    assert_eq!(e, "ERR_OBJECT_NOT_FOUND");

    // check_and_mutate (only the Java client sends it): passes, then fails with kTryAgain.
    let cam = |rep: &mut Conn, operand: &[u8]| {
        let req = rrdb::CheckAndMutateRequest {
            hash_key: Some(Blob(hk.to_vec())),
            check_sort_key: Some(Blob(b"a".to_vec())),
            check_type: Some(rrdb::CasCheckType::CT_VALUE_BYTES_EQUAL),
            check_operand: Some(Blob(operand.to_vec())),
            mutate_list: Some(vec![
                rrdb::Mutate {
                    operation: Some(rrdb::MutateOperation::MO_PUT),
                    sort_key: Some(Blob(b"b".to_vec())),
                    value: Some(Blob(b"bv".to_vec())),
                    set_expire_ts_seconds: Some(0),
                },
                rrdb::Mutate {
                    operation: Some(rrdb::MutateOperation::MO_DELETE),
                    sort_key: Some(Blob(b"a".to_vec())),
                    value: Some(Blob(Vec::new())),
                    set_expire_ts_seconds: Some(0),
                },
            ]),
            return_check_value: Some(true),
        };
        let (e, b) = rep.call("RPC_RRDB_RRDB_CHECK_AND_MUTATE", t1_id, p, &req);
        assert_eq!(e, "ERR_OK");
        result::<rrdb::CheckAndMutateResponse>(&b)
    };
    let r = cam(&mut rep, b"1");
    assert_eq!(r.error, Some(0));
    assert_eq!(r.check_value_exist, Some(true));
    assert_eq!(r.check_value, Some(Blob(b"1".to_vec())));
    let r = cam(&mut rep, b"1");
    assert_eq!(r.error, Some(13));
    assert_eq!(r.check_value_exist, Some(false));
    let (_, b) = rep.call("RPC_RRDB_RRDB_GET", t1_id, p, &key(hk, b"b"));
    let g: rrdb::ReadResponse = result(&b);
    assert_eq!((g.error, g.value), (Some(0), Some(Blob(b"bv".to_vec()))));
    let (_, b) = rep.call("RPC_RRDB_RRDB_GET", t1_id, p, &key(hk, b"a"));
    assert_eq!(result::<rrdb::ReadResponse>(&b).error, Some(1));

    // list_apps, drop, and the name is free again.
    let list = |meta: &mut Conn| {
        let (e, b) = meta.call(
            "RPC_CM_LIST_APPS",
            0,
            0,
            &ConfigurationListAppsRequest {
                status: Some(AppStatus::AS_INVALID),
                app_name_pattern: None,
                match_type: None,
            },
        );
        assert_eq!(e, "ERR_OK");
        result::<ConfigurationListAppsResponse>(&b).infos.unwrap()
    };
    let names: Vec<_> = list(&mut meta)
        .iter()
        .map(|i| i.app_name.clone().unwrap())
        .collect();
    assert_eq!(names, vec!["temp", "t1"]);
    let (e, b) = meta.call(
        "RPC_CM_DROP_APP",
        0,
        0,
        &ConfigurationDropAppRequest {
            app_name: Some("t1".into()),
            options: Some(DropAppOptions {
                success_if_not_exist: Some(false),
                reserve_seconds: None,
            }),
        },
    );
    assert_eq!(e, "ERR_OK");
    assert_eq!(
        result::<ConfigurationDropAppResponse>(&b).err,
        Some(ErrorCode::OK)
    );
    assert_eq!(
        query(&mut meta, "t1").err,
        Some(ErrorCode::OBJECT_NOT_FOUND)
    );
    let dropped = list(&mut meta);
    assert_eq!(dropped[1].status, Some(AppStatus::AS_DROPPED));

    // rename: the new name serves the same table; a taken or unknown name is refused.
    let rename = |meta: &mut Conn, old: &str, new: &str| {
        let (e, b) = meta.call(
            "RPC_CM_RENAME_APP",
            0,
            0,
            &ConfigurationRenameAppRequest {
                old_app_name: Some(old.into()),
                new_app_name: Some(new.into()),
            },
        );
        assert_eq!(e, "ERR_OK");
        result::<ConfigurationRenameAppResponse>(&b).err
    };
    create(&mut meta, "t2", 2, false);
    assert_eq!(
        rename(&mut meta, "t2", "temp"),
        Some(ErrorCode::INVALID_PARAMETERS)
    );
    assert_eq!(
        rename(&mut meta, "nope", "x"),
        Some(ErrorCode::APP_NOT_EXIST)
    );
    assert_eq!(rename(&mut meta, "t2", "t3"), Some(ErrorCode::OK));
    assert_eq!(
        query(&mut meta, "t2").err,
        Some(ErrorCode::OBJECT_NOT_FOUND)
    );
    let t3 = query(&mut meta, "t3");
    assert_eq!((t3.err, t3.partition_count), (Some(ErrorCode::OK), Some(2)));
    // Drop it again so the table list below is unchanged.
    let (e, _) = meta.call(
        "RPC_CM_DROP_APP",
        0,
        0,
        &ConfigurationDropAppRequest {
            app_name: Some("t3".into()),
            options: Some(DropAppOptions {
                success_if_not_exist: Some(false),
                reserve_seconds: None,
            }),
        },
    );
    assert_eq!(e, "ERR_OK");

    // list_nodes and cluster_info.
    let (_, b) = meta.call(
        "RPC_CM_LIST_NODES",
        0,
        0,
        &ConfigurationListNodesRequest {
            status: Some(NodeStatus::NS_INVALID),
        },
    );
    let nodes = result::<ConfigurationListNodesResponse>(&b).infos.unwrap();
    assert_eq!(nodes.len(), 1);
    assert_eq!(
        nodes[0].node.unwrap().to_string(),
        format!("127.0.0.1:{rp}")
    );
    let (_, b) = meta.call(
        "RPC_CM_CLUSTER_INFO",
        0,
        0,
        &ConfigurationClusterInfoRequest {},
    );
    let ci: ConfigurationClusterInfoResponse = result(&b);
    let keys = ci.keys.unwrap();
    let vals = ci.values.unwrap();
    let get = |k: &str| vals[keys.iter().position(|x| x == k).unwrap()].clone();
    // Partition configurations carry upstream's hp_* twins (host names) in rDSN's framing;
    // THFT clients get them without (the shipped admin-cli and pegic, and the PyPI Python
    // client, cannot skip them).
    let served = query(&mut meta, "temp");
    for p in served.partitions.as_ref().unwrap() {
        let primary = p.primary.unwrap();
        assert_eq!(
            p.hp_primary,
            Some(pegasus_rs::idl::dsn::HostPort::new(
                "localhost",
                primary.port()
            ))
        );
        assert_eq!(p.hp_secondaries.as_ref().map(|v| v.len()), Some(0));
        assert_eq!(p.hp_last_drops.as_ref().map(|v| v.len()), Some(0));
    }
    let mut v0 = Conn::connect(mp, Protocol::Thft);
    let arg = ReplyValue {
        ttype: 12,
        bytes: protocol::encode_struct(&QueryCfgRequest {
            app_name: Some("temp".into()),
            partition_indices: Some(vec![]),
        }),
    };
    for (timeout, with_hp) in [(0, false), (5000, false)] {
        let frame = thft_v0(
            "RPC_CM_QUERY_PARTITION_CONFIG_BY_INDEX",
            v0.next_seq(),
            0,
            0,
            timeout,
            &arg,
        );
        let (e, b) = v0.call_framed(&frame);
        assert_eq!(e, "ERR_OK");
        let r: QueryCfgResponse = result(&b);
        for p in r.partitions.unwrap() {
            assert!(p.primary.is_some_and(|a| !a.is_invalid()));
            assert_eq!(p.hp_primary.is_some(), with_hp, "timeout {timeout}");
        }
    }

    let list_nodes = ReplyValue {
        ttype: 12,
        bytes: protocol::encode_struct(&ConfigurationListNodesRequest {
            status: Some(NodeStatus::NS_INVALID),
        }),
    };
    let frame = thft_v0("RPC_CM_LIST_NODES", v0.next_seq(), 0, 0, 5000, &list_nodes);
    let (e, b) = v0.call_framed(&frame);
    assert_eq!(e, "ERR_OK");
    let thft_nodes: ConfigurationListNodesResponse = result(&b);
    let thft_nodes = thft_nodes.infos.unwrap();
    assert!(!thft_nodes.is_empty());
    assert!(thft_nodes
        .iter()
        .all(|n| n.hp_node.is_none() && n.node.is_some_and(|a| !a.is_invalid())));

    // Upstream names the meta by its host:port (the reverse-DNS name of 127.0.0.1).
    assert_eq!(get("primary_meta_server"), format!("localhost:{mp}"));
    assert_eq!(
        nodes[0].hp_node,
        Some(pegasus_rs::idl::dsn::HostPort::new("localhost", rp))
    );
    assert_eq!(get("cluster_name"), "test");

    // Keys the key schema cannot hold are refused before they are logged.
    let temp_id = temp.app_id.unwrap();
    let raw_put = |k: Vec<u8>| rrdb::UpdateRequest {
        key: Some(Blob(k)),
        value: Some(Blob(b"v".to_vec())),
        expire_ts_seconds: Some(0),
        ..Default::default()
    };
    for bad in [vec![0u8], vec![0, 16, b'a']] {
        let (e, _) = rep.call("RPC_RRDB_RRDB_PUT", temp_id, 0, &raw_put(bad.clone()));
        assert_eq!(e, "ERR_INVALID_DATA", "put of key {bad:?}");
        let (e, _) = rep.call("RPC_RRDB_RRDB_GET", temp_id, 0, &Blob(bad.clone()));
        assert_eq!(e, "ERR_INVALID_DATA", "get of key {bad:?}");
    }
    let long_hash_key = vec![b'h'; 70_000];
    let multi = rrdb::MultiPutRequest {
        hash_key: Some(Blob(long_hash_key.clone())),
        kvs: Some(vec![rrdb::KeyValue::new(
            Blob(b"s".to_vec()),
            Blob(b"v".to_vec()),
            0,
        )]),
        expire_ts_seconds: Some(0),
    };
    let (e, _) = rep.call("RPC_RRDB_RRDB_MULTI_PUT", temp_id, 0, &multi);
    assert_eq!(e, "ERR_INVALID_DATA");
    // A 70 KB hash key whose 2-byte length wrapped parses as another (hash key, sort key);
    // the partition hash sent with it gives it away.
    let mut wrapped = ((long_hash_key.len() % 65536) as u16)
        .to_be_bytes()
        .to_vec();
    wrapped.extend_from_slice(&long_hash_key);
    let full_hash = pegasus_rs::base::key_schema::hash(&long_hash_key, b"");
    let mut frame = thft_v0(
        "RPC_RRDB_RRDB_PUT",
        rep.next_seq(),
        temp_id,
        (full_hash % 4) as i32,
        5000,
        &ReplyValue {
            ttype: 12,
            bytes: protocol::encode_struct(&raw_put(wrapped)),
        },
    );
    frame[40..48].copy_from_slice(&full_hash.to_be_bytes());
    let (e, _) = rep.call_framed(&frame);
    assert_eq!(e, "ERR_INVALID_DATA");

    // Write to temp, restart both servers (SIGKILL), and read it back.
    let tp = pidx_of(b"hk-restart", 4);
    let put = rrdb::UpdateRequest {
        key: Some(key(b"hk-restart", b"s")),
        value: Some(Blob(b"survives".to_vec())),
        expire_ts_seconds: Some(0),
        ..Default::default()
    };
    let (e, _) = rep.call("RPC_RRDB_RRDB_PUT", temp_id, tp, &put);
    assert_eq!(e, "ERR_OK");
    drop(rep);
    drop(meta);
    rep_srv.take();
    meta_srv.take();
    let _meta_srv = start(&mdir, "meta");
    let _rep_srv = start(&rdir, "replica");
    let mut meta = Conn::connect(mp, Protocol::Rdsn);
    wait_served(&mut meta, "temp");
    let names: Vec<_> = list(&mut meta)
        .iter()
        .map(|i| i.app_name.clone().unwrap())
        .collect();
    // Every table is kept across the restart, the dropped ones included (as dropped).
    assert_eq!(names, vec!["temp", "t1", "t3"]);
    let mut rep = Conn::connect(rp, Protocol::Thft);
    let (e, b) = rep.call("RPC_RRDB_RRDB_GET", temp_id, tp, &key(b"hk-restart", b"s"));
    assert_eq!(e, "ERR_OK");
    assert_eq!(
        result::<rrdb::ReadResponse>(&b).value,
        Some(Blob(b"survives".to_vec()))
    );
    // The replica directory has upstream's layout.
    let rdir_p = rdir.join(format!("data/replica/reps/{temp_id}.{tp}.pegasus"));
    for f in [".app-info", ".init-info", "data/rdb/CURRENT"] {
        assert!(rdir_p.join(f).exists(), "{f} missing");
    }
}

#[test]
fn malformed_frames_close_only_their_connection() {
    let tmp = tempfile::tempdir().unwrap();
    let (mp, rp) = (28611u16, 28811u16);
    let mdir = tmp.path().join("meta1");
    std::fs::create_dir_all(&mdir).unwrap();
    write_config(&mdir, mp, rp);
    let _m = start(&mdir, "meta");
    let mut good = Conn::connect(mp, Protocol::Rdsn);
    for junk in [
        &b"XXXXjunk"[..],
        &b"THFT\x00\x00\x00\x07\x00\x00\x00\x00"[..],
        &b"THFT\x00\x00\x00\x00\x00\x00\x00\x31"[..],
        &b"RDSN\x01\x00\x00\x00\xc0\x00\x00\x00"[..],
    ] {
        let mut bad = TcpStream::connect(("127.0.0.1", mp)).unwrap();
        bad.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        bad.write_all(junk).unwrap();
        let mut b = [0u8; 16];
        assert_eq!(
            bad.read(&mut b).unwrap_or(0),
            0,
            "server must close on {junk:?}"
        );
    }
    // An unknown RPC name gets ERR_HANDLER_NOT_FOUND and the good connection still works.
    let (e, _) = good.call(
        "RPC_NO_SUCH_THING",
        0,
        0,
        &ConfigurationClusterInfoRequest {},
    );
    assert_eq!(e, "ERR_HANDLER_NOT_FOUND");
    let r = query(&mut good, "temp");
    assert_eq!(r.partition_count, Some(4));
}
