//! One-Step-Install: the command an operator pastes on a host, with its app name pre-allowed.
use serde_json::json;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::domain::{AppName, AppState, Caller};
use crate::storage::{Actor, AppDecision, Locked, WriteMode};

use super::cache::StaleKey;
use super::guard::visible_now;
use super::{Service, ServiceError};

/// Where installers are sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstallSettings {
    pub api_url: String,
    pub cosi_url: String,
}

impl InstallSettings {
    pub const DEFAULT_API_URL: &str = "https://api.circonus.com/";
    pub const DEFAULT_COSI_URL: &str = "https://setup.circonus.com/";
}

impl Default for InstallSettings {
    fn default() -> Self {
        InstallSettings {
            api_url: Self::DEFAULT_API_URL.into(),
            cosi_url: Self::DEFAULT_COSI_URL.into(),
        }
    }
}

/// The environment variable the pasted command reads the secret from: the secret is never
/// stored, so the service cannot print it, and a command line would leak it to `ps` anyway.
pub const KEY_ENV_VAR: &str = "CIRCONUS_API_KEY";

/// The environment variable the installer (cosi-install.sh) takes its key from instead of
/// `--key`. The command hands the key over in the installer's environment, never in its
/// arguments: arguments are visible to every user of the host in `ps` (and the installer
/// writes its arguments to its log).
pub const INSTALLER_KEY_ENV_VAR: &str = "COSI_KEY";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstallCommand {
    pub command: String,
    pub app_name: AppName,
    pub api_url: String,
    pub cosi_url: String,
    pub config_json: String,
    pub key_env_var: &'static str,
}

/// Broker ids go into a shell command: only characters that need no quoting.
fn valid_broker_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 100
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_./:-".contains(&b))
}

/// The installer's app name for a token, `circonus:osi:<64 hex>` like Circonus's UI makes:
/// derived from the token id, so asking twice gives the same name.
pub fn install_app_name(token_id: Uuid) -> AppName {
    let digest = Sha256::digest(format!("api-tokens/one-step-install/{token_id}"));
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    let name = format!("circonus:osi:{hex}");
    AppName::parse(&name).expect("install app name is valid") // ok: 77 printable ASCII characters always parse
}

impl Service {
    pub async fn install_command(
        &self,
        caller: &Caller,
        token_id: Uuid,
        broker_id: Option<&str>,
    ) -> Result<InstallCommand, ServiceError> {
        if broker_id.is_some_and(|id| !valid_broker_id(id)) {
            return Err(ServiceError::invalid(
                "broker_id",
                "must be 1 to 100 characters of letters, digits and _ . / : -",
            ));
        }
        caller.require_write()?;
        let app = install_app_name(token_id);
        let actor = Actor::of(caller);
        // The checks run inside the pre-allow's transaction: a retire that commits first wins.
        let check = |locked: &Locked| {
            let (caller, token, _) = visible_now(caller, locked, token_id)?;
            caller.require_write()?;
            caller.may_change_own_approval(
                token_id,
                &app,
                locked.caller_app.as_ref(),
                AppState::Allow,
                None,
            )?;
            Ok::<_, ServiceError>(token.require_installable(locked.now)?)
        };
        let decision = AppDecision {
            token_id,
            name: app.clone(),
            state: AppState::Allow,
            conditions: None,
        };
        let mut results = self
            .repo
            .decide_applications(
                caller.account_id,
                actor,
                std::slice::from_ref(&decision),
                None,
                WriteMode::Commit,
                |_| Ok::<_, ServiceError>(()),
                |locked, _| check(locked),
            )
            .await?;
        results
            .pop()
            .ok_or_else(|| ServiceError::not_found("token", token_id))??;
        self.changed_here(StaleKey::App(token_id, app.as_str().to_owned()))
            .await;
        let InstallSettings { api_url, cosi_url } = self.settings.install.clone();
        let mut command = format!(
            "curl -sSL {cosi_url}install | {INSTALLER_KEY_ENV_VAR}=\"${KEY_ENV_VAR}\" bash -s -- --cosiurl {cosi_url} --app '{app}' --apiurl {api_url}"
        );
        if let Some(id) = broker_id {
            command.push_str(&format!(" --broker {id}"));
        }
        let config = json!({
            "api_key": format!("${{{KEY_ENV_VAR}}}"),
            "api_app": app.as_str(),
            "api_url": api_url,
            "cosi_url": cosi_url,
            "cosi_broker_id": broker_id.unwrap_or(""),
        });
        Ok(InstallCommand {
            command,
            app_name: app,
            api_url,
            cosi_url,
            config_json: serde_json::to_string_pretty(&config).unwrap_or_default(),
            key_env_var: KEY_ENV_VAR,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn app_name_is_stable_and_circonus_shaped() {
        let id = Uuid::new_v4();
        let name = install_app_name(id);
        assert_eq!(name, install_app_name(id));
        assert!(name.as_str().starts_with("circonus:osi:"));
        assert_eq!(name.as_str().len(), "circonus:osi:".len() + 64);
    }

    #[test]
    fn broker_ids_cannot_inject_shell() {
        assert!(valid_broker_id("/broker/1234"));
        assert!(!valid_broker_id("1; rm -rf /"));
        assert!(!valid_broker_id("$(id)"));
        assert!(!valid_broker_id(""));
    }
}
