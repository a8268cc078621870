//! Flags and value parsers that several commands take: a domain enum's names, the database.
//! Here, below both `cli` and `admin`, so neither imports the other for them.
use std::str::FromStr;
use std::time::Duration;

use clap::Args;
use clap::builder::{PossibleValue, PossibleValuesParser, TypedValueParser};

use crate::domain::{Named, UnknownName};
use crate::storage::DatabaseSettings;

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

#[derive(Debug, Args)]
pub struct DatabaseArgs {
    /// Database URL: sqlite://FILE?mode=rwc or postgres://USER:PASSWORD@HOST/DB.
    #[arg(long, env = "API_TOKENS_DATABASE_URL", default_value = DatabaseSettings::DEFAULT_URL, hide_env_values = true)]
    pub database_url: String,
    /// PostgreSQL pool size (SQLite always uses one connection).
    #[arg(long, env = "API_TOKENS_DB_MAX_CONNECTIONS", default_value_t = DatabaseSettings::DEFAULT_MAX_CONNECTIONS)]
    pub db_max_connections: u32,
    /// Seconds to wait for a database connection before giving up.
    #[arg(long, env = "API_TOKENS_DB_CONNECT_TIMEOUT_SECS", default_value_t = DatabaseSettings::DEFAULT_CONNECT_TIMEOUT.as_secs())]
    pub db_connect_timeout_secs: u64,
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
