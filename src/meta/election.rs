//! Meta leader election: upstream's `distributed_lock_service_zookeeper` lock protocol
//! (ephemeral sequential `LOCKNODE` children of `<lock_root>/dsn.meta.server.leader`, the
//! smallest sequence owns the lock) and the in-process `distributed_lock_service_simple`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio::sync::watch;
use zookeeper_client as zk;

use super::zk_store::{backoff, classify, with_retry, ErrorKind, ZkSession};

/// The lock id of the meta leader lock.
pub const LOCK_ID: &str = "dsn.meta.server.leader";
/// The name prefix of the lock's ephemeral sequential nodes.
pub const LOCK_NODE_PREFIX: &str = "LOCKNODE";

/// What a meta knows about the leader.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LeaderView {
    /// The leader's `host:port`, if known.
    pub leader: Option<String>,
    /// True while this meta holds the lock and its session is connected.
    pub is_leader: bool,
}

/// The sequence number of a lock node name (`LOCKNODE0000000012` → 12).
pub fn lock_node_seq(name: &str) -> Option<i64> {
    let digits = name.strip_prefix(LOCK_NODE_PREFIX)?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The lock owner among the lock directory's children: the lock node with the smallest
/// sequence (other names are ignored).
pub fn lock_owner(children: &[String]) -> Option<&str> {
    children
        .iter()
        .filter_map(|c| lock_node_seq(c).map(|s| (s, c.as_str())))
        .min()
        .map(|(_, c)| c)
}

/// The lock directory for a lock root (`distributed_lock_service_parameters`).
pub fn lock_dir(lock_root: &str) -> String {
    format!("{}/{LOCK_ID}", lock_root.trim_end_matches('/'))
}

/// Set once this process has lost the lock for good (see `fatal`): from then on no view says
/// leader, even in the moment before the process restarts.
static LOCK_LOST: AtomicBool = AtomicBool::new(false);

/// A running election; cheap to clone.
#[derive(Clone)]
pub struct Election {
    rx: watch::Receiver<LeaderView>,
}

impl Election {
    /// `distributed_lock_service_simple`: this meta is always the leader.
    pub fn simple(self_addr: &str) -> Election {
        let (tx, rx) = watch::channel(LeaderView {
            leader: Some(self_addr.to_string()),
            is_leader: true,
        });
        // Keep the sender alive for the life of the process.
        std::mem::forget(tx);
        Election { rx }
    }

    /// Joins the ZooKeeper lock and runs the election in the background. An expired session
    /// (see `ZkSession`) or a deleted own lock node ends the process (as upstream's meta does)
    /// and starts it anew, so it queues for the lock again (see `fatal`). The lock is kept
    /// through lost connections, as upstream's lock service keeps it: state changes fail
    /// meanwhile, but beacons are still answered, so replica servers keep serving.
    pub async fn zookeeper(
        session: Arc<ZkSession>,
        lock_root: &str,
        self_addr: &str,
    ) -> Result<Election, String> {
        let client = session.client();
        if lock_root.trim().is_empty() || !lock_root.starts_with('/') {
            return Err(format!(
                "[meta_server] distributed_lock_service_parameters = {lock_root:?} must be an absolute ZooKeeper path"
            ));
        }
        let dir = lock_dir(lock_root);
        let dir_opts = zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all());
        let (r, _) = with_retry("mkdir", &dir, || client.mkdir(&dir, &dir_opts)).await;
        r.map_err(|e| format!("cannot create the lock directory {dir}: {e}"))?;
        let node_opts = zk::CreateMode::EphemeralSequential.with_acls(zk::Acls::anyone_all());
        let prefix = format!("{dir}/{LOCK_NODE_PREFIX}");
        // A create that is retried after a connection loss could leave an orphan node of this
        // session; such a node carries our value and is removed below like a stale one.
        let (r, _) = with_retry("create", &prefix, || {
            client.create(&prefix, self_addr.as_bytes(), &node_opts)
        })
        .await;
        let (_, seq) = r.map_err(|e| format!("cannot create the lock node under {dir}: {e}"))?;
        let me = format!("{LOCK_NODE_PREFIX}{seq}");
        log::info!("meta {self_addr} queued for the leader lock as {dir}/{me}");
        remove_own_duplicates(&client, &dir, &me, self_addr).await;
        let (tx, rx) = watch::channel(LeaderView::default());
        let self_addr = self_addr.to_string();
        tokio::spawn(async move { run_election(session, dir, me, self_addr, tx).await });
        Ok(Election { rx })
    }

    pub fn view(&self) -> LeaderView {
        let mut v = self.rx.borrow().clone();
        if LOCK_LOST.load(Ordering::SeqCst) {
            v.is_leader = false;
            v.leader = None;
        }
        v
    }

    pub fn subscribe(&self) -> watch::Receiver<LeaderView> {
        self.rx.clone()
    }
}

