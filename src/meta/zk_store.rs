//! The ZooKeeper state store (`meta_state_service_zookeeper`): the meta's tree kept in
//! persistent, world-open znodes, with upstream's error mapping and retry-until-done writes.

use std::future::Future;
use std::time::Duration;

use tokio::runtime::Handle;
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

/// The meta state kept in ZooKeeper. Calls block the calling worker thread (through
/// `block_in_place`) so the synchronous [`StateStore`] interface can be kept.
pub struct ZkStore {
    client: zk::Client,
    handle: Handle,
}

const PERSISTENT: zk::CreateOptions<'static> =
    zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all());

impl ZkStore {
    /// Wraps a connected client; must be called inside the (multi-thread) tokio runtime.
    pub fn new(client: zk::Client) -> ZkStore {
        ZkStore {
            client,
            handle: Handle::current(),
        }
    }

    fn block<F: Future>(&self, f: F) -> F::Output {
        tokio::task::block_in_place(|| self.handle.block_on(f))
    }

    async fn create(&self, path: &str, value: &[u8]) -> Result<()> {
        let c = &self.client;
        let (r, retried) = with_retry("create", path, || c.create(path, value, &PERSISTENT)).await;
        match r {
            Ok(_) => Ok(()),
            // A retried create that finds the node holding our value was our own first try.
            Err(zk::Error::NodeExists) if retried => {
                let (got, _) = with_retry("get", path, || c.get_data(path)).await;
                match got {
                    Ok((data, _)) if data == value => Ok(()),
                    _ => Err(StoreError::AlreadyExists(path.to_string())),
                }
            }
            Err(e) => Err(to_store_error(&e, path)),
        }
    }

    async fn delete_one(&self, path: &str) -> Result<()> {
        let c = &self.client;
        let (r, retried) = with_retry("delete", path, || c.delete(path, None)).await;
        match r {
            Ok(()) => Ok(()),
            Err(zk::Error::NoNode) if retried => Ok(()),
            Err(e) => Err(to_store_error(&e, path)),
        }
    }

    async fn children(&self, path: &str) -> Result<Vec<String>> {
        let c = &self.client;
        let (r, _) = with_retry("list", path, || c.list_children(path)).await;
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
        let c = &self.client;
        let (r, _) = self.block(with_retry("set", &p, || c.set_data(&p, value, None)));
        r.map(|_| ()).map_err(|e| to_store_error(&e, &p))
    }

    fn get_data(&self, path: &str) -> Result<Vec<u8>> {
        let p = zk_path(path);
        let c = &self.client;
        let (r, _) = self.block(with_retry("get", &p, || c.get_data(&p)));
        r.map(|(d, _)| d).map_err(|e| to_store_error(&e, &p))
    }

    fn get_children(&self, path: &str) -> Result<Vec<String>> {
        let p = zk_path(path);
        let mut kids = self.block(self.children(&p))?;
        kids.sort();
        Ok(kids)
    }

    fn exists(&self, path: &str) -> bool {
        let p = zk_path(path);
        let c = &self.client;
        let (r, _) = self.block(with_retry("exists", &p, || c.check_stat(&p)));
        matches!(r, Ok(Some(_)))
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
