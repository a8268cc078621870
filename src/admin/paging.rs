//! Following a list to its last page: the list commands print everything, not one page.
use tonic::{Response, Status};

use super::client::Answer;
use crate::grpc::pb;

/// Page size the list commands ask for.
pub const PAGE_SIZE: i32 = 200;

/// A list RPC's response: one page of items and the token of the next (empty on the last).
pub trait Page {
    type Item;
    fn into_parts(self) -> (Vec<Self::Item>, String);
}

macro_rules! page {
    ($response:ty, $items:ident, $item:ty) => {
        impl Page for $response {
            type Item = $item;
            fn into_parts(self) -> (Vec<$item>, String) {
                (self.$items, self.next_page_token)
            }
        }
    };
}

page!(pb::ListTokensResponse, tokens, pb::Token);
page!(pb::ListApplicationsResponse, applications, pb::Application);
page!(pb::ListMembersResponse, members, pb::Member);

/// Every item of a list: calls `fetch` with each page token in turn (empty for the first
/// page) until the server answers without a next one.
pub async fn every_page<P: Page>(
    mut fetch: impl AsyncFnMut(String) -> Result<Response<P>, Status>,
) -> anyhow::Result<Vec<P::Item>> {
    let mut items = Vec::new();
    let mut page_token = String::new();
    loop {
        let (page, next) = fetch(page_token).await.read()?.into_parts();
        items.extend(page);
        if next.is_empty() {
            return Ok(items);
        }
        page_token = next;
    }
}