/// Removes older lock nodes that carry this meta's own value (left by a previous process of
/// the same meta whose session has not expired yet), so a restart does not wait for them.
async fn remove_own_duplicates(client: &zk::Client, dir: &str, me: &str, value: &str) {
    let Some(my_seq) = lock_node_seq(me) else {
        return;
    };
    let (kids, _) = with_retry("list", dir, || client.list_children(dir)).await;
    for k in kids.unwrap_or_default() {
        if lock_node_seq(&k).is_none_or(|s| s >= my_seq) {
            continue;
        }
        let path = format!("{dir}/{k}");
        if let Ok((data, _)) = client.get_data(&path).await {
            if data == value.as_bytes() {
                log::info!("removing stale lock node {path} of this meta");
                let _ = client.delete(&path, None).await;
            }
        }
    }
}

/// Gives up the lock for good: the lease is lost (session expired or lock node gone), so this
/// process must not act as leader again. Like upstream's meta it leaves at once; instead of
/// relying on a supervisor it then starts itself anew (same pid, same arguments), so the fresh
/// process reconnects (with backoff while ZooKeeper is away) and queues for the lock again
/// with an empty state. `PEGASUS_META_EXIT_ON_LOCK_LOSS=1` makes it just exit.
pub fn fatal(msg: &str) -> ! {
    LOCK_LOST.store(true, Ordering::SeqCst);
    let exit_only = std::env::var("PEGASUS_META_EXIT_ON_LOCK_LOSS").is_ok_and(|v| v == "1");
    if exit_only {
        log::error!("{msg}; the meta server exits (restart it to queue for the lock again)");
        eprintln!("pegasus_server: {msg}; exiting");
        std::process::exit(1)
    }
    log::error!("{msg}; this meta stops acting as leader and restarts its process to queue for the lock again");
    eprintln!("pegasus_server: {msg}; restarting");
    // A pause against restart storms; std::thread::sleep because nothing else may run now.
    std::thread::sleep(std::time::Duration::from_secs(1));
    let err = restart_self();
    log::error!("cannot restart the meta server process ({err}); exiting");
    std::process::exit(1)
}

/// Replaces this process with a fresh run of the same binary and arguments.
fn restart_self() -> std::io::Error {
    use std::os::unix::process::CommandExt;
    let mut args = std::env::args_os();
    // argv[0] as started (e.g. run.sh's symlink, which follows rebuilds), else /proc/self/exe;
    // the working directory is kept, so a relative argv[0] still resolves.
    let exe = match args.next() {
        Some(a) if std::path::Path::new(&a).components().count() > 1 => a.into(),
        _ => match std::env::current_exe() {
            Ok(e) => e,
            Err(e) => return e,
        },
    };
    std::process::Command::new(exe).args(args).exec()
}

/// Waits until the session's client is replaced (the session was resumed); the process ends
/// instead if the session turns out to be expired.
async fn wait_new_client(generation: &mut watch::Receiver<u64>) {
    if generation.changed().await.is_err() {
        std::future::pending::<()>().await;
    }
}

