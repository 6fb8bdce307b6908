//! `openapi.yaml` as a checker: requests, responses and webhooks are validated against the
//! schemas, status codes, content types and required headers it declares.

use reqwest::header::HeaderMap;
use serde_json::{json, Value};

pub struct Contract {
    doc: Value,
}

impl Contract {
    pub fn load() -> Self {
        let path = crate::root().join("openapi.yaml");
        let text = std::fs::read_to_string(&path).unwrap();
        let doc: Value = serde_norway::from_str(&text)
            .unwrap_or_else(|e| panic!("{} is not YAML: {e}", path.display()));
        Self { doc }
    }

    pub fn doc(&self) -> &Value {
        &self.doc
    }

    /// The object at a JSON pointer, following one `$ref` if that is what is there.
    fn at(&self, pointer: &str) -> &Value {
        let value =
            self.doc.pointer(pointer).unwrap_or_else(|| panic!("openapi.yaml has no {pointer}"));
        match value.get("$ref").and_then(Value::as_str) {
            Some(target) => self.at(target.trim_start_matches('#')),
            None => value,
        }
    }

    /// Validates `instance` against the schema at `pointer`, with every `$ref` of the document
    /// resolvable; panics with all the errors.
    pub fn validate(&self, pointer: &str, instance: &Value, what: &str) {
        let errors: Vec<String> = self
            .validator(pointer)
            .iter_errors(instance)
            .map(|e| format!("  {} at {}", e, e.instance_path()))
            .collect();
        assert!(
            errors.is_empty(),
            "{what} does not match openapi.yaml ({pointer}):\n{}\n{instance:#}",
            errors.join("\n")
        );
    }

    pub fn is_valid(&self, pointer: &str, instance: &Value) -> bool {
        self.validator(pointer).is_valid(instance)
    }

    /// The schema at `pointer` compiled inside the whole document, so that its `$ref`s resolve.
    fn validator(&self, pointer: &str) -> jsonschema::Validator {
        let mut schema = self.doc.clone();
        // A URI fragment: the braces of `/jobs/{job_id}` must be percent-encoded.
        let fragment = pointer.replace('{', "%7B").replace('}', "%7D");
        schema["$ref"] = json!(format!("#{fragment}"));
        jsonschema::options()
            .with_draft(jsonschema::Draft::Draft202012)
            .should_validate_formats(true)
            .build(&schema)
            .unwrap_or_else(|e| panic!("the schema at {pointer} does not compile: {e}"))
    }

    fn operation(path: &str, method: &str) -> String {
        format!("/paths/{}/{}", escape(path), method.to_ascii_lowercase())
    }

    /// A request body the API accepts must be valid by the document too.
    pub fn check_request(&self, path: &str, method: &str, body: &Value) {
        let pointer = format!(
            "{}/requestBody/content/application~1json/schema",
            Self::operation(path, method)
        );
        self.validate(&pointer, body, &format!("the {method} {path} request"));
    }

    /// A real response: its status is documented for the operation, its content type is the
    /// one documented, its required headers are there and valid, and a JSON body matches.
    pub fn check_response(
        &self,
        path: &str,
        method: &str,
        status: u16,
        headers: &HeaderMap,
        body: &[u8],
    ) {
        let what = format!("{method} {path} → {status}");
        let responses = format!("{}/responses", Self::operation(path, method));
        let documented = self.at(&responses);
        assert!(
            documented.get(status.to_string()).is_some(),
            "{what} is not documented in openapi.yaml (only {:?})",
            documented.as_object().map(|o| o.keys().collect::<Vec<_>>())
        );
        let pointer = match self.doc.pointer(&format!("{responses}/{status}/$ref")) {
            Some(Value::String(target)) => target.trim_start_matches('#').to_owned(),
            _ => format!("{responses}/{status}"),
        };
        let response = self.at(&pointer);
        if let Some(declared) = response.get("headers").and_then(Value::as_object) {
            for (name, spec) in declared {
                // A header may be a `$ref` to components/headers.
                let at = match spec.get("$ref").and_then(Value::as_str) {
                    Some(target) => target.trim_start_matches('#').to_owned(),
                    None => pointer_to(&pointer, "headers", name),
                };
                self.check_header(headers, name, self.at(&at), &at, &what);
            }
        }
        let content = response.get("content").and_then(Value::as_object);
        let media = headers
            .get("content-type")
            .map(|v| v.to_str().unwrap().split(';').next().unwrap().trim().to_owned());
        match (content, media) {
            (None, _) => assert!(body.is_empty(), "{what}: no body is documented"),
            (Some(types), Some(media)) => {
                assert!(types.contains_key(&media), "{what}: {media} is not documented");
                if media == "application/json" {
                    let value: Value = serde_json::from_slice(body).unwrap_or_else(|e| {
                        panic!("{what}: not JSON ({e}): {}", String::from_utf8_lossy(body))
                    });
                    let schema = format!("{pointer}/content/application~1json/schema");
                    self.validate(&schema, &value, &what);
                }
            }
            (Some(_), None) => panic!("{what}: no Content-Type"),
        }
    }

    /// A webhook as the receiver got it: headers and body, by the `webhooks` entry `name`.
    pub fn check_webhook(&self, name: &str, headers: &HeaderMap, body: &[u8]) {
        let what = format!("the {name} webhook");
        let operation = format!("/webhooks/{name}/post");
        let parameters = self.at(&format!("{operation}/parameters")).as_array().unwrap().clone();
        for (i, parameter) in parameters.iter().enumerate() {
            if parameter["in"] == "header" {
                let name = parameter["name"].as_str().unwrap();
                let pointer = format!("{operation}/parameters/{i}");
                self.check_header(headers, name, parameter, &pointer, &what);
            }
        }
        let value: Value = serde_json::from_slice(body).unwrap();
        self.validate(
            &format!("{operation}/requestBody/content/application~1json/schema"),
            &value,
            &what,
        );
    }

    fn check_header(
        &self,
        headers: &HeaderMap,
        name: &str,
        spec: &Value,
        pointer: &str,
        what: &str,
    ) {
        match headers.get(name) {
            Some(value) => {
                let value = json!(value.to_str().unwrap());
                self.validate(
                    &format!("{pointer}/schema"),
                    &value,
                    &format!("{what}: header {name}"),
                );
            }
            None => assert!(spec["required"] != true, "{what}: required header {name} is missing"),
        }
    }
}

fn escape(segment: &str) -> String {
    segment.replace('~', "~0").replace('/', "~1")
}

fn pointer_to(base: &str, key: &str, name: &str) -> String {
    format!("{base}/{key}/{}", escape(name))
}
