//! Database URLs as this service accepts them, and the forms their password takes in text,
//! so no message, error or log line ever shows it.
//!
//! The drivers repeat the URL in their errors ("The connection string '...' has no
//! supporting driver") and in their TRACE spans; everything they say passes through here.

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

/// Where the password lies in `url`: after the first ':' of the user-info, up to the last
/// '@'. Also finds it in malformed URLs (`postgres//u:pw@h`, `pg:u:pw@h`), which is where
/// a mistyped URL would otherwise show it.
fn password_span(url: &str) -> Option<(usize, usize)> {
    let at = url.rfind('@')?;
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

/// `url` with its password replaced by `***`, for messages.
pub fn redact_url(url: &str) -> String {
    match password_span(url) {
        Some((from, to)) => format!("{}***{}", &url[..from], &url[to..]),
        None => url.to_owned(),
    }
}

/// The password of `url` as written (percent-encoded), if it has one.
pub fn password_of(url: &str) -> Option<&str> {
    password_span(url)
        .map(|(from, to)| &url[from..to])
        .filter(|p| !p.is_empty())
}

/// Every form the password of `url` may take in text: as written, percent-decoded, and
/// each as Rust's Debug and JSON would escape it (the drivers Debug-print their options;
/// JSON logs escape again).
pub fn password_forms(url: &str) -> Vec<String> {
    let Some(written) = password_of(url) else {
        return Vec::new();
    };
    let mut forms = Vec::new();
    for plain in [written.to_owned(), percent_decode(written)] {
        let debug = format!("{plain:?}");
        let debug = debug[1..debug.len() - 1].to_owned();
        for form in [
            plain.clone(),
            json_escape(&plain),
            debug.clone(),
            json_escape(&debug),
        ] {
            if !form.is_empty() && !forms.contains(&form) {
                forms.push(form);
            }
        }
    }
    forms
}

/// `text` with the whole URL and every form of its password replaced by `***`: for
/// driver errors, which may repeat either.
pub fn redact_in(text: &str, url: &str) -> String {
    let mut text = text.replace(url, &redact_url(url));
    for form in password_forms(url) {
        text = text.replace(&form, "***");
    }
    text
}

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

fn json_escape(s: &str) -> String {
    // A JSON string's text always starts and ends with its quotes (ASCII), which go.
    let quoted = serde_json::Value::String(s.to_owned()).to_string();
    quoted[1..quoted.len() - 1].to_owned()
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
    fn every_form_of_the_password_is_redacted() {
        let url = "postgres://u:p%40ss%22w@db/x";
        let forms = password_forms(url);
        for form in ["p%40ss%22w", "p@ss\"w", "p@ss\\\"w"] {
            assert!(forms.contains(&form.to_owned()), "{form} in {forms:?}");
        }
        let text = format!(
            "error: {url} and PgConnectOptions {{ password: Some({:?}) }}",
            "p@ss\"w"
        );
        let clean = redact_in(&text, url);
        assert!(!clean.contains("40ss") && !clean.contains("@ss"), "{clean}");
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
