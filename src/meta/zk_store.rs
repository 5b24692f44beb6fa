//! The ZooKeeper session and state store (`meta_state_service_zookeeper`): the meta's tree
//! kept in persistent, world-open znodes, with upstream's error mapping. The session is kept
//! for as long as the ZooKeeper servers keep it, as upstream's C client does: the Rust client
//! gives a session up on its own after 1.4 session timeouts without a server, so it is then
//! resumed by id and password, and only a server's verdict ends it.

use std::future::Future;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use tokio::runtime::Handle;
use tokio::sync::watch;
use zookeeper_client as zk;

use super::state_store::{Result, StateStore, StoreError};

/// A ZooKeeper client result.
pub type ZkResult<T> = std::result::Result<T, zk::Error>;

/// `[zookeeper]` connection settings.
#[derive(Debug, Clone)]
pub struct ZkOptions {
    /// Comma-separated `host:port` list (`hosts_list`).
    pub hosts: String,
    /// Session timeout (`timeout_ms`).
    pub session_timeout: Duration,
}

/// How a ZooKeeper error is handled by the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    NotFound,
    AlreadyExists,
    NotEmpty,
    /// Connection loss, timeouts, throttling: try again (upstream's ERR_TIMEOUT).
    Retry,
    /// Bad arguments and the like (upstream's ERR_INVALID_PARAMETERS).
    Invalid,
    /// The session is gone (expired, closed, auth failure): nothing will succeed any more.
    Fatal,
}

/// Maps a client error onto upstream's error classes.
pub fn classify(e: &zk::Error) -> ErrorKind {
    match e {
        zk::Error::NoNode => ErrorKind::NotFound,
        zk::Error::NodeExists => ErrorKind::AlreadyExists,
        zk::Error::NotEmpty => ErrorKind::NotEmpty,
        zk::Error::ConnectionLoss | zk::Error::Timeout | zk::Error::Throttled => ErrorKind::Retry,
        zk::Error::BadArguments(_)
        | zk::Error::BadVersion
        | zk::Error::NoChildrenForEphemerals
        | zk::Error::InvalidAcl => ErrorKind::Invalid,
        _ => ErrorKind::Fatal,
    }
}

fn to_store_error(e: &zk::Error, path: &str) -> StoreError {
    match classify(e) {
        ErrorKind::NotFound => StoreError::NotFound(path.to_string()),
        ErrorKind::AlreadyExists => StoreError::AlreadyExists(path.to_string()),
        ErrorKind::NotEmpty => StoreError::NotEmpty(path.to_string()),
        _ => StoreError::Io(format!("ZooKeeper error on {path}: {e}")),
    }
}

/// The retry pause after the n-th consecutive failure: 100 ms doubling up to 1 s (upstream
/// retries every second).
pub fn backoff(attempt: u32) -> Duration {
    Duration::from_millis((100u64 << attempt.min(4)).min(1000))
}

/// True while requests can be sent on the client's connection.
pub fn is_connected(state: zk::SessionState) -> bool {
    matches!(
        state,
        zk::SessionState::SyncConnected | zk::SessionState::ConnectedReadOnly
    )
}

/// The meta's ZooKeeper session, shared by the election and the state store. The client in
/// it is replaced when the session is resumed on a new connection; `generation` counts the
/// replacements so waiters can pick the new client up.
pub struct ZkSession {
    client: RwLock<zk::Client>,
    generation: watch::Sender<u64>,
    opts: ZkOptions,
}

impl ZkSession {
    /// Connects (retrying while no server answers) and keeps the session alive in the
    /// background. A session the servers declare expired ends the process through
    /// `on_expired` (the meta restarts itself, see `election::fatal`).
    pub async fn connect(
        opts: &ZkOptions,
        on_expired: fn(&str) -> !,
    ) -> std::result::Result<Arc<ZkSession>, String> {
        let client = connect(opts).await?;
        let (generation, _) = watch::channel(0);
        let s = Arc::new(ZkSession {
            client: RwLock::new(client),
            generation,
            opts: opts.clone(),
        });
        tokio::spawn(s.clone().keep_alive(on_expired));
        Ok(s)
    }

