//! Pagination: page sizes, and page tokens sealed over a table's increasing sequence, bound
//! to the listing and the caller's account (see `positions`).
use uuid::Uuid;

use super::positions::{Purpose, Sealer};
use super::{Service, ServiceError};

pub const DEFAULT_PAGE_SIZE: u64 = 50;
pub const MAX_PAGE_SIZE: u64 = 1000;

/// A page request as received: its size validated; its token opened by the service, which
/// knows the caller's account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageRequest {
    pub size: u64,
    pub token: Option<String>,
}

/// One page of results and the token for the next, empty on the last page.
#[derive(Debug, Clone)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_page_token: String,
}

impl PageRequest {
    /// `page_size` 0 means the default; above the maximum is clamped, as AIP-158 advises.
    /// `Err` says what is wrong with `page_size`.
    pub fn parse(page_size: i32, page_token: &str) -> Result<Self, String> {
        if page_size < 0 {
            return Err("must not be negative".into());
        }
        let size = match page_size as u64 {
            0 => DEFAULT_PAGE_SIZE,
            n => n.min(MAX_PAGE_SIZE),
        };
        let token = Some(page_token.to_owned()).filter(|t| !t.is_empty());
        Ok(PageRequest { size, token })
    }
}

/// A page request opened for one listing of one account.
pub(crate) struct Pager<'a> {
    sealer: &'a Sealer,
    purpose: Purpose,
    account: Uuid,
    size: u64,
    /// The position of the previous page's last row, if any: this page goes on past it in
    /// the listing's order (later rows for most listings; earlier ones for the audit log,
    /// which lists newest first).
    pub last_seen: Option<i64>,
}

impl Pager<'_> {
    /// How many rows to fetch: one more than the page, to learn whether another follows.
    pub fn fetch(&self) -> u64 {
        self.size + 1
    }

    /// Builds the page from up to `size + 1` rows fetched in order.
    pub fn page<T>(&self, mut rows: Vec<(i64, T)>) -> Page<T> {
        let more = rows.len() as u64 > self.size;
        rows.truncate(self.size as usize);
        let next_page_token = match rows.last() {
            Some((seq, _)) if more => self.sealer.seal(self.purpose, Some(self.account), *seq),
            _ => String::new(),
        };
        Page {
            items: rows.into_iter().map(|(_, item)| item).collect(),
            next_page_token,
        }
    }
}

impl Service {
    /// Opens a page request for `purpose` in `account`: a token issued for another listing
    /// or another account is refused.
    pub(crate) fn pager(
        &self,
        request: &PageRequest,
        purpose: Purpose,
        account: Uuid,
    ) -> Result<Pager<'_>, ServiceError> {
        let sealer = self.sealer()?;
        let last_seen = match &request.token {
            None => None,
            Some(token) => Some(sealer.open(purpose, Some(account), token).ok_or_else(|| {
                ServiceError::invalid(
                    "page_token",
                    "is not a page token this service issued for this listing",
                )
            })?),
        };
        Ok(Pager {
            sealer,
            purpose,
            account,
            size: request.size,
            last_seen,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_end_and_tokens_round_trip() {
        let sealer = Sealer::random();
        let account = Uuid::new_v4();
        let pager = Pager {
            sealer: &sealer,
            purpose: Purpose::TokensPage,
            account,
            size: 2,
            last_seen: None,
        };
        let page = pager.page(vec![(1, 'a'), (5, 'b'), (9, 'c')]);
        assert_eq!(page.items, vec!['a', 'b']);
        let next = sealer.open(Purpose::TokensPage, Some(account), &page.next_page_token);
        assert_eq!(next, Some(5));
        assert!(pager.page(vec![(9, 'c')]).next_page_token.is_empty());
    }

    #[test]
    fn bad_sizes_are_invalid_argument() {
        assert!(PageRequest::parse(-1, "").is_err());
        assert_eq!(PageRequest::parse(0, "").unwrap().size, DEFAULT_PAGE_SIZE);
        assert_eq!(PageRequest::parse(5000, "").unwrap().size, MAX_PAGE_SIZE);
        assert_eq!(
            PageRequest::parse(0, "x").unwrap().token.as_deref(),
            Some("x")
        );
    }
}
