//! Connection settings as read from the user's Redis client (node-redis, ioredis) or URL.
//!
//! The JS layer extracts a plain object (never the client itself) and hands it over as JSON once,
//! at creation; the Rust core then opens its own connections from it.

use redis::{
    ClientTlsConfig, ConnectionAddr, ConnectionInfo, IntoConnectionInfo, RedisConnectionInfo,
    TlsCertificates,
};
use serde::Deserialize;
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Topology {
    #[default]
    Standalone,
    Cluster,
    Sentinel,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct NodeAddr {
    pub host: String,
    pub port: u16,
}

/// Everything needed to reach Redis. Secrets are kept out of `Debug`/`Display` output.
#[derive(Clone, Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConnectionOptions {
    #[serde(default)]
    pub topology: Topology,
    /// A `redis://` / `rediss://` URL (standalone) — an alternative to `nodes`.
    #[serde(default)]
    pub url: Option<String>,
    /// Standalone: one node. Cluster: startup nodes. Sentinel: the sentinels.
    #[serde(default)]
    pub nodes: Vec<NodeAddr>,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<String>,
    #[serde(default)]
    pub db: Option<i64>,
    #[serde(default)]
    pub tls: bool,
    /// `rejectUnauthorized: false` on the user's client.
    #[serde(default)]
    pub tls_insecure: bool,
    /// PEM trust anchors (`ca` of the user's TLS options); the system's store when absent.
    #[serde(default)]
    pub tls_ca: Option<String>,
    /// PEM client certificate chain and private key, for servers that authenticate clients.
    #[serde(default)]
    pub tls_cert: Option<String>,
    #[serde(default)]
    pub tls_key: Option<String>,
    /// Sentinel: the monitored master's name.
    #[serde(default)]
    pub sentinel_master: Option<String>,
    #[serde(default)]
    pub sentinel_username: Option<String>,
    #[serde(default)]
    pub sentinel_password: Option<String>,
    #[serde(default)]
    pub connect_timeout_ms: Option<u64>,
    /// Period of the subscribers' self-ping (`healthCheckInterval` option); 0 disables it.
    #[serde(default)]
    pub health_check_interval_ms: Option<u64>,
}

impl fmt::Debug for ConnectionOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.describe())
    }
}

#[derive(Debug)]
pub struct ConfigError(pub String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid Redis connection options: {}", self.0)
    }
}

impl std::error::Error for ConfigError {}

impl ConnectionOptions {
    pub fn from_json(json: &str) -> Result<Self, ConfigError> {
        let opts: Self = serde_json::from_str(json).map_err(|e| ConfigError(e.to_string()))?;
        opts.validate()?;
        Ok(opts)
    }

    pub fn from_url(url: &str) -> Result<Self, ConfigError> {
        let opts = Self {
            url: Some(url.to_string()),
            ..Self::default()
        };
        opts.validate()?;
        Ok(opts)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        match self.topology {
            Topology::Standalone if self.url.is_none() && self.nodes.len() != 1 => Err(
                ConfigError("a standalone connection needs a url or exactly one node".into()),
            ),
            Topology::Cluster if self.nodes.is_empty() && self.url.is_none() => Err(ConfigError(
                "a cluster connection needs at least one startup node".into(),
            )),
            Topology::Sentinel if self.nodes.is_empty() || self.sentinel_master.is_none() => Err(
                ConfigError("a sentinel connection needs sentinels and a master name".into()),
            ),
            _ => {
                if let Some(url) = &self.url {
                    url.as_str()
                        .into_connection_info()
                        .map_err(|e| ConfigError(format!("bad url {}: {e}", redact_url(url))))?;
                }
                Ok(())
            }
        }
    }

    pub fn health_check_interval(&self) -> std::time::Duration {
        self.health_check_interval_ms
            .map(std::time::Duration::from_millis)
            .unwrap_or(super::health::DEFAULT_INTERVAL)
    }

    /// A human-readable target for logs and errors, without credentials.
    pub fn describe(&self) -> String {
        let targets: Vec<String> = match &self.url {
            Some(url) => vec![redact_url(url)],
            None => self
                .nodes
                .iter()
                .map(|n| format!("{}:{}", n.host, n.port))
                .collect(),
        };
        format!("{:?} {}", self.topology, targets.join(","))
    }

    fn redis_settings(&self, base: RedisConnectionInfo) -> RedisConnectionInfo {
        let mut settings = base.set_skip_set_lib_name();
        if let Some(user) = &self.username {
            settings = settings.set_username(user);
        }
        if let Some(password) = &self.password {
            settings = settings.set_password(password);
        }
        if let Some(db) = self.db {
            settings = settings.set_db(db);
        }
        settings
    }

