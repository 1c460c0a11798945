//! The keyword arguments of `Server(...)`, checked and mapped onto the
//! library's options. A value left out (`None`) is the library's default,
//! which is also the command line's: defaults are written once, there.

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyDict;
use std::sync::Arc;
use std::time::Duration;

use mjpeg_server::access::{check_token, check_user, Access, Grant, Patterns};
use mjpeg_server::server::ListenAddr;
use mjpeg_server::source::SourceOptions;
use mjpeg_server::tls::Tls;
use mjpeg_server::ServerOptions;

/// Everything `Server(...)` was given, checked.
pub(crate) struct Config {
    pub listen: ListenAddr,
    pub server: ServerOptions,
    pub sources: SourceOptions,
}

/// The keyword arguments as Python passed them.
pub(crate) struct Args<'py> {
    pub listen: Bound<'py, PyAny>,
    pub fps: Option<f64>,
    pub quality: Option<u8>,
    pub users: Option<Bound<'py, PyDict>>,
    pub tokens: Option<Vec<String>>,
    pub public: Option<Vec<String>>,
    pub realm: Option<String>,
    pub tls_cert: Option<String>,
    pub tls_key: Option<String>,
    pub max_connections: Option<usize>,
    pub max_connections_per_address: Option<usize>,
    pub max_clients_per_stream: Option<usize>,
    pub max_frame_size: Option<usize>,
    pub max_pixels: Option<u64>,
    pub allow_create: bool,
    pub allow_origin: Option<Vec<String>>,
    pub write_timeout: Option<f64>,
    pub push_idle_timeout: Option<f64>,
    pub shutdown_grace: Option<f64>,
    pub max_variants: Option<usize>,
}

fn bad(arg: &str, why: impl std::fmt::Display) -> PyErr {
    PyValueError::new_err(format!("{arg}: {why}"))
}

/// Seconds as a duration; 0 turns the timeout off where `off` allows.
fn seconds(arg: &str, s: f64) -> PyResult<Duration> {
    Duration::try_from_secs_f64(s).map_err(|_| {
        bad(
            arg,
            format!("{s} is not a number of seconds (use 0 or more)"),
        )
    })
}

impl Args<'_> {
    pub(crate) fn check(self) -> PyResult<Config> {
        let listen = match self.listen.extract::<u16>() {
            Ok(port) => ListenAddr::port(port),
            Err(_) => {
                let s: String = self.listen.extract().map_err(|_| {
                    bad(
                        "listen",
                        "give an address as a string (\"127.0.0.1:8080\", \"0.0.0.0:8080\") or a port number",
                    )
                })?;
                s.parse().map_err(|e| bad("listen", e))?
            }
        };
        let mut server = ServerOptions::default();
        let mut sources = SourceOptions::default();
        let http = &mut server.http;
        if let Some(fps) = self.fps {
            if !(fps.is_finite() && (0.01..=1000.0).contains(&fps)) {
                return Err(bad("fps", format!("{fps} is not between 0.01 and 1000")));
            }
            sources.interval = Duration::from_secs_f64(1.0 / fps);
        }
        if let Some(q) = self.quality {
            if !(1..=100).contains(&q) {
                return Err(bad("quality", format!("{q} is not between 1 and 100")));
            }
            sources.convert.quality = q;
        }
        if let Some(n) = self.max_pixels {
            if n == 0 {
                return Err(bad("max_pixels", "must be at least 1"));
            }
            sources.convert.max_pixels = n;
        }
        if let Some(n) = self.max_frame_size {
            if n < 1024 {
                return Err(bad(
                    "max_frame_size",
                    format!("{n} bytes is less than 1024"),
                ));
            }
            sources.max_frame = n;
            http.max_frame_bytes = n;
        }
        http.convert = sources.convert.clone();
        http.access = Arc::new(access(
            self.users.as_ref(),
            self.tokens.unwrap_or_default(),
            self.public.unwrap_or_default(),
            self.realm,
        )?);
        http.allow_create = self.allow_create;
        if let Some(origins) = self.allow_origin {
            http.allow_origins = origins
                .iter()
                .map(|o| {
                    o.parse()
                        .map_err(|_| bad("allow_origin", format!("{o:?} is not a header value")))
                })
                .collect::<PyResult<_>>()?;
        }
        if let Some(n) = self.max_clients_per_stream {
            http.max_clients_per_stream = (n > 0).then_some(n);
        }
        if let Some(s) = self.push_idle_timeout {
            http.push_idle_timeout =
                Some(seconds("push_idle_timeout", s)?).filter(|d| !d.is_zero());
        }
        if let Some(n) = self.max_variants {
            http.max_variants = n;
        }
        if let Some(n) = self.max_connections {
            if n == 0 {
                return Err(bad("max_connections", "must be at least 1"));
            }
            server.max_connections = n;
        }
        if let Some(n) = self.max_connections_per_address {
            server.max_connections_per_address = n;
        }
        if let Some(s) = self.write_timeout {
            server.write_timeout = Some(seconds("write_timeout", s)?).filter(|d| !d.is_zero());
        }
        if let Some(s) = self.shutdown_grace {
            server.shutdown_grace = seconds("shutdown_grace", s)?;
        }
        server.tls = match (self.tls_cert, self.tls_key) {
            (Some(cert), Some(key)) => {
                Some(Tls::load(&cert, &key).map_err(|e| bad("tls_cert/tls_key", e))?)
            }
            (None, None) => None,
            _ => {
                return Err(bad(
                    "tls_cert/tls_key",
                    "give both the certificate and the key",
                ))
            }
        };
        Ok(Config {
            listen,
            server,
            sources,
        })
    }
}

