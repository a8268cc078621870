//! Field violations: what a caller got wrong, by field, for INVALID_ARGUMENT.

/// One invalid field of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldViolation {
    pub field: String,
    pub description: String,
}

impl FieldViolation {
    pub fn new(field: impl Into<String>, description: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            description: description.into(),
        }
    }
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
    if value.trim() != value {
        return Err("must not start or end with white space".into());
    }
    Ok(())
}
