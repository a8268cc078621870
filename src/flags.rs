//! Flags and value parsers that several commands take: a domain enum's names, the database,
//! http(s) URLs, state files. Here, below both `cli` and `admin`, so neither imports the other
//! for them. A value the binary cannot honour is refused here, at parse time, in one line.
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use clap::Args;
use clap::builder::{PossibleValue, PossibleValuesParser, TypedValueParser};

use crate::domain::{AppName, Named, UnknownName, UserName, validate_account_name};
use crate::storage::{DatabaseSettings, redact_url};

/// A flag taking one of a domain enum's names (`--help` lists them); aliases are accepted too.
pub fn named<T>() -> impl TypedValueParser<Value = T>
where
    T: Named + FromStr<Err = UnknownName> + Clone + Send + Sync,
{
    let names = T::ALL
        .iter()
        .map(|value| PossibleValue::new(value.name()).aliases(value.aliases().iter().copied()));
    PossibleValuesParser::new(names).try_map(|name| name.parse::<T>())
}

/// The database flags. Debug masks the URL's password, as `DatabaseSettings` does.
#[derive(Args)]
pub struct DatabaseArgs {
    /// Database URL: sqlite://FILE?mode=rwc or postgres://USER:PASSWORD@HOST/DB (the password
    /// may instead be a `password` query parameter, PGPASSWORD or a ~/.pgpass file).
    #[arg(long, env = "API_TOKENS_DATABASE_URL", default_value = DatabaseSettings::DEFAULT_URL, hide_env_values = true)]
    pub database_url: String,
    /// PostgreSQL pool size, 1 to 10000 (SQLite always uses one connection).
    #[arg(long, env = "API_TOKENS_DB_MAX_CONNECTIONS", default_value_t = DatabaseSettings::DEFAULT_MAX_CONNECTIONS, value_parser = clap::value_parser!(u32).range(1..=i64::from(DatabaseSettings::MOST_CONNECTIONS)))]
    pub db_max_connections: u32,
    /// Seconds to wait for a database connection before giving up, 1 to 3600.
    #[arg(long, env = "API_TOKENS_DB_CONNECT_TIMEOUT_SECS", default_value_t = DatabaseSettings::DEFAULT_CONNECT_TIMEOUT.as_secs(), value_parser = clap::value_parser!(u64).range(1..=DatabaseSettings::LONGEST_CONNECT_TIMEOUT.as_secs()))]
    pub db_connect_timeout_secs: u64,
}

impl std::fmt::Debug for DatabaseArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DatabaseArgs")
            .field("database_url", &redact_url(&self.database_url))
            .field("db_max_connections", &self.db_max_connections)
            .field("db_connect_timeout_secs", &self.db_connect_timeout_secs)
            .finish()
    }
}

impl DatabaseArgs {
    pub fn settings(&self) -> DatabaseSettings {
        DatabaseSettings {
            url: self.database_url.clone(),
            max_connections: self.db_max_connections,
            connect_timeout: Duration::from_secs(self.db_connect_timeout_secs),
        }
    }
}

/// An absolute http(s) URL with a host: an address another program can reach.
pub fn http_url(s: &str) -> Result<String, String> {
    let uri: http::Uri = s
        .parse()
        .map_err(|_| "expected an http:// or https:// URL")?;
    match (uri.scheme_str(), uri.host()) {
        (Some("http" | "https"), Some(host)) if !host.is_empty() => Ok(s.to_owned()),
        _ => Err("expected an http:// or https:// URL with a host".into()),
    }
}

/// An account name, as accounts are named: refused here rather than after the database was
/// opened (and, for SQLite, created and migrated).
pub fn account_name(s: &str) -> Result<String, String> {
    validate_account_name(s)?;
    Ok(s.to_owned())
}

/// A member's user name (e.g. an email), as members are named.
pub fn user_name(s: &str) -> Result<String, String> {
    UserName::parse(s)?;
    Ok(s.to_owned())
}

/// An application name a command presents: refused here rather than by the server, after
/// a client started retrying.
pub fn app_name(s: &str) -> Result<String, String> {
    AppName::parse(s)?;
    Ok(s.to_owned())
}

/// A file a command keeps its state in: its folder must exist and it must not be a folder,
/// so a path that can never be written stops the command at start, not after its first
/// decision or delivery.
pub fn state_file(s: &str) -> Result<PathBuf, String> {
    let path = PathBuf::from(s);
    if s.is_empty() || path.is_dir() {
        return Err("expected a file, not a folder".into());
    }
    let folder = match path.parent() {
        Some(folder) if !folder.as_os_str().is_empty() => folder,
        _ => Path::new("."),
    };
    if !folder.is_dir() {
        return Err(format!("the folder {} does not exist", folder.display()));
    }
    Ok(path)
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Flags {
        #[command(flatten)]
        database: DatabaseArgs,
    }

    /// The flags and the settings they make print the URL with its password masked, wherever
    /// the URL carried it.
    #[test]
    fn debug_never_shows_the_database_password() {
        for url in [
            "postgres://svc:Hunter2@db/x",
            "postgres://svc@db/x?sslmode=disable&password=Hunter2",
        ] {
            let flags = Flags::try_parse_from(["flags", "--database-url", url]).expect("parses");
            for shown in [
                format!("{flags:?}"),
                format!("{:?}", flags.database.settings()),
            ] {
                assert!(!shown.contains("Hunter2"), "{shown}");
                assert!(shown.contains("svc"), "{shown}");
            }
        }
    }
}
