//! The admin commands' connection: server address, optional TLS, and the caller's credentials as metadata.
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use tonic::metadata::{AsciiMetadataValue, MetadataValue};
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};
use tonic::{Request, Response, Status};
use tonic_types::StatusExt;

use super::output::Output;
use crate::code_name::code_name;
use crate::grpc::pb::{
    account_service_client::AccountServiceClient, token_service_client::TokenServiceClient,
};
use crate::grpc::{APP_HEADER, MIN_REVISION_HEADER, REVISION_HEADER, TOKEN_HEADER};

/// The variable holding the secret the admin commands present. Never a flag: a flag's value
/// shows in `ps` and in shell history.
pub const TOKEN_VAR: &str = "API_TOKENS_TOKEN";

/// How to reach the server, shared by every admin command.
#[derive(Debug, Clone, Args)]
pub struct ClientArgs {
    #[command(flatten)]
    pub connection: ConnectionArgs,
    /// Application name the command presents; it must be allowed on the token.
    #[arg(
        long,
        global = true,
        env = "API_TOKENS_APP",
        default_value = "api-tokens-cli",
        value_parser = crate::flags::app_name
    )]
    pub app: String,
    /// Output format.
    #[arg(long, global = true, value_enum, default_value = "table")]
    pub output: Output,
    /// Read at least as fresh as this revision (what a change printed as `revision:`), on
    /// whichever replica answers: "retire, then check" is exact behind a load balancer.
    #[arg(long, global = true, env = "API_TOKENS_MIN_REVISION")]
    pub min_revision: Option<String>,
}

/// The server's address and the TLS files to reach it: the admin commands' and the approval bot's.
#[derive(Debug, Clone, Args)]
pub struct ConnectionArgs {
    /// gRPC address of the server (https://... for TLS).
    #[arg(
        long,
        global = true,
        env = "API_TOKENS_SERVER",
        default_value = "http://127.0.0.1:50051"
    )]
    pub server: String,
    /// PEM CA bundle that signed the server's certificate (for https:// servers).
    #[arg(long, global = true, env = "API_TOKENS_CA_CERT", value_name = "FILE")]
    pub ca_cert: Option<PathBuf>,
    /// PEM client certificate, for servers that require one (mTLS).
    #[arg(
        long,
        global = true,
        env = "API_TOKENS_CLIENT_CERT",
        value_name = "FILE",
        requires = "client_key"
    )]
    pub client_cert: Option<PathBuf>,
    /// PEM key of --client-cert.
    #[arg(
        long,
        global = true,
        env = "API_TOKENS_CLIENT_KEY",
        value_name = "FILE",
        requires = "client_cert"
    )]
    pub client_key: Option<PathBuf>,
}

impl ConnectionArgs {
    /// The endpoint with its TLS set up, not yet connected. Everything that can be checked
    /// without the server is checked here: the URL, the scheme against the TLS flags, the files.
    pub fn endpoint(&self) -> anyhow::Result<Endpoint> {
        let mut endpoint = Endpoint::from_shared(self.server.clone())
            .with_context(|| format!("--server {} is not a valid URL", self.server))?;
        match endpoint.uri().scheme_str() {
            Some("http" | "https") => {}
            _ => anyhow::bail!(
                "--server {} must start with http:// (plaintext) or https:// (TLS)",
                self.server
            ),
        }
        if let Some(tls) = self.tls_config()? {
            endpoint = endpoint
                .tls_config(tls)
                .context("invalid client TLS configuration")?;
        }
        Ok(endpoint)
    }

    fn tls_config(&self) -> anyhow::Result<Option<ClientTlsConfig>> {
        let https = self.server.starts_with("https://");
        if !https && (self.ca_cert.is_some() || self.client_cert.is_some()) {
            anyhow::bail!("--ca-cert and --client-cert need an https:// --server");
        }
        if !https {
            return Ok(None);
        }
        let read = |what: &str, path: &PathBuf| {
            std::fs::read(path)
                .with_context(|| format!("cannot read the {what} {}", path.display()))
        };
        let mut config = ClientTlsConfig::new();
        match &self.ca_cert {
            Some(ca) => config = config.ca_certificate(Certificate::from_pem(read("CA", ca)?)),
            None => anyhow::bail!(
                "an https:// --server needs --ca-cert (the CA that signed its certificate)"
            ),
        }
        if let (Some(cert), Some(key)) = (&self.client_cert, &self.client_key) {
            config = config.identity(Identity::from_pem(
                read("client certificate", cert)?,
                read("client key", key)?,
            ));
        }
        Ok(Some(config))
    }
}