    /// The current client (cheap: the client is a handle).
    pub fn client(&self) -> zk::Client {
        match self.client.read() {
            Ok(c) => c.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Changes whenever the client is replaced.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.generation.subscribe()
    }

    fn replace(&self, c: zk::Client) {
        match self.client.write() {
            Ok(mut g) => *g = c,
            Err(poisoned) => *poisoned.into_inner() = c,
        }
        self.generation.send_modify(|g| *g += 1);
    }

    /// Logs connection changes; when the client gives the session up, resumes it on a new
    /// connection until a server accepts it (the ephemeral lock node lives on) or says it
    /// expired.
    async fn keep_alive(self: Arc<Self>, on_expired: fn(&str) -> !) {
        loop {
            let client = self.client();
            let mut w = client.state_watcher();
            let ended = loop {
                match w.changed().await {
                    zk::SessionState::Disconnected => log::warn!(
                        "lost the ZooKeeper connection; reconnecting (the session and the leader lock are kept while the session lives)"
                    ),
                    zk::SessionState::SyncConnected | zk::SessionState::ConnectedReadOnly => {
                        log::info!("ZooKeeper connection is back")
                    }
                    s => break s,
                }
            };
            if ended != zk::SessionState::Expired {
                on_expired(&format!("the ZooKeeper session ended ({ended:?})"));
            }
            let session = client.session().clone();
            let id = client.session_id();
            log::warn!(
                "the ZooKeeper client gave session {id} up after {:?} without a server; resuming it",
                self.opts.session_timeout * 7 / 5
            );
            let mut attempt = 0u32;
            let resumed = loop {
                let connector = zk::Client::connector()
                    .with_session(session.clone())
                    .with_session_timeout(self.opts.session_timeout)
                    .with_connection_timeout(Duration::from_secs(5));
                match connector.connect(&self.opts.hosts).await {
                    Ok(c) if c.session_id() == id => break c,
                    Ok(c) => on_expired(&format!(
                        "ZooKeeper gave a new session {} instead of {id}",
                        c.session_id()
                    )),
                    Err(zk::Error::SessionExpired) => on_expired("the ZooKeeper session expired"),
                    Err(e) => {
                        let pause = backoff(attempt);
                        log::warn!(
                            "cannot resume ZooKeeper session {id} yet ({e}); retrying in {pause:?}"
                        );
                        tokio::time::sleep(pause).await;
                        attempt += 1;
                    }
                }
            };
            log::info!("ZooKeeper session {id} resumed");
            self.replace(resumed);
        }
    }
}

/// Connects, retrying with backoff while no server answers; every failure is logged.
pub async fn connect(opts: &ZkOptions) -> std::result::Result<zk::Client, String> {
    if opts.hosts.trim().is_empty() {
        return Err("[zookeeper] hosts_list is empty".into());
    }
    let mut attempt = 0u32;
    loop {
        let connector = zk::Client::connector()
            .with_session_timeout(opts.session_timeout)
            .with_connection_timeout(Duration::from_secs(5));
        match connector.connect(&opts.hosts).await {
            Ok(c) => {
                log::info!(
                    "connected to ZooKeeper {} (session timeout {:?})",
                    opts.hosts,
                    c.session_timeout()
                );
                return Ok(c);
            }
            Err(e @ (zk::Error::BadArguments(_) | zk::Error::AuthFailed)) => {
                return Err(format!("cannot use ZooKeeper {}: {e}", opts.hosts));
            }
            Err(e) => {
                let pause = Duration::from_secs(1u64 << attempt.min(4));
                log::error!(
                    "cannot connect to ZooKeeper {} ({e}); retrying in {pause:?}",
                    opts.hosts
                );
                tokio::time::sleep(pause).await;
                attempt += 1;
            }
        }
    }
}

/// Runs `op` until it succeeds or fails with a non-retryable error. After a retried attempt
/// the first attempt may have been applied: `retried` tells the caller so.
pub async fn with_retry<T, F, Fut>(what: &str, path: &str, mut op: F) -> (ZkResult<T>, bool)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = ZkResult<T>>,
{
    let mut attempt = 0u32;
    loop {
        match op().await {
            Err(e) if classify(&e) == ErrorKind::Retry => {
                let pause = backoff(attempt);
                log::warn!("ZooKeeper {what} {path}: {e}; retrying in {pause:?}");
                tokio::time::sleep(pause).await;
                attempt += 1;
            }
            r => return (r, attempt > 0),
        }
    }
}

/// Normalises a store path to ZooKeeper's form: absolute, no trailing slash.
fn zk_path(path: &str) -> String {
    let p = path.trim_end_matches('/');
    if p.is_empty() {
        "/".to_string()
    } else if p.starts_with('/') {
        p.to_string()
    } else {
        format!("/{p}")
    }
}

fn child_path(parent: &str, child: &str) -> String {
    if parent == "/" {
        format!("/{child}")
    } else {
        format!("{parent}/{child}")
    }
}

/// How long one state-store call may take once the state is loaded: the meta makes its
/// calls with the state locked, and beacons need that lock, so a call must not wait out a
/// ZooKeeper outage (upstream retries such writes in the background every second; here the
/// caller fails with ERR_ZOOKEEPER_OPERATION and the replica or the periodic check retries).
pub const STORE_CALL_DEADLINE: Duration = Duration::from_secs(2);

/// The meta state kept in ZooKeeper. Calls block the calling worker thread (through
/// `block_in_place`) so the synchronous [`StateStore`] interface can be kept. While the state
/// is loaded the calls wait for ZooKeeper as long as it takes; afterwards each call is bounded
/// by [`STORE_CALL_DEADLINE`] and fails at once while the connection is known to be lost.
pub struct ZkStore {
    session: Arc<ZkSession>,
    handle: Handle,
    patient: bool,
}

const PERSISTENT: zk::CreateOptions<'static> =
    zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all());

