//! Use cases: authorize, authenticate management callers, manage tokens, applications and members.
mod accounts;
mod authorize;
mod error;
mod install;
mod page;
mod tokens;

use crate::storage::Repository;

pub use accounts::{AccountView, Bootstrapped};
pub use authorize::{AuthorizeOutcome, Credentials};
pub use error::ServiceError;
pub use install::{InstallCommand, InstallSettings};
pub use page::{Page, PageRequest};
pub use tokens::{NewTokenRequest, TokenFilters, TokenUpdate, TokenView};

/// Settings of the use cases, from the command line.
#[derive(Debug, Clone)]
pub struct ServiceSettings {
    /// At most this many application names recorded per token; `None` for no limit.
    pub max_apps_per_token: Option<u64>,
    pub install: InstallSettings,
}

impl Default for ServiceSettings {
    fn default() -> Self {
        ServiceSettings {
            max_apps_per_token: Some(1000),
            install: InstallSettings::default(),
        }
    }
}

/// The service: every RPC handler calls one method of this.
#[derive(Clone)]
pub struct Service {
    repo: Repository,
    settings: ServiceSettings,
}

impl Service {
    pub fn new(repo: Repository, settings: ServiceSettings) -> Self {
        Service { repo, settings }
    }

    pub fn repository(&self) -> &Repository {
        &self.repo
    }
}