    /// The user's CA and client certificate, when TLS is on and any was given.
    pub fn tls_certificates(&self) -> Option<TlsCertificates> {
        if !self.tls || (self.tls_ca.is_none() && self.tls_cert.is_none()) {
            return None;
        }
        let client_tls = match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => Some(ClientTlsConfig {
                client_cert: cert.clone().into_bytes(),
                client_key: key.clone().into_bytes(),
            }),
            _ => None,
        };
        Some(TlsCertificates {
            client_tls,
            root_cert: self.tls_ca.as_ref().map(|ca| ca.clone().into_bytes()),
        })
    }

    /// Applies the user's TLS settings to a TLS address: `rejectUnauthorized: false` (a
    /// `rediss://` URL alone never says it) and the certificates (parsed here, so a bad PEM
    /// fails at creation; the error never quotes the PEM).
    fn with_certificates(&self, info: ConnectionInfo) -> Result<ConnectionInfo, ConfigError> {
        let info = match info.addr().clone() {
            ConnectionAddr::TcpTls {
                host,
                port,
                tls_params,
                ..
            } if self.tls_insecure => info.set_addr(ConnectionAddr::TcpTls {
                host,
                port,
                insecure: true,
                tls_params,
            }),
            _ => info,
        };
        let Some(certs) = self.tls_certificates() else {
            return Ok(info);
        };
        if !matches!(info.addr(), ConnectionAddr::TcpTls { .. }) {
            return Ok(info);
        }
        redis::Client::build_with_tls(info, certs)
            .map(|client| client.get_connection_info().clone())
            .map_err(|e| ConfigError(format!("TLS certificates: {e}")))
    }

    fn node_info(&self, node: &NodeAddr) -> ConnectionInfo {
        let addr = if self.tls {
            ConnectionAddr::TcpTls {
                host: node.host.clone(),
                port: node.port,
                insecure: self.tls_insecure,
                tls_params: None,
            }
        } else {
            ConnectionAddr::Tcp(node.host.clone(), node.port)
        };
        let info = addr
            .into_connection_info()
            .expect("a ConnectionAddr always converts");
        let settings = self.redis_settings(info.redis_settings().clone());
        info.set_redis_settings(settings)
    }

    /// Connection infos of every configured node (the URL first when given).
    pub fn connection_infos(&self) -> Result<Vec<ConnectionInfo>, ConfigError> {
        let mut infos = Vec::new();
        if let Some(url) = &self.url {
            let info = url
                .as_str()
                .into_connection_info()
                .map_err(|e| ConfigError(format!("bad url {}: {e}", redact_url(url))))?;
            // Explicit fields override what the URL says, as node-redis does.
            let settings = self.redis_settings(info.redis_settings().clone());
            infos.push(self.with_certificates(info.set_redis_settings(settings))?);
        }
        for node in &self.nodes {
            infos.push(self.with_certificates(self.node_info(node))?);
        }
        Ok(infos)
    }
}

/// Replaces the password (and user) in a URL so it can be logged.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            format!("{}://***@{}", &url[..scheme_end], &url[at + 1..])
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_standalone_url_with_credentials_and_redacts_them() {
        let opts = ConnectionOptions::from_url("redis://user:s3cret@localhost:6390/2").unwrap();
        let infos = opts.connection_infos().unwrap();
        assert_eq!(infos.len(), 1);
        assert_eq!(infos[0].redis_settings().db(), 2);
        assert!(!opts.describe().contains("s3cret"));
        assert!(!format!("{opts:?}").contains("s3cret"));
    }

    #[test]
    fn parses_cluster_nodes() {
        let opts = ConnectionOptions::from_json(
            r#"{"topology":"cluster","nodes":[{"host":"127.0.0.1","port":7000},{"host":"127.0.0.1","port":7001}],"password":"pw"}"#,
        )
        .unwrap();
        assert_eq!(opts.connection_infos().unwrap().len(), 2);
    }

    #[test]
    fn tls_settings_reach_url_and_node_addresses_and_bad_pem_fails_without_quoting_it() {
        let opts = ConnectionOptions::from_json(
            r#"{"url":"rediss://127.0.0.1:6390","tls":true,"tlsInsecure":true}"#,
        )
        .unwrap();
        let infos = opts.connection_infos().unwrap();
        assert!(matches!(
            infos[0].addr(),
            ConnectionAddr::TcpTls { insecure: true, .. }
        ));
        let bad = ConnectionOptions::from_json(
            r#"{"nodes":[{"host":"127.0.0.1","port":6390}],"tls":true,"tlsCa":"-----BEGIN CERTIFICATE-----\nc2VjcmV0LWNh\n-----END CERTIFICATE-----\n"}"#,
        )
        .unwrap();
        let err = bad.connection_infos().unwrap_err().to_string();
        assert!(err.contains("TLS certificates"), "{err}");
        assert!(!err.contains("c2VjcmV0LWNh"), "{err}");
    }

    #[test]
    fn rejects_unknown_fields_and_missing_nodes() {
        assert!(ConnectionOptions::from_json(r#"{"hots":"x"}"#).is_err());
        let err = ConnectionOptions::from_json(r#"{"topology":"cluster"}"#).unwrap_err();
        assert!(err.to_string().contains("startup node"));
        assert!(ConnectionOptions::from_url("not a url").is_err());
    }
}