/// Who may watch and push: with no users and no tokens, everyone may do
/// everything (as the command line without `[auth]`); otherwise each user
/// and token may watch and push every stream, and anyone may watch the
/// streams that `public` names.
fn access(
    users: Option<&Bound<'_, PyDict>>,
    tokens: Vec<String>,
    public: Vec<String>,
    realm: Option<String>,
) -> PyResult<Access> {
    let public = Grant {
        watch: Patterns::new(&public).map_err(|e| bad("public", e))?,
        push: Patterns::default(),
    };
    let mut access = Access::new(realm.unwrap_or_else(|| "mjpeg-server".into()), public);
    for (name, password) in users.into_iter().flat_map(|d| d.iter()) {
        let name: String = name.extract().map_err(|_| {
            bad(
                "users",
                "names and passwords are strings: {\"name\": \"password\"}",
            )
        })?;
        let password: String = password
            .extract()
            .map_err(|_| bad("users", format!("the password of {name:?} is not a string")))?;
        check_user(&name, &password).map_err(|e| bad("users", e))?;
        access
            .add_user(&name, &password, Grant::everything())
            .map_err(|e| bad("users", e))?;
    }
    for token in &tokens {
        check_token(token).map_err(|e| bad("tokens", e))?;
        access
            .add_token(token, Grant::everything())
            .map_err(|e| bad("tokens", e))?;
    }
    Ok(access)
}

/// The effective options, by their argument names, for `Server.options`.
pub(crate) fn describe<'py>(py: Python<'py>, config: &Config) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    let s = &config.server;
    let off = |d: Option<Duration>| d.map_or(0.0, |d| d.as_secs_f64());
    d.set_item("listen", config.listen.to_string())?;
    d.set_item("fps", 1.0 / config.sources.interval.as_secs_f64())?;
    d.set_item("quality", config.sources.convert.quality)?;
    d.set_item("max_connections", s.max_connections)?;
    d.set_item("max_connections_per_address", s.max_connections_per_address)?;
    d.set_item(
        "max_clients_per_stream",
        s.http.max_clients_per_stream.unwrap_or(0),
    )?;
    d.set_item("max_frame_size", config.sources.max_frame)?;
    d.set_item("max_pixels", config.sources.convert.max_pixels)?;
    d.set_item("max_variants", s.http.max_variants)?;
    d.set_item("allow_create", s.http.allow_create)?;
    d.set_item("write_timeout", off(s.write_timeout))?;
    d.set_item("push_idle_timeout", off(s.http.push_idle_timeout))?;
    d.set_item("shutdown_grace", s.shutdown_grace.as_secs_f64())?;
    d.set_item("tls", s.tls.is_some())?;
    d.set_item("auth", !s.http.access.is_open())?;
    Ok(d)
}
