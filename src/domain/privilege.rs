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

impl std::fmt::Display for Privilege {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Privilege::ReadOnly => "Read-Only",
            Privilege::Normal => "Normal",
            Privilege::Admin => "Admin",
        })
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
