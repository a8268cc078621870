//! Privilege levels, ordered Read-Only < Normal < Admin.

/// A member's role, or a token's privilege. The derived order is the privilege order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Privilege {
    ReadOnly,
    Normal,
    Admin,
}

super::names!(Privilege {
    ReadOnly => "read_only" | "read-only" | "readonly",
    Normal => "normal",
    Admin => "admin",
});

impl Privilege {
    /// How people read it: "Read-Only", "Normal", "Admin".
    pub fn title(self) -> &'static str {
        match self {
            Privilege::ReadOnly => "Read-Only",
            Privilege::Normal => "Normal",
            Privilege::Admin => "Admin",
        }
    }

    /// What an allowed call is told: fixed text, so every allowed Authorize answers it
    /// without formatting or allocating.
    pub fn allowed_explanation(self) -> &'static str {
        match self {
            Privilege::ReadOnly => "allowed with Read-Only privilege",
            Privilege::Normal => "allowed with Normal privilege",
            Privilege::Admin => "allowed with Admin privilege",
        }
    }
}

impl std::fmt::Display for Privilege {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.title())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_is_read_only_normal_admin() {
        assert!(Privilege::ReadOnly < Privilege::Normal);
        assert!(Privilege::Normal < Privilege::Admin);
        assert_eq!(
            Privilege::Admin.min(Privilege::ReadOnly),
            Privilege::ReadOnly
        );
    }
}
