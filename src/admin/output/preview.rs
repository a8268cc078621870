//! What a change did or would do: a batch's per-decision results, and an impact preview.
use serde_json::json;

use super::{
    Output, app_state, application_json, emit, or_dash, print_json, print_table, privilege, time,
};
use crate::grpc::pb;
/// A batch's results, one per decision asked: what it did, or why it was refused.
pub fn print_results(
    output: Output,
    asked: &[pb::ApplicationDecision],
    results: &[pb::ApplicationDecisionResult],
) {
    let rows: Vec<(String, String, String, String)> = asked
        .iter()
        .zip(results)
        .map(|(d, r)| {
            let outcome = if r.code != 0 {
                format!("refused: {} ({})", r.reason, r.message)
            } else if r.changed {
                "changed".to_owned()
            } else {
                "unchanged".to_owned()
            };
            (
                d.token_id.clone(),
                d.name.clone(),
                app_state(d.state),
                outcome,
            )
        })
        .collect();
    match output {
        Output::Json => print_json(&json!(
            rows.iter()
                .zip(results)
                .map(|((token, name, state, _), r)| json!({
                    "token_id": token,
                    "name": name,
                    "state": state,
                    "changed": r.changed,
                    "code": r.code,
                    "reason": r.reason,
                    "message": r.message,
                    "application": r.application.as_ref().map(application_json),
                }))
                .collect::<Vec<_>>()
        )),
        Output::Table => print_table(
            &["TOKEN", "NAME", "STATE", "OUTCOME"],
            &rows
                .into_iter()
                .map(|(t, n, s, o)| vec![t, n, s, o])
                .collect::<Vec<_>>(),
        ),
    }
}

/// An impact preview: whether the change may be made, whose privilege drops, who used the
/// affected tokens lately.
fn print_preview(output: Output, p: &pb::ImpactPreview) {
    match output {
        Output::Json => print_json(&json!({
            "permitted": p.permitted,
            "denied_reason": p.denied_reason,
            "denied_message": p.denied_message,
            "usage_window_days": p.usage_window_days,
            "privilege_drops": p.privilege_drops.iter().map(|d| json!({
                "token_id": d.token_id,
                "description": d.description,
                "before": privilege(d.before),
                "after": privilege(d.after),
            })).collect::<Vec<_>>(),
            "recently_used": p.recently_used.iter().map(application_json).collect::<Vec<_>>(),
        })),
        Output::Table => {
            if !p.permitted {
                emit(format!(
                    "not permitted: {} ({})",
                    p.denied_reason, p.denied_message
                ));
                return;
            }
            emit("permitted; nothing was changed (validate only)");
            if !p.privilege_drops.is_empty() {
                emit("\ntokens whose effective privilege would drop:");
                print_table(
                    &["TOKEN", "DESCRIPTION", "NOW", "AFTER"],
                    &p.privilege_drops
                        .iter()
                        .map(|d| {
                            vec![
                                d.token_id.clone(),
                                or_dash(&d.description),
                                privilege(d.before),
                                if d.after == 0 {
                                    "cannot act".into()
                                } else {
                                    privilege(d.after)
                                },
                            ]
                        })
                        .collect::<Vec<_>>(),
                );
            }
            emit(format!(
                "\napplications seen in the last {} days: {}",
                p.usage_window_days,
                p.recently_used.len()
            ));
            if !p.recently_used.is_empty() {
                print_table(
                    &["TOKEN", "NAME", "STATE", "LAST SEEN", "ALLOWED", "REFUSED"],
                    &p.recently_used
                        .iter()
                        .map(|a| {
                            let e = a.evidence.clone().unwrap_or_default();
                            vec![
                                a.token_id.clone(),
                                a.name.clone(),
                                app_state(a.state),
                                time(a.last_seen_time.as_ref()),
                                e.allowed_count.to_string(),
                                e.refused_attempts.to_string(),
                            ]
                        })
                        .collect::<Vec<_>>(),
                );
            }
        }
    }
}

/// Prints the impact preview a `--validate-only` call is answered with, if this answer carries
/// one, and says whether it did: then nothing was changed and there is nothing else to print.
pub fn previewed(output: Output, preview: Option<&pb::ImpactPreview>) -> bool {
    preview.inspect(|p| print_preview(output, p)).is_some()
}
