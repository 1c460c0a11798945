//! The standalone server: turns a parsed [`Cli`] (with its config file) into
//! running streams and listening sockets, and stops on SIGINT or SIGTERM.

use anyhow::Context;
use axum::http::HeaderValue;
use std::sync::Arc;
use std::time::Duration;

use crate::config::{seconds_or_off, AuthSetting, Cli, Settings, StreamArg};
use mjpeg_server::convert::ConvertOptions;
use mjpeg_server::http::HttpOptions;
use mjpeg_server::hub::Streams;
use mjpeg_server::server::{ListenAddr, Server, ServerOptions};
use mjpeg_server::source::SourceOptions;
use mjpeg_server::tls::Tls;

/// Runs the server described by `cli` (its config file and flags) until a
/// shutdown signal.
///
/// Every problem that can be found before serving (bad folders, duplicate
/// names, a port in use) is returned as an error before anything is served.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let settings = Settings::resolve(&cli)?;
    serve(settings).await
}

/// `--check-config`: checks the settings as [`run`] would before serving
/// (streams and their sources included, but without listening) and returns
/// the effective configuration as TOML.
pub async fn check_config(cli: &Cli) -> anyhow::Result<String> {
    let settings = Settings::resolve(cli)?;
    check_streams(&settings.streams).await?;
    load_tls(&settings)?;
    // A host name that does not resolve fails the check as it fails start.
    for addr in &settings.listen {
        if let ListenAddr::Host(host, port) = addr {
            let found = tokio::net::lookup_host((host.as_str(), *port))
                .await
                .with_context(|| format!("--listen {addr}: the name does not resolve"))?;
            if found.count() == 0 {
                anyhow::bail!("--listen {addr}: the name resolves to no address");
            }
        }
    }
    Ok(settings.to_toml())
}

/// Checks what can be checked of the streams without serving them.
async fn check_streams(streams: &[StreamArg]) -> anyhow::Result<()> {
    if streams.iter().filter(|a| a.source.reads_stdin()).count() > 1 {
        anyhow::bail!("only one stream can read standard input");
    }
    let names = Streams::new();
    for arg in streams {
        names.add(&arg.name)?;
        arg.source
            .check()
            .await
            .with_context(|| format!("stream {:?}", arg.name))?;
    }
    Ok(())
}