/// The caller's credentials as the headers of every call: the secret, the application name
/// and the freshness asked for.
#[derive(Clone)]
pub struct CallerHeaders {
    token: AsciiMetadataValue,
    app: AsciiMetadataValue,
    min_revision: Option<AsciiMetadataValue>,
}

impl std::fmt::Debug for CallerHeaders {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallerHeaders")
            .field("app", &self.app)
            .finish_non_exhaustive()
    }
}

impl Interceptor for CallerHeaders {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        let md = request.metadata_mut();
        md.insert(TOKEN_HEADER, self.token.clone());
        md.insert(APP_HEADER, self.app.clone());
        if let Some(revision) = &self.min_revision {
            md.insert(MIN_REVISION_HEADER, revision.clone());
        }
        Ok(request)
    }
}

pub type Tokens = TokenServiceClient<InterceptedService<Channel, CallerHeaders>>;
pub type Accounts = AccountServiceClient<InterceptedService<Channel, CallerHeaders>>;

/// A connection with the caller's credentials.
pub struct Client {
    channel: Channel,
    headers: CallerHeaders,
}

impl CallerHeaders {
    pub fn new(secret: &str, app: &str) -> anyhow::Result<CallerHeaders> {
        Ok(CallerHeaders {
            token: MetadataValue::try_from(secret.trim())
                .map_err(|_| anyhow::anyhow!("{TOKEN_VAR} is not printable ASCII"))?,
            app: MetadataValue::try_from(app)
                .map_err(|_| anyhow::anyhow!("--app must be printable ASCII"))?,
            min_revision: None,
        })
    }
}

impl Client {
    /// Connects now: a one-shot command reports an unreachable server at once.
    pub async fn connect(args: &ClientArgs) -> anyhow::Result<Client> {
        let secret = std::env::var(TOKEN_VAR).map_err(|_| {
            anyhow::anyhow!(
                "set {TOKEN_VAR} to the secret of your token (it is read from the environment only, \
                 so it stays out of ps and shell history)"
            )
        })?;
        let mut headers = CallerHeaders::new(&secret, &args.app)?;
        if let Some(revision) = &args.min_revision {
            headers.min_revision = Some(
                MetadataValue::try_from(revision.trim())
                    .map_err(|_| anyhow::anyhow!("--min-revision must be printable ASCII"))?,
            );
        }
        let channel = args
            .connection
            .endpoint()?
            .connect()
            .await
            .with_context(|| format!("cannot connect to {}", args.connection.server))?;
        Ok(Client { channel, headers })
    }

    /// Connects on first use and again after each failure: for a long-running client (the
    /// approval bot) that outlives server restarts. A set-up that cannot work (bad URL,
    /// TLS flags that do not fit the scheme, unreadable files) still fails here, at once.
    pub fn lazy(connection: &ConnectionArgs, secret: &str, app: &str) -> anyhow::Result<Client> {
        Ok(Client {
            channel: connection.endpoint()?.connect_lazy(),
            headers: CallerHeaders::new(secret, app)?,
        })
    }

    pub fn tokens(&self) -> Tokens {
        TokenServiceClient::with_interceptor(self.channel.clone(), self.headers.clone())
    }

    pub fn accounts(&self) -> Accounts {
        AccountServiceClient::with_interceptor(self.channel.clone(), self.headers.clone())
    }
}

/// A refusal as one readable error: the code, the message, and any field violations.
pub fn status_error(status: Status) -> anyhow::Error {
    let mut text = format!("{}: {}", code_name(status.code()), status.message());
    if let Some(bad) = status.get_details_bad_request() {
        // The service's messages already name the fields; others' may not.
        for v in bad.field_violations {
            if !status.message().contains(&v.description) {
                text.push_str(&format!("\n  {}: {}", v.field, v.description));
            }
        }
    }
    anyhow::Error::msg(text)
}

/// What a command makes of the server's answer to one call.
pub trait Answer<T> {
    /// A read's message, or the refusal as an error (`status_error`).
    fn read(self) -> anyhow::Result<T>;
    /// A change's message, the revision it committed at noted on stderr (so output stays
    /// parseable): given to `--min-revision`, a later command reads it on whichever replica
    /// answers.
    fn changed(self) -> anyhow::Result<T>;
}

impl<T> Answer<T> for Result<Response<T>, Status> {
    fn read(self) -> anyhow::Result<T> {
        self.map(Response::into_inner).map_err(status_error)
    }

    fn changed(self) -> anyhow::Result<T> {
        let reply = self.map_err(status_error)?;
        if let Some(revision) = reply
            .metadata()
            .get(REVISION_HEADER)
            .and_then(|v| v.to_str().ok())
        {
            eprintln!("revision: {revision}");
        }
        Ok(reply.into_inner())
    }
}
