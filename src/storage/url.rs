//! Database URLs as this service accepts them: which backend, the URL as messages show it
//! (password masked), and the URL split from its password where the database is opened.
//!
//! The drivers repeat the URL in their errors ("The connection string '...' has no
//! supporting driver") and in their TRACE spans, so they are only ever given the URL
//! without its password; the password goes to them as a connect option.

/// The backends a URL may name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Checks that `url` names a backend this binary supports, without ever echoing the URL:
/// only its scheme, when the scheme is one word, appears in the message.
pub fn backend_of(url: &str) -> Result<Backend, String> {
    if url.starts_with("sqlite:") {
        return Ok(Backend::Sqlite);
    }
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok(Backend::Postgres);
    }
    let scheme = url
        .split_once("://")
        .map(|(scheme, _)| scheme)
        .filter(|s| !s.is_empty() && s.len() <= 20 && s.chars().all(|c| c.is_ascii_alphanumeric()));
    Err(match scheme {
        Some(scheme) => format!(
            "the database URL's scheme {scheme:?} is not supported: use sqlite://FILE?mode=rwc or postgres://USER:PASSWORD@HOST/DB"
        ),
        None => "the database URL is not a URL: use sqlite://FILE?mode=rwc or postgres://USER:PASSWORD@HOST/DB".to_owned(),
    })
}

/// Where the password of the user-info lies in `url`: after the first ':' of the user-info,
/// up to its last '@'. Also finds it in malformed URLs (`postgres//u:pw@h`, `pg:u:pw@h`),
/// which is where a mistyped URL would otherwise show it. An '@' inside a `password` query
/// parameter is that parameter's, not the user-info's end.
fn password_span(url: &str) -> Option<(usize, usize)> {
    let query_password = ["?password=", "&password="]
        .iter()
        .filter_map(|p| url.find(p))
        .min()
        .unwrap_or(url.len());
    let at = url[..query_password].rfind('@')?;
    let start = match url[..at].find("://") {
        Some(i) => i + 3,
        None => match url[..at].find("//") {
            Some(i) => i + 2,
            // No authority marker at all: anything before the '@' may be the password.
            None => 0,
        },
    };
    match url[start..at].find(':') {
        Some(i) => Some((start + i + 1, at)),
        // "user@host" has no password; but with no scheme to say what the text before the
        // '@' is, it may be one.
        None if start == 0 => Some((0, at)),
        None => None,
    }
}

/// Where the values of the `password` query parameters lie in `url` (the key compared
/// decoded, as the driver reads it).
fn query_password_spans(url: &str) -> Vec<(usize, usize)> {
    let Some(query_start) = url.find('?') else {
        return Vec::new();
    };
    let mut spans = Vec::new();
    let mut at = query_start + 1;
    for pair in url[query_start + 1..].split('&') {
        if let Some((key, _)) = pair.split_once('=') {
            let decoded = url::form_urlencoded::parse(key.as_bytes()).next();
            if decoded.is_some_and(|(key, _)| key == "password") {
                spans.push((at + key.len() + 1, at + pair.len()));
            }
        }
        at += pair.len() + 1;
    }
    spans
}

/// `url` with its password replaced by `***`, wherever it was given (the user-info, the
/// `password` query parameter): how messages and Debug show a database URL.
pub fn redact_url(url: &str) -> String {
    let mut spans = query_password_spans(url);
    spans.extend(password_span(url));
    spans.sort();
    let mut shown = String::with_capacity(url.len());
    let mut copied = 0;
    for (from, to) in spans {
        if from < copied {
            continue;
        }
        shown.push_str(&url[copied..from]);
        shown.push_str("***");
        copied = to;
    }
    shown.push_str(&url[copied..]);
    shown
}

/// A PostgreSQL URL split at the edge: the URL without any password (what the driver is
/// given, and all it can ever repeat in an error or a trace), and the password apart,
/// decoded, for the connect options. The user-info's password and the `password` query
/// parameter are both taken out; as for the driver, the query's wins. A password in
/// `PGPASSWORD` or a password file never enters the URL: the driver reads it itself.
pub fn split_password(text: &str) -> Result<(String, Option<String>), String> {
    let mut url =
        url::Url::parse(text).map_err(|e| format!("the database URL is not a URL ({e})"))?;
    let mut password = url.password().map(percent_decode).filter(|p| !p.is_empty());
    if url.password().is_some() && url.set_password(None).is_err() {
        return Err("the database URL has a password where none can be".to_owned());
    }
    let pairs: Vec<(String, String)> = url.query_pairs().into_owned().collect();
    if pairs.iter().any(|(key, _)| key == "password") {
        let mut rest = Vec::new();
        for (key, value) in pairs {
            if key == "password" {
                password = Some(value);
            } else {
                rest.push((key, value));
            }
        }
        url.set_query(None);
        if !rest.is_empty() {
            url.query_pairs_mut().extend_pairs(rest);
        }
    }
    Ok((url.into(), password))
}

