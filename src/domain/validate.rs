//! Field violations: what a caller got wrong, by field, for INVALID_ARGUMENT.

/// One invalid field of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldViolation {
    pub field: String,
    pub description: String,
}

impl FieldViolation {
    /// The most violations a refusal's message describes: the rest are counted.
    pub const MOST_IN_MESSAGE: usize = 3;
    /// The most a refusal's details carry, so a request of a thousand bad fields is still
    /// refused with a small error every client can read.
    pub const MOST_IN_DETAILS: usize = 10;

    pub fn new(field: impl Into<String>, description: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            description: description.into(),
        }
    }
}

/// The most bytes of an input an error repeats.
pub const ECHO_BYTES: usize = 48;

/// An input as an error may repeat it: quoted, control and invisible characters escaped,
/// and cut after `ECHO_BYTES` bytes with its whole length said, so that the refusal of a
/// 100 KiB value is one short line that every client can read. Every error that repeats
/// what a caller sent repeats it through this.
pub fn echo(input: &str) -> String {
    let mut shown = String::with_capacity(ECHO_BYTES + 8);
    for c in input.chars() {
        let before = shown.len();
        if c.is_control() || is_invisible(c) || c == '\\' {
            shown.extend(c.escape_default());
        } else {
            shown.push(c);
        }
        if shown.len() > ECHO_BYTES {
            shown.truncate(before);
            // ASCII dots: gRPC percent-encodes every other byte of a message, tripling it.
            return format!("'{shown}...' ({} bytes)", input.len());
        }
    }
    format!("'{shown}'")
}

/// Checks a free-text, human-given name: 1..=max characters, none of them control characters.
pub(crate) fn printable_name(value: &str, max_chars: usize) -> Result<(), String> {
    if value.is_empty() {
        return Err("must not be empty".into());
    }
    let count = value.chars().count();
    if count > max_chars {
        return Err(format!(
            "must be at most {max_chars} characters, got {count}"
        ));
    }
    if value.chars().any(char::is_control) {
        return Err("must not contain control characters".into());
    }
    no_invisible(value)?;
    if value.trim() != value {
        return Err("must not start or end with white space".into());
    }
    Ok(())
}

/// Refuses characters that change how text reads without being seen: bidirectional
/// controls, zero-width and other Unicode format characters (category Cf), line and
/// paragraph separators, and blank fillers. With them one member's name can be shown
/// reading as another's, so no name or description shown to people may hold one.
pub(crate) fn no_invisible(value: &str) -> Result<(), String> {
    match value.chars().find(|c| is_invisible(*c)) {
        Some(c) => Err(format!(
            "must not contain invisible or bidirectional control characters, found U+{:04X}",
            u32::from(c)
        )),
        None => Ok(()),
    }
}

/// Unicode 15.1's general category Cf (format), and the separators and fillers that
/// render as nothing. Hand-listed: the standard library has no category table.
pub fn is_invisible(c: char) -> bool {
    matches!(
        u32::from(c),
        0x00AD
            | 0x034F
            | 0x0600..=0x0605
            | 0x061C
            | 0x06DD
            | 0x070F
            | 0x0890..=0x0891
            | 0x08E2
            | 0x115F..=0x1160
            | 0x17B4..=0x17B5
            | 0x180B..=0x180F
            | 0x200B..=0x200F
            | 0x2028..=0x202E
            | 0x2060..=0x2064
            | 0x2066..=0x206F
            | 0x3164
            | 0xFE00..=0xFE0F
            | 0xFEFF
            | 0xFFA0
            | 0xFFF9..=0xFFFB
            | 0x110BD
            | 0x110CD
            | 0x13430..=0x1343F
            | 0x1BCA0..=0x1BCA3
            | 0x1D173..=0x1D17A
            | 0xE0001
            | 0xE0020..=0xE007F
            | 0xE0100..=0xE01EF
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bidi_and_zero_width_are_refused() {
        for c in [
            '\u{202A}',
            '\u{202E}',
            '\u{2066}',
            '\u{2069}',
            '\u{200B}',
            '\u{200F}',
            '\u{2060}',
            '\u{2064}',
            '\u{FEFF}',
            '\u{061C}',
            '\u{00AD}',
            '\u{E0041}',
        ] {
            let name = format!("admin{c}@example.com");
            assert!(
                printable_name(&name, 200).is_err(),
                "U+{:04X} must be refused",
                u32::from(c)
            );
        }
    }

    #[test]
    fn echoes_are_short_and_escaped() {
        assert_eq!(echo("10.0.0.0/33"), "'10.0.0.0/33'");
        assert_eq!(echo(""), "''");
        assert_eq!(echo("o'brien"), "'o'brien'");
        assert_eq!(echo("a\nb\u{202E}c\\"), "'a\\nb\\u{202e}c\\\\'");
        let exact = "x".repeat(ECHO_BYTES);
        assert_eq!(echo(&exact), format!("'{exact}'"));
        let long = "x".repeat(100 * 1024);
        assert_eq!(
            echo(&long),
            format!("'{}...' (102400 bytes)", "x".repeat(ECHO_BYTES))
        );
        // Multi-byte characters and escapes count by the bytes they take.
        for input in [
            "渡".repeat(1000),
            "\u{202E}".repeat(1000),
            "\n".repeat(1000),
        ] {
            let shown = echo(&input);
            assert!(shown.len() <= ECHO_BYTES + 24, "{shown}");
            assert!(
                shown.ends_with(&format!("({} bytes)", input.len())),
                "{shown}"
            );
        }
    }

    #[test]
    fn ordinary_unicode_names_pass() {
        for name in ["Zoë Müller", "渡辺", "o'brien@example.com", "Ana-María"] {
            assert_eq!(printable_name(name, 200), Ok(()), "{name}");
        }
    }
}