/// Errors after which a call may succeed on the same or a resumed session.
fn worth_retrying(e: &zk::Error) -> bool {
    matches!(classify(e), ErrorKind::Retry)
        || matches!(e, zk::Error::SessionExpired | zk::Error::ClientClosed)
}

impl ZkStore {
    /// Wraps a session; must be called inside the (multi-thread) tokio runtime.
    pub fn new(session: Arc<ZkSession>) -> ZkStore {
        ZkStore {
            session,
            handle: Handle::current(),
            patient: true,
        }
    }

    fn block<F: Future>(&self, f: F) -> F::Output {
        tokio::task::block_in_place(|| self.handle.block_on(f))
    }

    /// Runs `op` on the current client until it succeeds, fails for good, or (once loaded)
    /// the deadline passes. `retried` tells the caller that an earlier attempt may have been
    /// applied.
    async fn call<T, F, Fut>(&self, what: &str, path: &str, mut op: F) -> (ZkResult<T>, bool)
    where
        F: FnMut(zk::Client) -> Fut,
        Fut: Future<Output = ZkResult<T>>,
    {
        let deadline = (!self.patient).then(|| Instant::now() + STORE_CALL_DEADLINE);
        let mut attempt = 0u32;
        loop {
            let client = self.session.client();
            if deadline.is_some() && !is_connected(client.state()) {
                // Requests would only queue until the connection is back.
                return (Err(zk::Error::ConnectionLoss), attempt > 0);
            }
            let limit = match deadline {
                Some(d) => d.saturating_duration_since(Instant::now()),
                None => Duration::from_secs(10),
            };
            let r = match tokio::time::timeout(limit, op(client)).await {
                Ok(r) => r,
                Err(_) => Err(zk::Error::Timeout),
            };
            match r {
                Err(e) if worth_retrying(&e) => {
                    let pause = backoff(attempt);
                    attempt += 1;
                    if deadline.is_some_and(|d| Instant::now() + pause >= d) {
                        log::warn!("ZooKeeper {what} {path}: {e}; giving up for now");
                        return (Err(e), true);
                    }
                    log::warn!("ZooKeeper {what} {path}: {e}; retrying in {pause:?}");
                    tokio::time::sleep(pause).await;
                }
                r => return (r, attempt > 0),
            }
        }
    }

    async fn create(&self, path: &str, value: &[u8]) -> Result<()> {
        let (r, retried) = self
            .call("create", path, |c| async move {
                c.create(path, value, &PERSISTENT).await
            })
            .await;
        match r {
            Ok(_) => Ok(()),
            // A retried create that finds the node holding our value was our own first try.
            Err(zk::Error::NodeExists) if retried => {
                let (got, _) = self
                    .call("get", path, |c| async move { c.get_data(path).await })
                    .await;
                match got {
                    Ok((data, _)) if data == value => Ok(()),
                    _ => Err(StoreError::AlreadyExists(path.to_string())),
                }
            }
            Err(e) => Err(to_store_error(&e, path)),
        }
    }

    async fn delete_one(&self, path: &str) -> Result<()> {
        let (r, retried) = self
            .call(
                "delete",
                path,
                |c| async move { c.delete(path, None).await },
            )
            .await;
        match r {
            Ok(()) => Ok(()),
            Err(zk::Error::NoNode) if retried => Ok(()),
            Err(e) => Err(to_store_error(&e, path)),
        }
    }

    async fn children(&self, path: &str) -> Result<Vec<String>> {
        let (r, _) = self
            .call("list", path, |c| async move { c.list_children(path).await })
            .await;
        r.map_err(|e| to_store_error(&e, path))
    }

    /// Deletes `path` and everything below it, children first.
    async fn delete_tree(&self, path: &str) -> Result<()> {
        let mut stack = vec![(path.to_string(), false)];
        while let Some((p, expanded)) = stack.pop() {
            if expanded {
                match self.delete_one(&p).await {
                    Ok(()) | Err(StoreError::NotFound(_)) => {}
                    Err(e) => return Err(e),
                }
                continue;
            }
            let kids = match self.children(&p).await {
                Ok(k) => k,
                Err(StoreError::NotFound(_)) if p != path => continue,
                Err(e) => return Err(e),
            };
            stack.push((p.clone(), true));
            for k in kids {
                stack.push((child_path(&p, &k), false));
            }
        }
        Ok(())
    }
}

