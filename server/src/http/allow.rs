//! The methods each path of the contract answers, for the `Allow` header
//! that every 405 carries (RFC 9110, section 15.5.6). Read once from the
//! committed spec, so the header names exactly what the spec documents.

use serde_json::Value;

/// A spec path such as `/v1/orgs/{id}/members`, split into segments, and
/// the methods it answers, as `Allow` lists them.
#[derive(Debug, Clone)]
struct PathMethods {
    segments: Vec<Segment>,
    allow: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    /// `{name}`: any one non-empty segment.
    Parameter,
}

/// Every documented path and its methods.
#[derive(Debug, Clone, Default)]
pub struct AllowedMethods {
    paths: Vec<PathMethods>,
}

const METHODS: [&str; 8] = ["get", "put", "post", "delete", "options", "head", "patch", "trace"];

impl AllowedMethods {
    /// The paths of an OpenAPI document (`paths.<template>.<method>`).
    pub fn from_spec(spec: &Value) -> Self {
        let Some(paths) = spec.get("paths").and_then(Value::as_object) else { return Self::default() };
        let paths = paths
            .iter()
            .map(|(template, item)| {
                let allow = METHODS
                    .iter()
                    .filter(|method| item.get(**method).is_some())
                    .map(|method| method.to_ascii_uppercase())
                    .collect::<Vec<_>>()
                    .join(", ");
                PathMethods { segments: segments_of(template), allow }
            })
            .collect();
        Self { paths }
    }

    /// What `Allow` says for a request to `path`: the methods of the
    /// documented path it matches, preferring literal segments over
    /// parameters as the router does; `None` for a path the spec lacks.
    pub fn for_path(&self, path: &str) -> Option<&str> {
        let asked: Vec<&str> = path.trim_end_matches('/').split('/').collect();
        self.paths
            .iter()
            .filter(|candidate| matches(&candidate.segments, &asked))
            .max_by_key(|candidate| candidate.segments.iter().filter(|s| **s != Segment::Parameter).count())
            .map(|matched| matched.allow.as_str())
    }
}

fn segments_of(template: &str) -> Vec<Segment> {
    template
        .trim_end_matches('/')
        .split('/')
        .map(|part| {
            if part.starts_with('{') && part.ends_with('}') {
                Segment::Parameter
            } else {
                Segment::Literal(part.to_owned())
            }
        })
        .collect()
}

fn matches(template: &[Segment], asked: &[&str]) -> bool {
    template.len() == asked.len()
        && template.iter().zip(asked).all(|(segment, part)| match segment {
            Segment::Literal(literal) => literal == part,
            Segment::Parameter => !part.is_empty(),
        })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::AllowedMethods;

    #[test]
    fn names_the_methods_of_the_matching_path() {
        let spec = json!({"paths": {
            "/v1/orgs": {"get": {}, "post": {}},
            "/v1/orgs/{id}": {"get": {}, "patch": {}, "delete": {}, "parameters": []},
            "/v1/orgs/{id}/members/{user_id}": {"patch": {}, "delete": {}},
            "/v1/auth/me": {"get": {}},
            "/v1/auth/{anything}": {"post": {}},
        }});
        let allowed = AllowedMethods::from_spec(&spec);
        assert_eq!(allowed.for_path("/v1/orgs"), Some("GET, POST"));
        assert_eq!(allowed.for_path("/v1/orgs/"), Some("GET, POST"));
        assert_eq!(allowed.for_path("/v1/orgs/org_1"), Some("GET, DELETE, PATCH"));
        assert_eq!(allowed.for_path("/v1/orgs/org_1/members/usr_1"), Some("DELETE, PATCH"));
        assert_eq!(allowed.for_path("/v1/auth/me"), Some("GET"), "a literal segment wins");
        assert_eq!(allowed.for_path("/v1/auth/login"), Some("POST"));
        assert_eq!(allowed.for_path("/v1/nowhere"), None);
        assert_eq!(allowed.for_path("/v1/orgs//members/usr_1"), None, "an empty segment is no id");
    }
}
