//! Pagination: page sizes and opaque page tokens over a table's increasing sequence.
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::ServiceError;

pub const DEFAULT_PAGE_SIZE: u64 = 50;
pub const MAX_PAGE_SIZE: u64 = 1000;

/// A validated page request: how many, and after which position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest {
    pub size: u64,
    pub after: Option<i64>,
}

/// One page of results and the token for the next, empty on the last page.
#[derive(Debug, Clone)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_page_token: String,
}

impl PageRequest {
    /// `page_size` 0 means the default; above the maximum is clamped, as AIP-158 advises.
    pub fn parse(page_size: i32, page_token: &str) -> Result<Self, ServiceError> {
        if page_size < 0 {
            return Err(ServiceError::invalid("page_size", "must not be negative"));
        }
        let size = match page_size as u64 {
            0 => DEFAULT_PAGE_SIZE,
            n => n.min(MAX_PAGE_SIZE),
        };
        let after = if page_token.is_empty() {
            None
        } else {
            Some(decode(page_token)?)
        };
        Ok(PageRequest { size, after })
    }

    /// Builds the page from up to `size + 1` rows fetched in order.
    pub fn page<T>(&self, mut rows: Vec<(i64, T)>) -> Page<T> {
        let more = rows.len() as u64 > self.size;
        rows.truncate(self.size as usize);
        let next_page_token = match rows.last() {
            Some((seq, _)) if more => encode(*seq),
            _ => String::new(),
        };
        Page {
            items: rows.into_iter().map(|(_, item)| item).collect(),
            next_page_token,
        }
    }

    /// How many rows to fetch: one more than the page, to learn whether another follows.
    pub fn fetch(&self) -> u64 {
        self.size + 1
    }
}

fn encode(seq: i64) -> String {
    URL_SAFE_NO_PAD.encode(format!("p1:{seq}"))
}

fn decode(token: &str) -> Result<i64, ServiceError> {
    URL_SAFE_NO_PAD
        .decode(token)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .and_then(|text| text.strip_prefix("p1:")?.parse().ok())
        .ok_or_else(|| {
            ServiceError::invalid("page_token", "is not a page token this service issued")
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_pages_end() {
        let req = PageRequest::parse(2, "").unwrap();
        let page = req.page(vec![(1, 'a'), (5, 'b'), (9, 'c')]);
        assert_eq!(page.items, vec!['a', 'b']);
        let next = PageRequest::parse(2, &page.next_page_token).unwrap();
        assert_eq!(next.after, Some(5));
        assert!(next.page(vec![(9, 'c')]).next_page_token.is_empty());
    }

    #[test]
    fn bad_input_is_invalid_argument() {
        assert!(PageRequest::parse(-1, "").is_err());
        assert!(PageRequest::parse(0, "garbage!").is_err());
        assert_eq!(PageRequest::parse(0, "").unwrap().size, DEFAULT_PAGE_SIZE);
        assert_eq!(PageRequest::parse(5000, "").unwrap().size, MAX_PAGE_SIZE);
    }
}