/// Runs the server with resolved `settings` until a shutdown signal.
pub async fn serve(settings: Settings) -> anyhow::Result<()> {
    check_streams(&settings.streams).await?;
    let tls = load_tls(&settings)?;
    raise_fd_limit(settings.scalars.max_connections as u64);
    let streams = Streams::new();
    let mut sources = Vec::new();
    for arg in settings.streams {
        let hub = streams.add(&arg.name)?;
        hub.set_overlay(arg.overlay);
        sources.push((hub, arg.source));
    }

    let convert = ConvertOptions {
        quality: settings.scalars.jpeg_quality,
        max_width: settings.scalars.max_width,
        max_height: settings.scalars.max_height,
        max_pixels: settings.scalars.max_pixels,
    };
    let access = settings
        .auth
        .access()
        .map_err(|e| anyhow::anyhow!("[auth]: {e}"))?;
    if access.is_open() && settings.auth != AuthSetting::default() {
        tracing::warn!(
            "[auth] has no user and no token, so everyone may watch and push every stream; its other keys change nothing"
        );
    }
    let allow_origins = settings
        .allow_origin
        .iter()
        .map(|o| HeaderValue::from_str(o).with_context(|| format!("allow-origin {o:?}")))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let opts = ServerOptions {
        max_connections: settings.scalars.max_connections as usize,
        max_connections_per_address: settings.scalars.max_connections_per_address as usize,
        ipv6_prefix: settings.scalars.ipv6_prefix,
        trusted_proxies: settings.trusted_proxy.clone(),
        write_timeout: seconds_or_off(settings.scalars.write_timeout),
        header_timeout: Duration::from_secs_f64(settings.scalars.header_timeout),
        max_header_bytes: settings.scalars.max_header_size,
        tls: tls.clone(),
        http: HttpOptions {
            resend_after: seconds_or_off(settings.scalars.resend_after),
            max_frame_bytes: settings.scalars.max_frame_size,
            allow_create: settings.allow_create,
            max_created_streams: settings.scalars.max_created_streams as usize,
            created_stream_idle: seconds_or_off(settings.scalars.created_stream_idle),
            convert: convert.clone(),
            access: Arc::new(access),
            max_clients_per_stream: match settings.scalars.max_clients_per_stream {
                0 => None,
                n => Some(n as usize),
            },
            push_idle_timeout: seconds_or_off(settings.scalars.push_idle_timeout),
            allow_origins,
            max_variants: settings.scalars.max_variants as usize,
        },
        ..ServerOptions::default()
    };
    let server = Server::bind_all(&settings.listen, streams.clone(), opts).await?;
    let shutdown = server.shutdown_token();
    let source_opts = SourceOptions {
        interval: Duration::from_secs_f64(1.0 / settings.scalars.fps),
        convert,
        max_frame: settings.scalars.max_frame_size,
    };
    let mut tasks = Vec::new();
    for (hub, spec) in sources {
        tracing::info!(stream = hub.name(), "source {spec}");
        tasks.extend(spec.spawn(hub, source_opts.clone(), shutdown.clone()));
    }

    let scheme = if tls.is_some() { "https" } else { "http" };
    for addr in server.local_addrs() {
        match addr {
            ListenAddr::Tcp(addr) => {
                tracing::info!("serving {scheme}://{addr}/");
                for hub in streams.all() {
                    tracing::info!("  {scheme}://{addr}/stream/{}", hub.name());
                }
            }
            ListenAddr::Unix(path) => {
                tracing::info!("serving HTTP on unix:{}", path.display());
            }
            // Bound addresses are resolved ones.
            ListenAddr::Host(..) => tracing::info!("serving on {addr}"),
        }
    }

    if let Some(tls) = tls {
        tokio::spawn(reload_on_sighup(tls));
    }
    tokio::spawn({
        let shutdown = shutdown.clone();
        async move {
            wait_for_signal().await;
            // Cancel first: nothing, not even a failing log write, may stand
            // between a signal and the shutdown.
            shutdown.cancel();
            tracing::info!("shutting down");
        }
    });
    server.run().await.context("server failed")?;
    // Let sources finish stopping what they started (an exec: command's
    // processes get SIGTERM and a grace before SIGKILL), but not for long.
    let stopped = futures_util::future::join_all(tasks);
    if tokio::time::timeout(SOURCE_STOP_WAIT, stopped)
        .await
        .is_err()
    {
        tracing::warn!("some sources did not stop within {SOURCE_STOP_WAIT:?}; exiting anyway");
    }
    Ok(())
}

/// How long shutdown waits for sources to stop.
const SOURCE_STOP_WAIT: Duration = Duration::from_secs(5);

/// The certificate and key of the settings, loaded (so that a bad file
/// stops the server before it serves).
fn load_tls(settings: &Settings) -> anyhow::Result<Option<Tls>> {
    settings
        .tls
        .as_ref()
        .map(|t| Tls::load(&t.cert, &t.key))
        .transpose()
        .context("TLS")
}

/// Reloads the certificate on every SIGHUP, as a renewal script (certbot's
/// deploy hook, say) expects; a failed reload keeps the old one.
async fn reload_on_sighup(tls: Tls) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let Ok(mut hup) = signal(SignalKind::hangup()) else {
            tracing::warn!("cannot catch SIGHUP; the certificate will not be reloaded");
            return;
        };
        while hup.recv().await.is_some() {
            match tls.reload() {
                Ok(()) => tracing::info!("reloaded the certificate {}", tls.cert_path().display()),
                Err(e) => tracing::error!("TLS reload failed, keeping the old certificate: {e}"),
            }
        }
    }
    #[cfg(not(unix))]
    drop(tls);
}

/// Every viewer holds a socket, and the usual soft limit of 1024 open files
/// would refuse viewers long before `--max-connections`. Raise the soft
/// limit as far as the hard limit allows (as nginx's
/// `worker_rlimit_nofile` does) and say so if that is still short.
fn raise_fd_limit(max_connections: u64) {
    // Sockets plus a margin for files, pipes and the listener.
    let wanted = max_connections + 64;
    match rlimit::increase_nofile_limit(wanted) {
        Ok(limit) if limit < wanted => tracing::warn!(
            "the open-file limit is {limit}, so fewer than --max-connections {max_connections} viewers fit; raise it with `ulimit -n` (hard limit) or lower --max-connections"
        ),
        Ok(_) => {}
        Err(e) => tracing::warn!("cannot raise the open-file limit: {e}"),
    }
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
