//! The command connection: PUBLISH/SPUBLISH, PUBSUB NUMSUB, XADD... on a standalone server,
//! a sentinel-resolved master or a Redis Cluster. It connects lazily and reconnects by itself, so
//! an adapter can be created while Redis is down.

use super::config::{ConnectionOptions, Topology};
use super::raw_connection::plain_tcp;
use super::sentinel::resolve_master;
use redis::aio::{ConnectionManager, ConnectionManagerConfig, MultiplexedConnection};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{MultipleNodeRoutingInfo, RoutingInfo};
use redis::{
    AsyncConnectionConfig, Cmd, ConnectionInfo, ErrorKind, FromRedisValue, Pipeline, RedisError,
    RedisResult, ServerErrorKind, Value,
};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Mutex, OnceCell};

const RESPONSE_TIMEOUT: Duration = Duration::from_secs(10);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Clone)]
pub struct CommandConnection {
    inner: Arc<Inner>,
    /// A standalone server on plain TCP, for the publisher's own raw connection
    /// (see `raw_connection`); None for TLS, Unix sockets, clusters and sentinels.
    raw_target: Option<Arc<RawTarget>>,
}

pub struct RawTarget {
    pub info: ConnectionInfo,
    pub connect_timeout: Duration,
}

enum Inner {
    Standalone(ConnectionManager),
    /// Created on first use: `ClusterClient::get_async_connection` fails while no node answers.
    Cluster {
        client: Box<ClusterClient>,
        conn: OnceCell<ClusterConnection>,
    },
    /// The master is looked up through the sentinels on first use, and again after any error
    /// that may mean it moved (see [`master_may_have_moved`]): a connection that reconnected by
    /// itself would go back to the old address, by then a replica after a failover, where a
    /// PUBLISH is accepted but reaches no subscriber and an XADD is refused.
    Sentinel {
        options: Box<ConnectionOptions>,
        master: Mutex<Option<SentinelMaster>>,
        connections: AtomicU64,
    },
}

/// The connection to the master the sentinels named, numbered so that an error seen on one
/// connection never drops a newer one.
struct SentinelMaster {
    id: u64,
    conn: MultiplexedConnection,
}

fn manager_config(opts: &ConnectionOptions) -> ConnectionManagerConfig {
    ConnectionManagerConfig::new()
        .set_connection_timeout(Some(
            opts.connect_timeout_ms
                .map(Duration::from_millis)
                .unwrap_or(CONNECT_TIMEOUT),
        ))
        .set_response_timeout(Some(RESPONSE_TIMEOUT))
        .set_min_delay(Duration::from_millis(50))
        .set_max_delay(Duration::from_secs(2))
}

impl CommandConnection {
    /// Never touches the network; the first command connects.
    pub fn new(opts: &ConnectionOptions) -> RedisResult<Self> {
        let mut raw_target = None;
        let inner = match opts.topology {
            Topology::Standalone => {
                let info = opts
                    .connection_infos()
                    .map_err(config_error)?
                    .into_iter()
                    .next()
                    .ok_or_else(|| config_error("no node"))?;
                if plain_tcp(&info).is_some() {
                    raw_target = Some(Arc::new(RawTarget {
                        info: info.clone(),
                        connect_timeout: opts
                            .connect_timeout_ms
                            .map(Duration::from_millis)
                            .unwrap_or(CONNECT_TIMEOUT),
                    }));
                }
                let client = redis::Client::open(info)?;
                Inner::Standalone(ConnectionManager::new_lazy_with_config(
                    client,
                    manager_config(opts),
                )?)
            }
            Topology::Cluster => {
                let infos = opts.connection_infos().map_err(config_error)?;
                let mut builder = ClusterClient::builder(infos)
                    .connection_timeout(CONNECT_TIMEOUT)
                    .response_timeout(RESPONSE_TIMEOUT);
                if let Some(certs) = opts.tls_certificates() {
                    builder = builder.certs(certs);
                }
                let client = builder.build()?;
                Inner::Cluster {
                    client: Box::new(client),
                    conn: OnceCell::new(),
                }
            }
            Topology::Sentinel => Inner::Sentinel {
                options: Box::new(opts.clone()),
                master: Mutex::new(None),
                connections: AtomicU64::new(0),
            },
        };
        Ok(Self {
            inner: Arc::new(inner),
            raw_target,
        })
    }

    /// Where a raw connection may be opened for pipelines of PUBLISH (see [`RawTarget`]).
    pub fn raw_target(&self) -> Option<&RawTarget> {
        self.raw_target.as_deref()
    }

