//! The connection under a sharded subscriber, and how (un)subscriptions travel on it:
//!
//! - `Raw`: a standalone Redis or a sentinel-resolved master at a plain TCP address, spoken in
//!   RESP2 by [`RawConnection`]: `smessage` pushes are parsed in the read buffer and handed to
//!   the handler on the subscriber's own task (see connection::resp for why).
//! - `Single`: the same over TLS or a Unix socket, through the redis crate's
//!   `ConnectionManager` with RESP3 pushes, which go to the push reader task.
//! - `Cluster`: the redis crate's cluster connection, pushes likewise.

use super::{CONNECT_TIMEOUT, RESPONSE_TIMEOUT};
use crate::connection::config::{ConnectionOptions, Topology};
use crate::connection::message::PubSubMessage;
use crate::connection::raw_connection::{plain_tcp, RawConnection};
use crate::connection::resp::Push;
use crate::connection::sentinel::resolve_master;
use crate::connection::slot::key_slot;
use crate::connection::subscriber::Deliver;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo};
use redis::{ConnectionInfo, ProtocolVersion, PushInfo, RedisError, RedisResult, Value};
use tokio::sync::mpsc;

pub(super) enum Conn {
    Raw(RawConnection),
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

pub(super) fn config_error(e: impl ToString) -> RedisError {
    RedisError::from((
        redis::ErrorKind::InvalidClientConfig,
        "invalid connection options",
        e.to_string(),
    ))
}

fn timed_out(what: &'static str) -> RedisError {
    RedisError::from((redis::ErrorKind::Io, what))
}

fn resp3(info: ConnectionInfo) -> ConnectionInfo {
    let settings = info
        .redis_settings()
        .clone()
        .set_protocol(ProtocolVersion::RESP3);
    info.set_redis_settings(settings)
}

impl Conn {
    /// A raw connection is connected (and authenticated) here; the crate's connect lazily.
    pub(super) async fn open(
        options: &ConnectionOptions,
        push: &mpsc::UnboundedSender<PushInfo>,
    ) -> RedisResult<Self> {
        match options.topology {
            Topology::Cluster => {
                let infos: Vec<ConnectionInfo> = options
                    .connection_infos()
                    .map_err(config_error)?
                    .into_iter()
                    .map(resp3)
                    .collect();
                let mut builder = ClusterClient::builder(infos)
                    .use_protocol(ProtocolVersion::RESP3)
                    .push_sender(push.clone())
                    .connection_timeout(CONNECT_TIMEOUT)
                    .response_timeout(RESPONSE_TIMEOUT);
                if let Some(certs) = options.tls_certificates() {
                    builder = builder.certs(certs);
                }
                let client = builder.build()?;
                let conn = tokio::time::timeout(CONNECT_TIMEOUT * 2, client.get_async_connection())
                    .await
                    .map_err(|_| timed_out("connect timed out"))??;
                Ok(Conn::Cluster(conn))
            }
            Topology::Standalone | Topology::Sentinel => {
                // Resolved at every connection, so a new one follows a sentinel failover.
                let info = if options.topology == Topology::Sentinel {
                    resolve_master(options).await?
                } else {
                    options
                        .connection_infos()
                        .map_err(config_error)?
                        .into_iter()
                        .next()
                        .ok_or_else(|| config_error("no node"))?
                };
                if plain_tcp(&info).is_some() {
                    let raw = RawConnection::connect(&info, CONNECT_TIMEOUT).await?;
                    return Ok(Conn::Raw(raw));
                }
                let client = redis::Client::open(resp3(info))?;
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(CONNECT_TIMEOUT))
                    .set_response_timeout(Some(RESPONSE_TIMEOUT))
                    .set_number_of_retries(1)
                    .set_push_sender(push.clone())
                    .set_automatic_resubscription();
                Ok(Conn::Single(ConnectionManager::new_lazy_with_config(
                    client, config,
                )?))
            }
        }
    }

    /// True for the raw connection, which does not reconnect by itself: after an error the
    /// caller drops it and opens a new one.
    pub(super) fn is_raw(&self) -> bool {
        matches!(self, Conn::Raw(_))
    }

