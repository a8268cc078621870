//! Per-token address restrictions (Vault's token_bound_cidrs) over a real socket: Authorize
//! with a client address, management calls by their peer address, and forwarded addresses
//! believed only from trusted proxies.

use crate::common::calls::{authorize_on, authorize_request, revision_of};
use crate::common::{As, Backend, Spawn, TestApp, TestDatabase, spawn_app};
use api_tokens::domain::AddressRanges;
use api_tokens::grpc::pb;
use api_tokens::service::ServiceSettings;
use prost_types::FieldMask;
use tonic::Code;
use tonic::metadata::MetadataValue;

/// A Normal user token of the Admin with these ranges and default Allow.
async fn bound_token(app: &TestApp, cidrs: &[&str]) -> (pb::Token, String) {
    let request = pb::CreateTokenRequest {
        bound_cidrs: cidrs.iter().map(|c| (*c).to_owned()).collect(),
        ..Default::default()
    };
    app.try_create_allowing_token(&app.admin, request)
        .await
        .expect("create a bound token")
}

async fn app_names(app: &TestApp, token_id: &str) -> Vec<String> {
    app.applications(token_id)
        .await
        .into_iter()
        .map(|a| a.name)
        .collect()
}

async fn a_bound_token_refuses_other_and_unknown_addresses(backend: Backend) {
    let app = spawn_app(backend).await;
    let (token, secret) = bound_token(&app, &["10.0.0.0/8", "2001:db8::/32"]).await;
    assert_eq!(token.bound_cidrs, ["10.0.0.0/8", "2001:db8::/32"]);

    let inside = app
        .authorize_from(
            &secret,
            "deployer",
            pb::Privilege::Unspecified,
            "10.20.30.40",
        )
        .await;
    assert_eq!(inside.decision(), pb::Decision::Allow, "{inside:?}");
    let v6 = app
        .authorize_from(
            &secret,
            "deployer",
            pb::Privilege::Unspecified,
            "2001:db8::7",
        )
        .await;
    assert_eq!(v6.decision(), pb::Decision::Allow);

    let outside = app
        .authorize_from(
            &secret,
            "deployer",
            pb::Privilege::Unspecified,
            "192.168.1.1",
        )
        .await;
    assert_eq!(outside.decision(), pb::Decision::AddressNotAllowed);
    assert_eq!(outside.http_status, 403);
    assert_eq!(outside.error_code, "Forbidden.BadAddress");
    assert!(outside.principal.is_none());

    let unknown = app
        .authorize_from(&secret, "deployer", pb::Privilege::Unspecified, "")
        .await;
    assert_eq!(unknown.decision(), pb::Decision::AddressNotAllowed);
    assert!(unknown.reason.contains("not known"), "{}", unknown.reason);

    // From outside, a new name is refused before it is looked at: nothing is recorded.
    let stranger = app
        .authorize_from(
            &secret,
            "from-outside",
            pb::Privilege::Unspecified,
            "192.168.1.1",
        )
        .await;
    assert_eq!(stranger.decision(), pb::Decision::AddressNotAllowed);
    assert_eq!(app_names(&app, &token.id).await, ["deployer"]);

    // A malformed address is the caller's mistake, named by field.
    let err = app
        .authorize
        .clone()
        .authorize(authorize_request(
            &secret,
            "deployer",
            pb::Privilege::Unspecified,
            "10.0.0",
        ))
        .await
        .expect_err("malformed address");
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(
        err.message().contains("client_address"),
        "{}",
        err.message()
    );
}

async fn changing_ranges_takes_effect_on_warm_tokens_on_every_replica(backend: Backend) {
    let app = spawn_app(backend).await;
    let other = app.second_replica().await;
    let (token, secret) = bound_token(&app, &[]).await;
    // Warm on both replicas, from an address no range will hold.
    for client in [app.authorize.clone(), other.authorize.clone()] {
        let request = authorize_request(&secret, "cron", pb::Privilege::Unspecified, "192.168.7.7");
        let reply = authorize_on(&client, request).await;
        assert_eq!(reply.decision(), pb::Decision::Allow);
    }
    let updated = app
        .tokens
        .clone()
        .update_token(app.admin.req(pb::UpdateTokenRequest {
            token: Some(pb::Token {
                id: token.id.clone(),
                bound_cidrs: vec!["10.0.0.0/8".into()],
                ..Default::default()
            }),
            update_mask: Some(FieldMask {
                paths: vec!["bound_cidrs".into()],
            }),
        }))
        .await
        .expect("update ranges");
    let revision = revision_of(updated.metadata());
    assert_eq!(
        updated.into_inner().token.expect("token").bound_cidrs,
        ["10.0.0.0/8"]
    );
    for client in [app.authorize.clone(), other.authorize.clone()] {
        let request = pb::AuthorizeRequest {
            min_revision: revision.clone(),
            ..authorize_request(&secret, "cron", pb::Privilege::Unspecified, "192.168.7.7")
        };
        let reply = authorize_on(&client, request).await;
        assert_eq!(reply.decision(), pb::Decision::AddressNotAllowed);
    }
    // The audit entry shows the ranges before and after.
    let events = app.audit_events(&token.id).await;
    let update = events
        .iter()
        .find(|e| e.action == "token.update")
        .expect("update audited");
    let after = format!("{:?}", update.after);
    assert!(after.contains("10.0.0.0/8"), "{after}");
}

