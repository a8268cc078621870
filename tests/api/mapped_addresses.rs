//! IPv4-mapped IPv6 (`::ffff:10.1.2.3`) through the real server on both backends: a range
//! written in the mapped form is an IPv4 range, stored and shown as one, and a client is
//! judged the same whether its address arrives as plain IPv4 or mapped, for a token's
//! bound_cidrs and for an approval's client_cidrs alike.

use crate::common::{Backend, TestApp, spawn_app};
use api_tokens::grpc::pb;

/// A client address as plain IPv4, and as the same address mapped into IPv6.
fn both_forms(v4: &str) -> [String; 2] {
    [v4.to_owned(), format!("::ffff:{v4}")]
}

async fn decision(app: &TestApp, secret: &str, app_name: &str, client: &str) -> pb::Decision {
    app.authorize_from(secret, app_name, pb::Privilege::Unspecified, client)
        .await
        .decision()
}

/// Inside for 10.1.2.3 in both forms, outside for 11.1.2.3 in both forms.
async fn assert_judged_alike(app: &TestApp, secret: &str, app_name: &str, what: &str) {
    for client in both_forms("10.1.2.3") {
        assert_eq!(
            decision(app, secret, app_name, &client).await,
            pb::Decision::Allow,
            "{what}: {client}"
        );
    }
    for client in both_forms("11.1.2.3") {
        assert_eq!(
            decision(app, secret, app_name, &client).await,
            pb::Decision::AddressNotAllowed,
            "{what}: {client}"
        );
    }
}

/// Ranges as written, and what they are stored and shown as.
const RANGES: [(&str, &str); 3] = [
    ("::ffff:10.0.0.0/104", "10.0.0.0/8"),
    ("::ffff:a00:0/104", "10.0.0.0/8"),
    ("10.0.0.0/8", "10.0.0.0/8"),
];

async fn mapped_ranges_bind_tokens_as_ipv4(backend: Backend) {
    let app = spawn_app(backend).await;
    for (written, shown) in RANGES {
        let (token, secret) = app
            .try_create_allowing_token(
                &app.admin,
                pb::CreateTokenRequest {
                    bound_cidrs: vec![written.into()],
                    ..Default::default()
                },
            )
            .await
            .expect("create a bound token");
        assert_judged_alike(&app, &secret, "deployer", written).await;
        assert_eq!(token.bound_cidrs, [shown], "{written}");
        assert_eq!(app.token(&token.id).await.bound_cidrs, [shown], "{written}");
    }
    // A single mapped address is a single IPv4 address.
    let (token, secret) = app
        .try_create_allowing_token(
            &app.admin,
            pb::CreateTokenRequest {
                bound_cidrs: vec!["::ffff:10.1.2.3".into()],
                ..Default::default()
            },
        )
        .await
        .expect("create a token bound to one address");
    assert_eq!(token.bound_cidrs, ["10.1.2.3/32"]);
    assert_judged_alike(&app, &secret, "deployer", "::ffff:10.1.2.3").await;
}

async fn mapped_ranges_condition_approvals_as_ipv4(backend: Backend) {
    let app = spawn_app(backend).await;
    for (i, (written, shown)) in RANGES.into_iter().enumerate() {
        let (token, secret) = app
            .try_create_allowing_token(&app.admin, pb::CreateTokenRequest::default())
            .await
            .expect("create");
        let name = format!("terraform-{i}");
        let decided = app
            .tokens
            .clone()
            .set_application_state(app.admin.req(pb::SetApplicationStateRequest {
                token_id: token.id.clone(),
                name: name.clone(),
                state: pb::AppState::Allow.into(),
                conditions: Some(pb::ApprovalConditions {
                    client_cidrs: vec![written.into()],
                    ..Default::default()
                }),
                ..Default::default()
            }))
            .await
            .expect("allow with a range")
            .into_inner()
            .application
            .expect("application");
        let shown_ranges = |a: &pb::Application| {
            a.conditions
                .as_ref()
                .map(|c| c.client_cidrs.clone())
                .unwrap_or_default()
        };
        assert_judged_alike(&app, &secret, &name, written).await;
        assert_eq!(shown_ranges(&decided), [shown], "{written}");
        let stored = app.application(&token.id, &name).await;
        assert_eq!(shown_ranges(&stored), [shown], "{written}");
    }
}

on_both_backends!(
    mapped_ranges_bind_tokens_as_ipv4,
    mapped_ranges_condition_approvals_as_ipv4,
);