    /// (Un)subscribes `channels` and waits for Redis to confirm them. On a raw connection the
    /// messages that arrive meanwhile go to `deliver`, and the shard channels Redis drops on
    /// its own meanwhile are added to `dropped`.
    pub(super) async fn apply(
        &mut self,
        subscribe: bool,
        channels: &[String],
        deliver: &Deliver<'_>,
        dropped: &mut Vec<String>,
    ) -> RedisResult<()> {
        match self {
            Conn::Raw(raw) => {
                let deliver: &(dyn Fn(&[PubSubMessage<'_>]) + Sync) = &|m| deliver.deliver(m);
                let confirmed = raw.apply_sharded(channels, subscribe, deliver, |name| {
                    dropped.push(String::from_utf8_lossy(name).into_owned())
                });
                // The crate's response timeout, here for the whole batch of commands.
                tokio::time::timeout(RESPONSE_TIMEOUT, confirmed)
                    .await
                    .map_err(|_| timed_out("no confirmation from Redis in time"))?
            }
            // One channel per command: the single confirmation push is the command's reply.
            Conn::Single(c) => {
                let verb = if subscribe {
                    "SSUBSCRIBE"
                } else {
                    "SUNSUBSCRIBE"
                };
                for channel in channels {
                    let _: Value = redis::cmd(verb).arg(channel).query_async(c).await?;
                }
                Ok(())
            }
            // One channel per command, each routed by its own slot.
            Conn::Cluster(c) => {
                for channel in channels {
                    if subscribe {
                        c.ssubscribe(channel).await?;
                    } else {
                        c.sunsubscribe(channel).await?;
                    }
                }
                Ok(())
            }
        }
    }

    /// Subscribes `channels` again after a connection loss or a slot move. On a cluster each
    /// one goes to the master that owns its slot *now*, as told by a fresh CLUSTER SLOTS: the
    /// crate's slot map may still be stale, and a stale route can land on the old master, now a
    /// replica, which accepts SSUBSCRIBE too. The crate would later resubscribe the channel on
    /// the new master as well, and the node would count (and receive) twice.
    pub(super) async fn resubscribe(
        &mut self,
        channels: &[String],
        deliver: &Deliver<'_>,
        dropped: &mut Vec<String>,
    ) -> RedisResult<()> {
        let Conn::Cluster(c) = self else {
            return self.apply(true, channels, deliver, dropped).await;
        };
        let slots: Value = c
            .route_command(
                redis::cmd("CLUSTER").arg("SLOTS").clone(),
                RoutingInfo::SingleNode(SingleNodeRoutingInfo::Random),
            )
            .await?;
        let owners = parse_slot_owners(&slots);
        for channel in channels {
            let slot = key_slot(channel.as_bytes());
            let Some((_, _, host, port)) = owners.iter().find(|o| o.0 <= slot && slot <= o.1)
            else {
                return Err(RedisError::from((
                    redis::ErrorKind::Io,
                    "no master serves the slot",
                    channel.clone(),
                )));
            };
            let routing = RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress {
                host: host.clone(),
                port: *port,
            });
            c.route_command(redis::cmd("SSUBSCRIBE").arg(channel).clone(), routing)
                .await?;
        }
        Ok(())
    }
}

/// On a raw connection: waits for pushes, hands every message already received to `deliver`
/// and returns the shard channels Redis dropped on its own (usually none). Cancel-safe. Never
/// resolves for the crate's connections (their pushes go to the push reader task) or none.
pub(super) async fn read_raw(
    conn: &mut Option<Conn>,
    deliver: &Deliver<'_>,
) -> RedisResult<Vec<String>> {
    let Some(Conn::Raw(raw)) = conn else {
        return std::future::pending().await;
    };
    raw.read_some().await?;
    let mut dropped = Vec::new();
    raw.drain(&|m| deliver.deliver(m), |push| {
        if let Push::Confirmation {
            kind: b"sunsubscribe",
            name,
        } = push
        {
            dropped.push(String::from_utf8_lossy(name).into_owned());
        }
    })?;
    Ok(dropped)
}

/// `CLUSTER SLOTS` → (first slot, last slot, master host, master port) per range.
fn parse_slot_owners(value: &Value) -> Vec<(u16, u16, String, u16)> {
    let int = |v: &Value| match v {
        Value::Int(i) => u16::try_from(*i).ok(),
        _ => None,
    };
    let text = |v: &Value| match v {
        Value::BulkString(b) => Some(String::from_utf8_lossy(b).into_owned()),
        Value::SimpleString(s) => Some(s.clone()),
        _ => None,
    };
    let Value::Array(ranges) = value else {
        return Vec::new();
    };
    ranges
        .iter()
        .filter_map(|range| {
            let Value::Array(items) = range else {
                return None;
            };
            let Value::Array(master) = items.get(2)? else {
                return None;
            };
            Some((
                int(items.first()?)?,
                int(items.get(1)?)?,
                text(master.first()?)?,
                int(master.get(1)?)?,
            ))
        })
        .collect()
}