    /// A cluster pipeline must stay within one slot (the crate refuses cross-slot pipelines).
    pub fn is_cluster(&self) -> bool {
        matches!(&*self.inner, Inner::Cluster { .. })
    }

    pub async fn query<T: FromRedisValue>(&self, cmd: &Cmd) -> RedisResult<T> {
        match &*self.inner {
            Inner::Standalone(conn) => cmd.query_async(&mut conn.clone()).await,
            Inner::Cluster { .. } => cmd.query_async(&mut self.cluster().await?).await,
            Inner::Sentinel { .. } => {
                let (id, mut conn) = self.sentinel().await?;
                self.checked(id, cmd.query_async(&mut conn).await).await
            }
        }
    }

    /// Sends many commands in one write. Used by the publisher to batch PUBLISH calls.
    pub async fn pipeline(&self, pipe: &Pipeline) -> RedisResult<()> {
        match &*self.inner {
            Inner::Standalone(conn) => pipe.exec_async(&mut conn.clone()).await,
            Inner::Cluster { .. } => pipe.exec_async(&mut self.cluster().await?).await,
            Inner::Sentinel { .. } => {
                let (id, mut conn) = self.sentinel().await?;
                self.checked(id, pipe.exec_async(&mut conn).await).await
            }
        }
    }

    /// Sends many commands in one write and returns their replies.
    pub async fn pipeline_query<T: FromRedisValue>(&self, pipe: &Pipeline) -> RedisResult<T> {
        match &*self.inner {
            Inner::Standalone(conn) => pipe.query_async(&mut conn.clone()).await,
            Inner::Cluster { .. } => pipe.query_async(&mut self.cluster().await?).await,
            Inner::Sentinel { .. } => {
                let (id, mut conn) = self.sentinel().await?;
                self.checked(id, pipe.query_async(&mut conn).await).await
            }
        }
    }

    /// `PUBSUB NUMSUB|SHARDNUMSUB channel`, summed over every node of a cluster (replicas
    /// included: a subscriber may sit on any of them), as the official adapters count servers.
    pub async fn num_sub(&self, channel: &str, sharded: bool) -> RedisResult<i64> {
        let mut cmd = redis::cmd("PUBSUB");
        cmd.arg(if sharded { "SHARDNUMSUB" } else { "NUMSUB" })
            .arg(channel);
        match &*self.inner {
            Inner::Cluster { .. } => {
                let mut conn = self.cluster().await?;
                let value = conn
                    .route_command(
                        cmd,
                        RoutingInfo::MultiNode((MultipleNodeRoutingInfo::AllNodes, None)),
                    )
                    .await?;
                sum_num_sub_per_node(value)
            }
            _ => {
                let value: Value = self.query(&cmd).await?;
                parse_num_sub(&value)
            }
        }
    }

    async fn cluster(&self) -> RedisResult<ClusterConnection> {
        let Inner::Cluster { client, conn } = &*self.inner else {
            unreachable!("cluster() on a non-cluster connection")
        };
        conn.get_or_try_init(|| client.get_async_connection())
            .await
            .cloned()
    }

    /// The connection to the current master (and its number), asking the sentinels first when
    /// there is none. One lookup at a time: concurrent callers wait for it and share the result.
    async fn sentinel(&self) -> RedisResult<(u64, MultiplexedConnection)> {
        let Inner::Sentinel {
            options,
            master,
            connections,
        } = &*self.inner
        else {
            unreachable!("sentinel() on a non-sentinel connection")
        };
        let mut current = master.lock().await;
        if let Some(m) = &*current {
            return Ok((m.id, m.conn.clone()));
        }
        let info = resolve_master(options).await?;
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(
                options
                    .connect_timeout_ms
                    .map(Duration::from_millis)
                    .unwrap_or(CONNECT_TIMEOUT),
            ))
            .set_response_timeout(Some(RESPONSE_TIMEOUT));
        let mut conn = redis::Client::open(info)?
            .get_multiplexed_async_connection_with_config(&config)
            .await?;
        // The sentinels may still name a master that has just been demoted (or not yet name
        // the promoted replica): refuse a replica, the caller retries with a new lookup.
        if let Ok(role) = redis::cmd("ROLE").query_async::<Value>(&mut conn).await {
            if !is_master_role(&role) {
                return Err(RedisError::from((
                    ErrorKind::Io,
                    "sentinel",
                    "the node the sentinels named as master is not a master (failover under way)"
                        .to_string(),
                )));
            }
        }
        let id = connections.fetch_add(1, Ordering::Relaxed);
        *current = Some(SentinelMaster {
            id,
            conn: conn.clone(),
        });
        Ok((id, conn))
    }

    /// Passes `result` through; drops connection `id` (the next call asks the sentinels again)
    /// when the error may mean the master moved.
    async fn checked<T>(&self, id: u64, result: RedisResult<T>) -> RedisResult<T> {
        if let (Err(e), Inner::Sentinel { master, .. }) = (&result, &*self.inner) {
            if master_may_have_moved(e) {
                let mut current = master.lock().await;
                if current.as_ref().is_some_and(|m| m.id == id) {
                    *current = None;
                }
            }
        }
        result
    }
}