async fn management_calls_are_judged_by_their_peer_address(backend: Backend) {
    let app = spawn_app(backend).await;
    // The test client connects from 127.0.0.1.
    let (_, far) = bound_token(&app, &["10.0.0.0/8"]).await;
    let far = As::new(far, "test-suite");
    let err = app
        .tokens
        .clone()
        .list_tokens(far.req(pb::ListTokensRequest::default()))
        .await
        .expect_err("refused by address");
    assert_eq!(err.code(), Code::PermissionDenied);
    assert!(
        format!("{:?}", err.details()).contains("ADDRESS_NOT_ALLOWED")
            || err.message().contains("address"),
        "{err:?}"
    );

    let (_, near) = bound_token(&app, &["127.0.0.0/8"]).await;
    let near = As::new(near, "test-suite");
    app.tokens
        .clone()
        .list_tokens(near.req(pb::ListTokensRequest::default()))
        .await
        .expect("allowed from loopback");

    // A forwarded address from an untrusted peer is ignored: still judged as 127.0.0.1.
    let mut request = far.req(pb::ListTokensRequest::default());
    request
        .metadata_mut()
        .insert("x-forwarded-for", MetadataValue::from_static("10.1.2.3"));
    let err = app
        .tokens
        .clone()
        .list_tokens(request)
        .await
        .expect_err("x-forwarded-for from an untrusted peer is not believed");
    assert_eq!(err.code(), Code::PermissionDenied);
}

async fn forwarded_addresses_are_believed_from_trusted_proxies_only(backend: Backend) {
    let database = TestDatabase::create(backend).await;
    let settings = ServiceSettings {
        trusted_proxies: AddressRanges::parse(&["127.0.0.0/8"]).expect("ranges"),
        ..ServiceSettings::default()
    };
    let app = Spawn::on(database).service(settings).start().await;
    let (_, secret) = bound_token(&app, &["10.0.0.0/8"]).await;
    let caller = As::new(secret, "test-suite");
    let with_forwarded = |value: &'static str| {
        let mut request = caller.req(pb::ListTokensRequest::default());
        request
            .metadata_mut()
            .insert("x-forwarded-for", MetadataValue::from_static(value));
        request
    };
    // The proxy (127.0.0.1, trusted) says the client is 10.1.2.3: inside the token's ranges.
    app.tokens
        .clone()
        .list_tokens(with_forwarded("10.1.2.3"))
        .await
        .expect("the forwarded client is inside");
    // A client cannot hide behind a forged leftmost hop: the rightmost untrusted one counts.
    let err = app
        .tokens
        .clone()
        .list_tokens(with_forwarded("10.1.2.3, 192.168.9.9"))
        .await
        .expect_err("the rightmost untrusted hop is outside");
    assert_eq!(err.code(), Code::PermissionDenied);
    // Without the header, the proxy itself (127.0.0.1) is the client: outside.
    let err = app
        .tokens
        .clone()
        .list_tokens(caller.req(pb::ListTokensRequest::default()))
        .await
        .expect_err("the proxy's own address is outside");
    assert_eq!(err.code(), Code::PermissionDenied);
}

async fn bad_ranges_are_invalid_arguments_naming_the_field(backend: Backend) {
    let app = spawn_app(backend).await;
    let err = app
        .tokens
        .clone()
        .create_token(app.admin.req(pb::CreateTokenRequest {
            r#type: pb::TokenType::User.into(),
            bound_cidrs: vec!["10.0.0.0/33".into()],
            ..Default::default()
        }))
        .await
        .expect_err("bad range");
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("bound_cidrs"), "{}", err.message());
}

on_both_backends!(
    a_bound_token_refuses_other_and_unknown_addresses,
    changing_ranges_takes_effect_on_warm_tokens_on_every_replica,
    management_calls_are_judged_by_their_peer_address,
    forwarded_addresses_are_believed_from_trusted_proxies_only,
    bad_ranges_are_invalid_arguments_naming_the_field,
);
