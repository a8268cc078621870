//! Test certificates made on the spot (rcgen), and a TLS replica of a `TestApp` to reach with them.
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use api_tokens::operations::TlsSettings;
use tokio::sync::oneshot;

/// A CA, a server certificate for 127.0.0.1 and localhost and a client certificate, as PEM
/// files in a folder of their own: `ca.pem`, `server.pem`, `server.key`, `client.pem`,
/// `client.key`.
pub struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    pub fn generate() -> Pki {
        use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().expect("ca key"))
            .expect("ca");
        let server_key = KeyPair::generate().expect("server key");
        let server = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .expect("server params")
            .signed_by(&server_key, &ca)
            .expect("server cert");
        let client_key = KeyPair::generate().expect("client key");
        let client = CertificateParams::new(vec!["client.example".to_owned()])
            .expect("client params")
            .signed_by(&client_key, &ca)
            .expect("client cert");
        let dir = tempfile::tempdir().expect("dir");
        let write =
            |name: &str, pem: &str| std::fs::write(dir.path().join(name), pem).expect("write pem");
        write("ca.pem", &ca.pem());
        write("server.pem", &server.pem());
        write("server.key", &server_key.serialize_pem());
        write("client.pem", &client.pem());
        write("client.key", &client_key.serialize_pem());
        Pki { dir }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// One of the PEM files, as text.
    pub fn pem(&self, name: &str) -> String {
        std::fs::read_to_string(self.path(name)).expect("read pem")
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The server's TLS; with `require_client_certs`, mTLS with clients of this CA only.
    pub fn server(&self, require_client_certs: bool) -> TlsSettings {
        TlsSettings {
            cert: self.path("server.pem"),
            key: self.path("server.key"),
            client_ca: require_client_certs.then(|| self.path("ca.pem")),
        }
    }
}

/// Another replica of `app`, on the same database, serving TLS only; stopped when dropped.
pub struct TlsReplica {
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    handle: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl TlsReplica {
    /// Stops it gracefully and waits for it, which must end cleanly.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(handle) = self.handle.take() {
            handle.await.expect("task").expect("stopped cleanly");
        }
    }
}

impl Drop for TlsReplica {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// A TLS replica of `app` with `pki`'s server certificate, no client certificate required.
pub async fn tls_replica(app: &super::TestApp, pki: &Pki) -> TlsReplica {
    tls_replica_with(app, pki.server(false)).await
}

/// A TLS replica of `app` with `tls` (from [`Pki::server`]).
pub async fn tls_replica_with(app: &super::TestApp, tls: TlsSettings) -> TlsReplica {
    let mut settings = app.settings.clone();
    settings.operations.tls = Some(tls);
    let serving = super::serve(settings).await;
    TlsReplica {
        addr: serving.addr,
        stop: Some(serving.stop),
        handle: Some(serving.handle),
    }
}
