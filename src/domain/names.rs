//! The names the enums are stored, typed and logged by (`read_only`, `allow`, `user`, `active`),
//! each list written once: `as_str`, parsing (`FromStr`) and the list of every value come from it.

/// A name that is none of an enum's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("expected {expected}")]
pub struct UnknownName {
    /// The names there are: "read_only, normal or admin".
    pub expected: String,
}

/// An enum known by name.
pub trait Named: Sized + Copy + 'static {
    /// Every value, in order.
    const ALL: &'static [Self];
    fn name(self) -> &'static str;
    /// Other spellings accepted when parsing.
    fn aliases(self) -> &'static [&'static str];

    /// The value called `text`.
    fn from_name(text: &str) -> Result<Self, UnknownName> {
        Self::ALL
            .iter()
            .copied()
            .find(|v| v.name() == text || v.aliases().contains(&text))
            .ok_or_else(|| UnknownName {
                expected: expected(Self::ALL),
            })
    }
}

/// "a, b or c".
fn expected<T: Named>(all: &[T]) -> String {
    let names: Vec<_> = all.iter().map(|v| v.name()).collect();
    match names.split_last() {
        Some((last, [])) => (*last).to_owned(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
        None => String::new(),
    }
}

/// `as_str`, `FromStr` and `Named` for an enum, from one list of its names.
macro_rules! names {
    ($ty:ident { $($variant:ident => $name:literal $(| $alias:literal)*),+ $(,)? }) => {
        impl $ty {
            pub fn as_str(self) -> &'static str {
                match self {
                    $($ty::$variant => $name,)+
                }
            }
        }

        impl $crate::domain::Named for $ty {
            const ALL: &'static [Self] = &[$($ty::$variant),+];

            fn name(self) -> &'static str {
                self.as_str()
            }

            fn aliases(self) -> &'static [&'static str] {
                match self {
                    $($ty::$variant => &[$($alias),*],)+
                }
            }
        }

        impl std::str::FromStr for $ty {
            type Err = $crate::domain::UnknownName;

            fn from_str(text: &str) -> Result<Self, Self::Err> {
                <Self as $crate::domain::Named>::from_name(text)
            }
        }
    };
}

pub(crate) use names;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{AppState, Privilege, TokenState, TokenType};

    fn round_trip<T: Named + std::fmt::Debug + PartialEq>() {
        for value in T::ALL {
            assert_eq!(T::from_name(value.name()), Ok(*value));
            for alias in value.aliases() {
                assert_eq!(T::from_name(alias), Ok(*value));
            }
        }
        assert!(T::from_name("root").is_err());
    }

    #[test]
    fn names_round_trip() {
        round_trip::<Privilege>();
        round_trip::<AppState>();
        round_trip::<TokenType>();
        round_trip::<TokenState>();
        assert_eq!(
            "root".parse::<Privilege>().unwrap_err().to_string(),
            "expected read_only, normal or admin"
        );
    }
}
