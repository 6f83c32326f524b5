//! The front door's TLS: certificate and key from PEM files, client
//! certificates verified against a CA when configured, TLS 1.2 and 1.3 only
//! (rustls has nothing older). The files are read again on SIGHUP and when
//! they change on disk; a bad new file keeps the old config serving.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::server::WebPkiClientVerifier;
use tokio_rustls::rustls::{self, RootCertStore, ServerConfig};

use crate::config::TlsListen;

/// How often the files' modification times are looked at.
const WATCH_EVERY: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{path}: {problem}")]
    File { path: PathBuf, problem: String },
    #[error("server.tls: {0}")]
    Config(String),
}

fn file_error(path: &Path, problem: impl std::fmt::Display) -> TlsError {
    TlsError::File {
        path: path.to_path_buf(),
        problem: problem.to_string(),
    }
}

/// The TLS config in force, swapped whole on reload.
pub struct TlsSource {
    listen: TlsListen,
    current: RwLock<Arc<ServerConfig>>,
}

impl TlsSource {
    pub fn load(listen: &TlsListen) -> Result<Arc<TlsSource>, TlsError> {
        Ok(Arc::new(TlsSource {
            current: RwLock::new(build(listen)?),
            listen: listen.clone(),
        }))
    }

    /// An acceptor for the next connection, with the config in force now.
    pub fn acceptor(&self) -> TlsAcceptor {
        let config = self
            .current
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone();
        TlsAcceptor::from(config)
    }

    /// Read the files again; on error the old config stays.
    pub fn reload(&self) -> Result<(), TlsError> {
        let config = build(&self.listen)?;
        *self
            .current
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = config;
        Ok(())
    }

    fn files(&self) -> Vec<&Path> {
        let mut files = vec![self.listen.cert_file.as_path(), &self.listen.key_file];
        if let Some(c) = &self.listen.client_certs {
            files.push(&c.ca_file);
        }
        files
    }

    fn stamps(&self) -> Vec<Option<SystemTime>> {
        self.files()
            .into_iter()
            .map(|f| std::fs::metadata(f).and_then(|m| m.modified()).ok())
            .collect()
    }

    /// Reload on SIGHUP and when a file's modification time changes, until
    /// `stop`.
    pub fn spawn_reloader(self: Arc<Self>, stop: watch::Receiver<bool>) {
        tokio::spawn(async move {
            let stopping = async move {
                let mut stop = stop;
                let _ = stop.wait_for(|s| *s).await;
            };
            tokio::pin!(stopping);
            let mut hangup = hangup_signal();
            let mut stamps = self.stamps();
            loop {
                let signalled = tokio::select! {
                    _ = &mut stopping => return,
                    _ = tokio::time::sleep(WATCH_EVERY) => false,
                    _ = next_hangup(&mut hangup) => true,
                };
                let now = self.stamps();
                if !signalled && now == stamps {
                    continue;
                }
                stamps = now;
                match self.reload() {
                    Ok(()) => tracing::info!(signalled, "TLS certificate and key reloaded"),
                    Err(e) => {
                        tracing::error!(error = %e, "TLS reload failed; the previous certificate stays in use")
                    }
                }
            }
        });
    }
}

#[cfg(unix)]
type Hangup = Option<tokio::signal::unix::Signal>;
#[cfg(not(unix))]
type Hangup = Option<()>;

fn hangup_signal() -> Hangup {
    #[cfg(unix)]
    {
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok()
    }
    #[cfg(not(unix))]
    {
        None
    }
}

async fn next_hangup(hangup: &mut Hangup) {
    // A closed signal stream never fires again (rather than firing forever).
    #[cfg(unix)]
    if let Some(signal) = hangup
        && signal.recv().await.is_some()
    {
        return;
    }
    let _ = hangup;
    std::future::pending::<()>().await
}

fn build(listen: &TlsListen) -> Result<Arc<ServerConfig>, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&listen.cert_file)
        .map_err(|e| file_error(&listen.cert_file, e))?
        .collect::<Result<_, _>>()
        .map_err(|e| file_error(&listen.cert_file, e))?;
    if chain.is_empty() {
        return Err(file_error(&listen.cert_file, "holds no PEM certificate"));
    }
    let key = PrivateKeyDer::from_pem_file(&listen.key_file)
        .map_err(|e| file_error(&listen.key_file, format!("no usable private key: {e}")))?;
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| TlsError::Config(e.to_string()))?;
    let builder = match &listen.client_certs {
        None => builder.with_no_client_auth(),
        Some(clients) => {
            let mut roots = RootCertStore::empty();
            for cert in CertificateDer::pem_file_iter(&clients.ca_file)
                .map_err(|e| file_error(&clients.ca_file, e))?
            {
                let cert = cert.map_err(|e| file_error(&clients.ca_file, e))?;
                roots
                    .add(cert)
                    .map_err(|e| file_error(&clients.ca_file, e))?;
            }
            if roots.is_empty() {
                return Err(file_error(&clients.ca_file, "holds no PEM certificate"));
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            let verifier = if clients.required {
                verifier
            } else {
                verifier.allow_unauthenticated()
            };
            builder.with_client_cert_verifier(
                verifier
                    .build()
                    .map_err(|e| file_error(&clients.ca_file, e))?,
            )
        }
    };
    let mut config = builder.with_single_cert(chain, key).map_err(|e| {
        file_error(
            &listen.key_file,
            format!("does not match the certificate: {e}"),
        )
    })?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
