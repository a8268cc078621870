//! The methods this server may serve, read from its descriptor sets: the metric label and
//! span name of a request path, and whether its method streams.
use std::collections::HashMap;
use std::sync::LazyLock;

use prost::Message;

use crate::grpc::pb;

#[derive(Debug)]
struct MethodInfo {
    /// "package.Service/Method": the metric label and span name.
    name: String,
    streaming: bool,
}

/// Every method this server may serve, read from the descriptor sets it registers. Paths
/// outside it are labelled "unknown", so a scanner cannot create metric series.
struct MethodTable {
    by_path: HashMap<String, MethodInfo>,
}

const UNKNOWN_METHOD: &str = "unknown";

static METHODS: LazyLock<MethodTable> = LazyLock::new(|| {
    let mut by_path = HashMap::new();
    for set in [
        pb::FILE_DESCRIPTOR_SET,
        tonic_health::pb::FILE_DESCRIPTOR_SET,
        tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET,
        tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET,
    ] {
        // These are compiled into the binary; a set that does not decode only costs labels.
        let Ok(set) = prost_types::FileDescriptorSet::decode(set) else {
            continue;
        };
        for file in set.file {
            let package = file.package.unwrap_or_default();
            for service in file.service {
                let service_name = format!("{package}.{}", service.name.unwrap_or_default());
                for method in service.method {
                    let name = format!("{service_name}/{}", method.name.unwrap_or_default());
                    let streaming = method.client_streaming.unwrap_or(false)
                        || method.server_streaming.unwrap_or(false);
                    by_path.insert(format!("/{name}"), MethodInfo { name, streaming });
                }
            }
        }
    }
    // Envoy's ext_authz Check (unary), whose crate ships no descriptor set.
    let check = "envoy.service.auth.v3.Authorization/Check";
    by_path.insert(
        format!("/{check}"),
        MethodInfo {
            name: check.to_owned(),
            streaming: false,
        },
    );
    MethodTable { by_path }
});

/// The label of a request path and whether its method streams.
pub(super) fn method_of(path: &str) -> (&'static str, bool) {
    let table: &'static MethodTable = &METHODS;
    match table.by_path.get(path) {
        Some(info) => (info.name.as_str(), info.streaming),
        None => (UNKNOWN_METHOD, false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_come_from_the_descriptor_sets() {
        assert_eq!(
            method_of("/apitokens.v1.AuthorizeService/Authorize"),
            ("apitokens.v1.AuthorizeService/Authorize", false)
        );
        assert_eq!(
            method_of("/apitokens.v1.TokenService/WatchApplications"),
            ("apitokens.v1.TokenService/WatchApplications", true)
        );
        assert!(method_of("/grpc.health.v1.Health/Watch").1);
        assert!(!method_of("/grpc.health.v1.Health/Check").1);
        assert!(method_of("/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo").1);
        assert_eq!(
            method_of("/envoy.service.auth.v3.Authorization/Check"),
            ("envoy.service.auth.v3.Authorization/Check", false)
        );
        assert_eq!(method_of("/no.Such/Thing"), (UNKNOWN_METHOD, false));
    }
}