async fn run_election(
    session: Arc<ZkSession>,
    dir: String,
    me: String,
    self_addr: String,
    tx: watch::Sender<LeaderView>,
) {
    let mut generation = session.subscribe();
    let mut attempt = 0u32;
    loop {
        generation.borrow_and_update();
        let client = session.client();
        let mut states = client.state_watcher();
        let (kids, _) = with_retry("list", &dir, || client.list_children(&dir)).await;
        let kids = match kids {
            Ok(k) => k,
            Err(e) if classify(&e) == ErrorKind::Fatal => {
                // The client gave the session up; keep the lock view while it is resumed.
                log::warn!("cannot list the lock directory {dir}: {e}; waiting for the session");
                wait_new_client(&mut generation).await;
                continue;
            }
            Err(e) => {
                log::warn!("cannot list the lock directory {dir}: {e}");
                tokio::time::sleep(backoff(attempt)).await;
                attempt += 1;
                continue;
            }
        };
        attempt = 0;
        if !kids.contains(&me) {
            fatal(&format!("the lock node {dir}/{me} was deleted"));
        }
        let Some(owner) = lock_owner(&kids).map(str::to_string) else {
            continue;
        };
        let watcher = if owner == me {
            let path = format!("{dir}/{me}");
            match client.check_and_watch_stat(&path).await {
                Ok((Some(_), w)) => {
                    let was = tx.borrow().is_leader;
                    tx.send_modify(|v| {
                        v.leader = Some(self_addr.clone());
                        v.is_leader = true;
                    });
                    if !was {
                        log::info!("this meta ({self_addr}) got the leader lock {path}");
                    }
                    w
                }
                Ok((None, _)) => fatal(&format!("the lock node {path} was deleted")),
                Err(e) if classify(&e) == ErrorKind::Fatal => {
                    wait_new_client(&mut generation).await;
                    continue;
                }
                Err(e) => {
                    log::warn!("cannot watch {path}: {e}");
                    tokio::time::sleep(backoff(0)).await;
                    continue;
                }
            }
        } else {
            let path = format!("{dir}/{owner}");
            match client.get_and_watch_data(&path).await {
                Ok((data, _, w)) => {
                    let leader = String::from_utf8_lossy(&data).trim().to_string();
                    let changed = tx.borrow().leader.as_deref() != Some(leader.as_str());
                    tx.send_modify(|v| {
                        v.leader = Some(leader.clone());
                        v.is_leader = false;
                    });
                    if changed {
                        log::info!("meta leader is {leader} (lock node {path})");
                    }
                    w
                }
                Err(zk::Error::NoNode) => continue,
                Err(e) if classify(&e) == ErrorKind::Fatal => {
                    wait_new_client(&mut generation).await;
                    continue;
                }
                Err(e) => {
                    log::warn!("cannot read the lock owner {path}: {e}");
                    tokio::time::sleep(backoff(0)).await;
                    continue;
                }
            }
        };
        // Wait for the watched node to change, for the connection to come back after a
        // disconnection (watches may have been missed meanwhile), or for a resumed session.
        tokio::select! {
            _ = watcher.changed() => {}
            _ = wait_new_client(&mut generation) => {}
            _ = async {
                loop {
                    if states.changed().await == zk::SessionState::SyncConnected {
                        break;
                    }
                }
            } => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_node_names() {
        assert_eq!(lock_node_seq("LOCKNODE0000000012"), Some(12));
        assert_eq!(lock_node_seq("LOCKNODE0000000000"), Some(0));
        assert_eq!(lock_node_seq("LOCKNODE"), None);
        assert_eq!(lock_node_seq("LOCKNODEx1"), None);
        assert_eq!(lock_node_seq("other0001"), None);
    }

    #[test]
    fn owner_is_smallest_sequence() {
        let kids: Vec<String> = [
            "LOCKNODE0000000010",
            "LOCKNODE0000000002",
            "junk",
            "LOCKNODE0000000007",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert_eq!(lock_owner(&kids), Some("LOCKNODE0000000002"));
        assert_eq!(lock_owner(&[]), None);
        // Sequences past i32 are 19 digits and still order numerically.
        let big = vec![
            "LOCKNODE2147483648000".to_string(),
            "LOCKNODE0000000009".to_string(),
        ];
        assert_eq!(lock_owner(&big), Some("LOCKNODE0000000009"));
    }

    #[test]
    fn lock_dir_layout() {
        assert_eq!(
            lock_dir("/pegasus/onebox/lock/"),
            "/pegasus/onebox/lock/dsn.meta.server.leader"
        );
    }

    #[test]
    fn simple_lock_is_always_leader() {
        let e = Election::simple("127.0.0.1:34601");
        assert_eq!(
            e.view(),
            LeaderView {
                leader: Some("127.0.0.1:34601".into()),
                is_leader: true
            }
        );
    }
}
