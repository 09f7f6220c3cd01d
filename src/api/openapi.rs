//! The OpenAPI 3.1 document of the API, kept in the repository (`docs/openapi.json`) and
//! served as it is at `GET /api/openapi.json`, without a token, so that a client generator
//! or a fuzzer can be pointed at a running jobline. A unit test keeps its paths and methods
//! equal to the routes the code registers.

use actix_web::HttpResponse;

/// The document, as committed.
pub const DOCUMENT: &str = include_str!("../../docs/openapi.json");

/// `GET /api/openapi.json`: the document itself (no envelope).
pub async fn document() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(DOCUMENT)
}

#[cfg(test)]
mod tests {
    use super::super::ROUTES;
    use super::DOCUMENT;
    use std::collections::BTreeSet;

    #[test]
    fn documents_exactly_the_routes_of_the_code() {
        let doc: serde_json::Value = serde_json::from_str(DOCUMENT).expect("valid JSON");
        assert_eq!(doc["openapi"], "3.1.0");
        let documented: BTreeSet<(String, String)> = doc["paths"]
            .as_object()
            .unwrap()
            .iter()
            .flat_map(|(path, item)| {
                item.as_object()
                    .unwrap()
                    .keys()
                    .filter(|k| {
                        ["get", "post", "patch", "delete", "put", "head"].contains(&k.as_str())
                    })
                    .map(move |m| (path.clone(), m.clone()))
            })
            .collect();
        let routed: BTreeSet<(String, String)> = ROUTES
            .iter()
            .flat_map(|(path, methods)| {
                // `get_without_head` is a GET; the HEAD that `get` answers too is implied.
                methods.iter().map(|m| {
                    (
                        path.to_string(),
                        m.trim_end_matches("_without_head").to_string(),
                    )
                })
            })
            .collect();
        let undocumented: Vec<_> = routed.difference(&documented).collect();
        let unrouted: Vec<_> = documented.difference(&routed).collect();
        assert!(
            undocumented.is_empty(),
            "routes missing from docs/openapi.json: {undocumented:?}"
        );
        assert!(
            unrouted.is_empty(),
            "documented but not routed: {unrouted:?}"
        );
    }
}