/// `text` with every whole occurrence of `url` shown as `redact_url` shows it: for errors
/// that may repeat the URL as given. Nothing but the whole URL is replaced, so no other
/// text is masked for resembling a password.
pub fn redact_in(text: &str, url: &str) -> String {
    if url.is_empty() || !text.contains(url) {
        return text.to_owned();
    }
    text.replace(url, &redact_url(url))
}

/// `%XX` escapes decoded, as the driver decodes a user-info password.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (bytes[i], bytes.get(i + 1), bytes.get(i + 2)) {
            (b'%', Some(&h), Some(&l)) if hex(h).is_some() && hex(l).is_some() => {
                let value = hex(h).unwrap_or(0) * 16 + hex(l).unwrap_or(0);
                out.push(value as u8);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_found_in_good_and_mistyped_urls() {
        for (url, redacted) in [
            (
                "postgres://app:s3cret@db:5432/tokens",
                "postgres://app:***@db:5432/tokens",
            ),
            ("postgress://u:TopSecret@db/x", "postgress://u:***@db/x"),
            ("postgres//u:TopSecret@db/x", "postgres//u:***@db/x"),
            ("pg:u:TopSecret@db/x", "pg:***@db/x"),
            ("TopSecret@db/x", "***@db/x"),
            ("postgres://a:b@c@db/x", "postgres://a:***@db/x"),
            (
                "sqlite://api-tokens.db?mode=rwc",
                "sqlite://api-tokens.db?mode=rwc",
            ),
            ("postgres://app@db/x", "postgres://app@db/x"),
        ] {
            assert_eq!(redact_url(url), redacted, "{url}");
        }
    }

    #[test]
    fn query_passwords_are_masked_and_nothing_else() {
        for (url, shown) in [
            (
                "postgres://svc@db/x?password=api&sslmode=disable",
                "postgres://svc@db/x?password=***&sslmode=disable",
            ),
            (
                "postgres://svc:api@db/api_tokens?application_name=api&password=p@ss",
                "postgres://svc:***@db/api_tokens?application_name=api&password=***",
            ),
            (
                "postgres://api_tokens@db/api_tokens?passwords=api",
                "postgres://api_tokens@db/api_tokens?passwords=api",
            ),
            (
                "postgres://svc@db/x?pass%77ord=api",
                "postgres://svc@db/x?pass%77ord=***",
            ),
        ] {
            assert_eq!(redact_url(url), shown, "{url}");
        }
        // Only the whole URL is replaced in a driver's message, never a word like it.
        let url = "postgres://api_tokens:api@db/api_tokens";
        assert_eq!(
            redact_in(&format!("api_tokens::startup: {url} refused"), url),
            "api_tokens::startup: postgres://api_tokens:***@db/api_tokens refused"
        );
    }

    #[test]
    fn the_driver_gets_the_url_without_its_password() {
        for (url, without, password) in [
            (
                "postgres://svc:p%40ss%22w@db:5432/x",
                "postgres://svc@db:5432/x",
                Some("p@ss\"w"),
            ),
            (
                "postgres://svc@db/x?sslmode=disable&password=a%26b&application_name=api-tokens",
                "postgres://svc@db/x?sslmode=disable&application_name=api-tokens",
                Some("a&b"),
            ),
            (
                "postgres://svc:first@db/x?password=second",
                "postgres://svc@db/x",
                Some("second"),
            ),
            (
                "postgres://svc@db/x?pass%77ord=third",
                "postgres://svc@db/x",
                Some("third"),
            ),
            ("postgres://svc@db/x", "postgres://svc@db/x", None),
        ] {
            let split = split_password(url).expect(url);
            assert_eq!(
                split,
                (without.to_owned(), password.map(str::to_owned)),
                "{url}"
            );
        }
        let refused = split_password("postgres://svc:Top/Secret@db:x/y").expect_err("no URL");
        assert!(!refused.contains("Secret"), "{refused}");
    }

    #[test]
    fn unsupported_schemes_are_named_but_never_the_url() {
        for url in [
            "postgress://u:TopSecret@db/x",
            "pg://u:TopSecret@db/x",
            "mysql://u:TopSecret@db/x",
            "postgres//u:TopSecret@db/x",
            "TopSecret",
        ] {
            let message = backend_of(url).expect_err(url);
            assert!(!message.contains("TopSecret"), "{message}");
        }
        assert_eq!(backend_of("postgresql://h/x"), Ok(Backend::Postgres));
        assert_eq!(backend_of("sqlite::memory:"), Ok(Backend::Sqlite));
    }
}
