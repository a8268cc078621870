//! Test certificates made on the spot (rcgen), and a TLS replica of a `TestApp` to reach with them.
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use api_tokens::operations::TlsSettings;
use tokio::sync::oneshot;

/// A CA and a server certificate for 127.0.0.1 and localhost, as PEM files in a folder of their own.
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
        let dir = tempfile::tempdir().expect("dir");
        let write =
            |name: &str, pem: &str| std::fs::write(dir.path().join(name), pem).expect("write pem");
        write("ca.pem", &ca.pem());
        write("server.pem", &server.pem());
        write("server.key", &server_key.serialize_pem());
        Pki { dir }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn server(&self) -> TlsSettings {
        TlsSettings {
            cert: self.path("server.pem"),
            key: self.path("server.key"),
            client_ca: None,
        }
    }
}

/// Another replica of `app`, on the same database, serving TLS only; stopped when dropped.
pub struct TlsReplica {
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
}

impl Drop for TlsReplica {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

pub async fn tls_replica(app: &super::TestApp, pki: &Pki) -> TlsReplica {
    let mut settings = app.settings.clone();
    settings.operations.tls = Some(pki.server());
    let serving = super::serve(settings).await;
    TlsReplica {
        addr: serving.addr,
        stop: Some(serving.stop),
    }
}