/// An error after which a sentinel-resolved master must be looked up again: the connection was
/// lost or timed out (the sentinels kill the clients of a demoted master), or the node says it
/// is no longer a writable master.
fn master_may_have_moved(e: &RedisError) -> bool {
    e.is_io_error()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || e.is_timeout()
        || matches!(
            e.kind(),
            ErrorKind::Server(ServerErrorKind::ReadOnly | ServerErrorKind::MasterDown)
        )
}

/// `ROLE` → true unless the node reports itself as a replica (`slave`) or a sentinel.
fn is_master_role(role: &Value) -> bool {
    let first = match role {
        Value::Array(items) => items.first(),
        _ => None,
    };
    match first {
        Some(Value::BulkString(name)) => name.as_slice() == b"master",
        Some(Value::SimpleString(name)) => name == "master",
        _ => true,
    }
}

fn config_error(e: impl ToString) -> RedisError {
    RedisError::from((
        redis::ErrorKind::InvalidClientConfig,
        "invalid connection options",
        e.to_string(),
    ))
}

/// `[channel, count]` → count.
fn parse_num_sub(value: &Value) -> RedisResult<i64> {
    match value {
        Value::Array(items) if items.len() >= 2 => Ok(i64::from_redis_value_ref(&items[1])?),
        Value::Map(pairs) if !pairs.is_empty() => Ok(i64::from_redis_value_ref(&pairs[0].1)?),
        other => Err(RedisError::from((
            redis::ErrorKind::UnexpectedReturnType,
            "unexpected PUBSUB NUMSUB reply",
            format!("{other:?}"),
        ))),
    }
}

/// The cluster router answers a multi-node command without a response policy with a map of
/// node address → that node's reply.
fn sum_num_sub_per_node(value: Value) -> RedisResult<i64> {
    match value {
        Value::Map(per_node) => per_node.iter().map(|(_, reply)| parse_num_sub(reply)).sum(),
        other => parse_num_sub(&other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_num_sub_replies() {
        let reply = Value::Array(vec![
            Value::BulkString(b"socket.io-request#/#".to_vec()),
            Value::Int(3),
        ]);
        assert_eq!(parse_num_sub(&reply).unwrap(), 3);
        let per_node = Value::Map(vec![
            (Value::BulkString(b"a:1".to_vec()), reply.clone()),
            (Value::BulkString(b"b:2".to_vec()), reply),
        ]);
        assert_eq!(sum_num_sub_per_node(per_node).unwrap(), 6);
        assert!(parse_num_sub(&Value::Nil).is_err());
    }

    #[test]
    fn sentinel_master_is_looked_up_again_after_errors_that_may_mean_a_failover() {
        let io = RedisError::from(std::io::Error::from(std::io::ErrorKind::ConnectionReset));
        assert!(master_may_have_moved(&io));
        let refused = RedisError::from(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        assert!(master_may_have_moved(&refused));
        let read_only = RedisError::from((
            ErrorKind::Server(ServerErrorKind::ReadOnly),
            "You can't write against a read only replica.",
        ));
        assert!(master_may_have_moved(&read_only));
        // a refused command (bad argument, wrong type) says nothing about where the master is
        let wrong_type = RedisError::from((
            ErrorKind::Server(ServerErrorKind::ResponseError),
            "WRONGTYPE",
        ));
        assert!(!master_may_have_moved(&wrong_type));
    }

    #[test]
    fn role_reply_tells_a_master_from_a_replica() {
        let role = |name: &str| Value::Array(vec![Value::BulkString(name.as_bytes().to_vec())]);
        assert!(is_master_role(&role("master")));
        assert!(!is_master_role(&role("slave")));
        assert!(!is_master_role(&role("sentinel")));
        // an unexpected reply does not block the connection
        assert!(is_master_role(&Value::Nil));
    }
}