impl StateStore for ZkStore {
    fn create_node(&mut self, path: &str, value: &[u8]) -> Result<()> {
        let p = zk_path(path);
        self.block(self.create(&p, value))
    }

    fn delete_node(&mut self, path: &str, recursive: bool) -> Result<()> {
        let p = zk_path(path);
        if recursive {
            self.block(async {
                // Report a missing root as upstream does.
                self.children(&p).await?;
                self.delete_tree(&p).await
            })
        } else {
            self.block(self.delete_one(&p))
        }
    }

    fn set_data(&mut self, path: &str, value: &[u8]) -> Result<()> {
        let p = zk_path(path);
        let p = p.as_str();
        let (r, _) =
            self.block(self.call(
                "set",
                p,
                |c| async move { c.set_data(p, value, None).await },
            ));
        r.map(|_| ()).map_err(|e| to_store_error(&e, p))
    }

    fn get_data(&self, path: &str) -> Result<Vec<u8>> {
        let p = zk_path(path);
        let p = p.as_str();
        let (r, _) = self.block(self.call("get", p, |c| async move { c.get_data(p).await }));
        r.map(|(d, _)| d).map_err(|e| to_store_error(&e, p))
    }

    fn get_children(&self, path: &str) -> Result<Vec<String>> {
        let p = zk_path(path);
        let mut kids = self.block(self.children(&p))?;
        kids.sort();
        Ok(kids)
    }

    fn exists(&self, path: &str) -> bool {
        let p = zk_path(path);
        let p = p.as_str();
        let (r, _) = self.block(self.call("exists", p, |c| async move { c.check_stat(p).await }));
        matches!(r, Ok(Some(_)))
    }

    fn loaded(&mut self) {
        self.patient = false;
    }

    /// Creates every missing component; a component created meanwhile by someone else is fine.
    fn ensure_path(&mut self, path: &str) -> Result<()> {
        let mut cur = String::new();
        for part in path.split('/').filter(|p| !p.is_empty()) {
            cur.push('/');
            cur.push_str(part);
            match self.block(self.create(&cur, b"")) {
                Ok(()) | Err(StoreError::AlreadyExists(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_mapping_follows_upstream() {
        assert_eq!(classify(&zk::Error::NoNode), ErrorKind::NotFound);
        assert_eq!(classify(&zk::Error::NodeExists), ErrorKind::AlreadyExists);
        assert_eq!(classify(&zk::Error::NotEmpty), ErrorKind::NotEmpty);
        assert_eq!(classify(&zk::Error::ConnectionLoss), ErrorKind::Retry);
        assert_eq!(classify(&zk::Error::Timeout), ErrorKind::Retry);
        assert_eq!(classify(&zk::Error::BadArguments(&"x")), ErrorKind::Invalid);
        assert_eq!(classify(&zk::Error::SessionExpired), ErrorKind::Fatal);
        assert_eq!(classify(&zk::Error::ClientClosed), ErrorKind::Fatal);
        assert_eq!(
            to_store_error(&zk::Error::NoNode, "/a"),
            StoreError::NotFound("/a".into())
        );
        assert_eq!(
            to_store_error(&zk::Error::NodeExists, "/a"),
            StoreError::AlreadyExists("/a".into())
        );
        assert!(matches!(
            to_store_error(&zk::Error::SessionExpired, "/a"),
            StoreError::Io(_)
        ));
    }

    #[test]
    fn paths_and_backoff() {
        assert_eq!(zk_path("pegasus/onebox/"), "/pegasus/onebox");
        assert_eq!(zk_path("/"), "/");
        assert_eq!(child_path("/", "a"), "/a");
        assert_eq!(child_path("/a", "b"), "/a/b");
        assert_eq!(backoff(0), Duration::from_millis(100));
        assert_eq!(backoff(3), Duration::from_millis(800));
        assert_eq!(backoff(10), Duration::from_millis(1000));
    }

    #[tokio::test]
    async fn retry_stops_on_success_and_reports_it() {
        let mut n = 0;
        let (r, retried) = with_retry("t", "/p", || {
            n += 1;
            let v = n;
            async move {
                if v < 3 {
                    Err(zk::Error::ConnectionLoss)
                } else {
                    Ok(v)
                }
            }
        })
        .await;
        assert_eq!(r.ok(), Some(3));
        assert!(retried);
        let (r, retried) = with_retry("t", "/p", || async {
            ZkResult::<()>::Err(zk::Error::NoNode)
        })
        .await;
        assert!(matches!(r, Err(zk::Error::NoNode)));
        assert!(!retried);
    }
}
