//! `POST /pdf`: the body as clients send it ([`PdfRequest`]), its validation
//! ([`parse_pdf_request`]) and what a valid request becomes ([`ValidPdfRequest`]: a
//! [`RenderSpec`] for the renderer and how the result is delivered).

use serde::{de::DeserializeOwned, Deserialize, Serialize};
use serde_json::{Map, Value};
use url::Url;

use crate::{
    client_shapes,
    fonts::FontSpec,
    limits::{
        MAX_BODY_BYTES, MAX_CONFIG_BYTES, MAX_CONFIG_DEPTH, MAX_CONTENT_BYTES, MAX_FONTS,
        MAX_IDEMPOTENCY_KEY_CHARS,
    },
    pdf_options::PdfOptions,
    url_guard::{check_url, UrlPolicy},
    ApiError, ErrorCode,
};

/// The body of `POST /pdf`, field names as TailPDF's clients send them. A client's body goes
/// through [`client_shapes::normalize`] first, which drops the keys this type does not know.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PdfRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fonts: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<Map<String, Value>>,
    #[serde(default, rename = "pdfOptions", skip_serializing_if = "Option::is_none")]
    pub pdf_options: Option<PdfOptions>,
    #[serde(default, rename = "async", skip_serializing_if = "Option::is_none")]
    pub is_async: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upload_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_url: Option<String>,
}

/// Everything the renderer needs to make the PDF.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RenderSpec {
    pub content: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fonts: Vec<FontSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<Map<String, Value>>,
    #[serde(default, rename = "pdfOptions")]
    pub pdf_options: PdfOptions,
    /// `X-No-Store: true`: the renderer keeps nothing derived from this document once it is
    /// rendered (no cached CSS of its classes).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub no_store: bool,
}

/// Where the PDF goes.
#[derive(Debug, Clone, PartialEq)]
pub enum Delivery {
    /// In the response body.
    Sync,
    /// PUT to `upload_url`, then (optionally) a webhook.
    Async { upload_url: Url, webhook_url: Option<Url> },
}

#[derive(Debug, Clone, PartialEq)]
pub struct ValidPdfRequest {
    pub spec: RenderSpec,
    pub delivery: Delivery,
    /// Fields the request sent that play no part in it (unknown keys, URLs of a sync request,
    /// `width`/`height` beside a paper `format`), for [`client_shapes::IGNORED_HEADER`].
    pub ignored: Vec<String>,
}

/// Parses and validates a `POST /pdf` body. Every refusal is an [`ApiError`] whose message
/// names the field and says how to fix it.
pub fn parse_pdf_request(body: &[u8], policy: UrlPolicy) -> Result<ValidPdfRequest, ApiError> {
    let mut object = json_object(body, MAX_BODY_BYTES, r#"{"content": "<h1>Hello</h1>"}"#)?;
    let unknown = client_shapes::normalize(&mut object);
    objects_only(&object)?;
    let request: PdfRequest = typed(Value::Object(object), "")?;
    let mut valid = request.validate(policy)?;
    valid.ignored.splice(0..0, unknown);
    Ok(valid)
}

/// A request body as a JSON object: 413 over `max_bytes`, 400 when it is not JSON or not an
/// object (`example` shows one).
pub(crate) fn json_object(
    body: &[u8],
    max_bytes: usize,
    example: &str,
) -> Result<Map<String, Value>, ApiError> {
    if body.len() > max_bytes {
        return Err(ApiError::new(
            ErrorCode::PayloadTooLarge,
            format!("The request body is {} bytes; at most {max_bytes} are accepted.", body.len()),
        ));
    }
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        ApiError::new(
            ErrorCode::InvalidJson,
            format!(
                "The request body is not valid JSON ({e}). Send a JSON object with \
                 Content-Type: application/json."
            ),
        )
    })?;
    match value {
        Value::Object(object) => Ok(object),
        _ => Err(ApiError::validation(format!(
            "The request body must be a JSON object such as {example}."
        ))),
    }
}

/// serde would read a struct from a list by position; nobody means that. `[]` means none
/// where PHP's empty array is taken for it (client_shapes), which has run on `object`.
pub(crate) fn objects_only(object: &Map<String, Value>) -> Result<(), ApiError> {
    let options = object.get("pdfOptions");
    let option = |key: &str| options.and_then(|o| o.get(key));
    let password = option("password");
    for (field, value, example, empty_is_none) in [
        ("pdfOptions", options, r#"{"format": "A4"}"#, true),
        ("pdfOptions.margin", option("margin"), r#"{"top": "10mm"}"#, true),
        ("pdfOptions.metadata", option("metadata"), METADATA_EXAMPLE, true),
        ("pdfOptions.password", password, r#"{"user": "..."}"#, false),
        (
            "pdfOptions.password.permissions",
            password.and_then(|p| p.get("permissions")),
            r#"{"print": false}"#,
            false,
        ),
    ] {
        if value.is_some_and(Value::is_array) {
            let none = if empty_is_none { " (or [] for none)" } else { "" };
            return Err(ApiError::validation(format!(
                "`{field}` must be an object such as {example}{none}."
            )));
        }
    }
    Ok(())
}

/// An example of `pdfOptions.metadata`, for messages.
pub(crate) const METADATA_EXAMPLE: &str = r#"{"title": "Invoice"}"#;

/// `value` as a `T`; a refusal names the field, under `prefix` (`documents[3]`) when given.
pub(crate) fn typed<T: DeserializeOwned>(value: Value, prefix: &str) -> Result<T, ApiError> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let mut path = e.path().to_string();
        let inner = e.into_inner().to_string();
        // For an unknown key the path ends with that key; name the object that holds it.
        if inner.starts_with("unknown field") {
            path = path.rsplit_once('.').map_or_else(|| String::from("."), |(p, _)| p.to_owned());
        }
        let path = match (prefix, path.as_str()) {
            (p, ".") if !p.is_empty() => p.to_owned(),
            (p, rest) if !p.is_empty() => format!("{p}.{rest}"),
            _ => path,
        };
        ApiError::validation(if path == "." {
            format!("{}.", capitalize(&inner))
        } else {
            format!("`{path}`: {inner}.")
        })
    })
}

fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    c.next().map(|f| f.to_uppercase().chain(c).collect()).unwrap_or_default()
}

impl PdfRequest {
    /// Applies every rule of the contract to an already-typed request.
    pub fn validate(self, policy: UrlPolicy) -> Result<ValidPdfRequest, ApiError> {
        let content = check_content("content", self.content)?;
        let common = Common::validate(self.fonts, self.config, self.pdf_options)?;
        let mut ignored = common.ignored;
        let webhook_url = self.webhook_url.filter(|w| !w.trim().is_empty());

        let delivery = match self.is_async {
            Some(true) => {
                let raw = self.upload_url.filter(|u| !u.trim().is_empty()).ok_or_else(|| {
                    ApiError::validation(
                        "`upload_url` is required when `async` is true: send a presigned PUT URL \
                         to your storage.",
                    )
                })?;
                let upload_url = check_url("upload_url", &raw, policy)?;
                let webhook_url =
                    webhook_url.map(|w| check_url("webhook_url", &w, policy)).transpose()?;
                Delivery::Async { upload_url, webhook_url }
            }
            // As TailPDF: without "async": true the PDF is the answer, whatever URLs came along.
            _ => {
                for (field, value) in
                    [("upload_url", &self.upload_url), ("webhook_url", &webhook_url)]
                {
                    if value.is_some() {
                        ignored.push(field.to_owned());
                    }
                }
                Delivery::Sync
            }
        };
        Ok(ValidPdfRequest {
            spec: RenderSpec {
                content,
                fonts: common.fonts,
                config: common.config,
                pdf_options: common.pdf_options,
                no_store: false,
            },
            delivery,
            ignored,
        })
    }
}

/// What every document of a request shares: `fonts`, `config` and `pdfOptions`, checked.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Common {
    pub(crate) fonts: Vec<FontSpec>,
    pub(crate) config: Option<Map<String, Value>>,
    pub(crate) pdf_options: PdfOptions,
    /// `pdfOptions` fields that play no part (`width` beside a paper `format`).
    pub(crate) ignored: Vec<String>,
}

impl Common {
    pub(crate) fn validate(
        fonts: Option<Vec<String>>,
        config: Option<Map<String, Value>>,
        pdf_options: Option<PdfOptions>,
    ) -> Result<Self, ApiError> {
        let fonts = parse_fonts(fonts.as_deref().unwrap_or_default())?;
        if let Some(config) = &config {
            validate_config(config)?;
        }
        let pdf_options = pdf_options.unwrap_or_default();
        pdf_options.validate().map_err(ApiError::validation)?;
        let ignored =
            pdf_options.ignored_fields().iter().map(|f| format!("pdfOptions.{f}")).collect();
        Ok(Self { fonts, config, pdf_options, ignored })
    }
}

/// `content` (named `field` in messages): required, not blank, at most [`MAX_CONTENT_BYTES`].
pub(crate) fn check_content(field: &str, content: Option<String>) -> Result<String, ApiError> {
    let content = match content {
        Some(c) if !c.trim().is_empty() => c,
        Some(_) => {
            return Err(ApiError::validation(format!(
                "`{field}` is empty: send the HTML to render, e.g. \"<h1 class=\\\"text-2xl\\\">Hello</h1>\"."
            )))
        }
        None => {
            return Err(ApiError::validation(format!(
                "`{field}` is required: send the HTML to render as a string."
            )))
        }
    };
    if content.len() > MAX_CONTENT_BYTES {
        // TailPDF answers 400 here: the body is fine, one field of it is too large.
        return Err(ApiError::validation(format!(
            "`{field}` is {} bytes; at most {MAX_CONTENT_BYTES} bytes (1 MB) are accepted. \
             Move large images to https URLs instead of inlining them.",
            content.len()
        )));
    }
    Ok(content)
}

fn parse_fonts(specs: &[String]) -> Result<Vec<FontSpec>, ApiError> {
    if specs.len() > MAX_FONTS {
        return Err(ApiError::validation(format!(
            "`fonts` has {} entries; at most {MAX_FONTS} are accepted.",
            specs.len()
        )));
    }
    let mut fonts: Vec<FontSpec> = Vec::with_capacity(specs.len());
    for (i, spec) in specs.iter().enumerate() {
        let font = FontSpec::parse(spec)
            .map_err(|e| ApiError::validation(format!("`fonts[{i}]` {e}.")))?;
        if !fonts.contains(&font) {
            fonts.push(font);
        }
    }
    Ok(fonts)
}

/// The Tailwind `config` is data only: the v3-style object (`theme`, `darkMode`, `important`,
/// `prefix`, ...). Plugins and presets are code and cannot travel as JSON.
fn validate_config(config: &Map<String, Value>) -> Result<(), ApiError> {
    for key in ["plugins", "presets"] {
        if config.get(key).is_some_and(|v| !matches!(v, Value::Array(a) if a.is_empty())) {
            return Err(ApiError::validation(format!(
                "`config.{key}` is not supported: {key} are JavaScript and cannot be sent as \
                 JSON. Use `config.theme.extend` for colors, fonts and spacing."
            )));
        }
    }
    if let Some(theme) = config.get("theme") {
        if !theme.is_object() {
            return Err(ApiError::validation(
                "`config.theme` must be an object, e.g. {\"extend\": {\"colors\": {\"brand\": \"#0f766e\"}}}.",
            ));
        }
        if let Some(extend) = theme.get("extend") {
            if !extend.is_object() {
                return Err(ApiError::validation("`config.theme.extend` must be an object."));
            }
        }
    }
    if let Some(important) = config.get("important") {
        if !(important.is_boolean() || important.is_string()) {
            return Err(ApiError::validation(
                "`config.important` must be true, false or a selector string.",
            ));
        }
    }
    let size = serde_json::to_vec(config).map_or(usize::MAX, |j| j.len());
    if size > MAX_CONFIG_BYTES {
        return Err(ApiError::validation(format!(
            "`config` is {size} bytes as JSON; at most {MAX_CONFIG_BYTES} are accepted."
        )));
    }
    if depth(&Value::Object(config.clone())) > MAX_CONFIG_DEPTH {
        return Err(ApiError::validation(format!(
            "`config` is nested more than {MAX_CONFIG_DEPTH} levels deep."
        )));
    }
    for (key, value) in config {
        prototype_free(value, &format!("config.{key}"), key)?;
    }
    Ok(())
}

/// Refuses keys that name a JavaScript object's prototype (`__proto__`, `constructor`,
/// `prototype`) anywhere in `value`: the Tailwind compiler that reads the config is shared by
/// every account's renders, and data must not be able to change its objects.
fn prototype_free(value: &Value, path: &str, key: &str) -> Result<(), ApiError> {
    if matches!(key, "__proto__" | "constructor" | "prototype") {
        return Err(ApiError::validation(format!(
            "`{path}`: `{key}` is not allowed as a key in `config`."
        )));
    }
    match value {
        Value::Object(m) => {
            m.iter().try_for_each(|(k, v)| prototype_free(v, &format!("{path}.{k}"), k))
        }
        Value::Array(a) => a
            .iter()
            .enumerate()
            .try_for_each(|(i, v)| prototype_free(v, &format!("{path}[{i}]"), "")),
        _ => Ok(()),
    }
}

fn depth(v: &Value) -> usize {
    match v {
        Value::Object(m) => 1 + m.values().map(depth).max().unwrap_or(0),
        Value::Array(a) => 1 + a.iter().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

/// `X-No-Store`: `true` (any case) or `1` asks that nothing of the document be kept.
pub fn no_store_requested(header: Option<&str>) -> bool {
    header.is_some_and(|v| v.trim().eq_ignore_ascii_case("true") || v.trim() == "1")
}

/// `Idempotency-Key`: 1 to 255 visible ASCII characters.
pub fn validate_idempotency_key(key: &str) -> Result<(), ApiError> {
    let ok = !key.is_empty()
        && key.len() <= MAX_IDEMPOTENCY_KEY_CHARS
        && key.bytes().all(|b| b.is_ascii_graphic());
    if ok {
        Ok(())
    } else {
        Err(ApiError::validation(format!(
            "`Idempotency-Key` must be 1 to {MAX_IDEMPOTENCY_KEY_CHARS} visible ASCII characters \
             (a UUID is a good choice)."
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pdf_options::PdfOptions;

    fn parse(json: &str) -> Result<ValidPdfRequest, ApiError> {
        parse_pdf_request(json.as_bytes(), UrlPolicy::PRODUCTION)
    }

    fn refused(json: &str) -> ApiError {
        parse(json).expect_err(json)
    }

    const UPLOAD: &str = "https://my-bucket.s3.amazonaws.com/pdfs/a.pdf?X-Amz-Signature=abc";

    #[test]
    fn minimal_sync_request() {
        let r = parse(r#"{"content":"<h1>Hi</h1>"}"#).unwrap();
        assert_eq!(r.delivery, Delivery::Sync);
        assert_eq!(r.spec.content, "<h1>Hi</h1>");
        assert!(r.spec.fonts.is_empty());
    }

    #[test]
    fn full_async_request() {
        let body = serde_json::json!({
            "content": "<div class=\"p-8\">x</div>",
            "fonts": ["Inter:wght@400;600"],
            "config": {"theme": {"extend": {"colors": {"brand": "#0f766e"}}}},
            "pdfOptions": {"format": "A4", "printBackground": true, "width": null, "pageRanges": null},
            "async": true,
            "upload_url": UPLOAD,
            "webhook_url": "https://api.example.com/webhooks/pdf-ready"
        });
        let r = parse(&body.to_string()).unwrap();
        match r.delivery {
            Delivery::Async { upload_url, webhook_url } => {
                assert_eq!(upload_url.as_str(), UPLOAD);
                assert_eq!(webhook_url.unwrap().path(), "/webhooks/pdf-ready");
            }
            Delivery::Sync => panic!("expected async"),
        }
        assert_eq!(r.spec.fonts[0].to_string(), "Inter:wght@400;600");
        assert_eq!(r.spec.pdf_options.format.as_deref(), Some("A4"));
    }

    #[test]
    fn body_over_the_limit_is_413() {
        let body = vec![b' '; MAX_BODY_BYTES + 1];
        let e = parse_pdf_request(&body, UrlPolicy::PRODUCTION).unwrap_err();
        assert_eq!((e.status(), e.code), (413, ErrorCode::PayloadTooLarge));
    }

    #[test]
    fn invalid_json() {
        let e = refused("{\"content\": ");
        assert_eq!((e.status(), e.code), (400, ErrorCode::InvalidJson));
        assert!(e.message.contains("Content-Type: application/json"));
    }

    #[test]
    fn body_must_be_an_object() {
        assert!(refused("[1,2]").message.contains("must be a JSON object"));
    }

    #[test]
    fn content_is_required_and_non_empty() {
        assert!(refused("{}").message.starts_with("`content` is required"));
        assert!(refused(r#"{"content":"   "}"#).message.starts_with("`content` is empty"));
        assert!(refused(r#"{"content":null}"#).message.starts_with("`content` is required"));
    }

    #[test]
    fn content_must_be_a_string() {
        let e = refused(r#"{"content":42}"#);
        assert!(e.message.starts_with("`content`: invalid type"), "{}", e.message);
    }

    #[test]
    fn content_over_one_mb_is_400_naming_the_limit() {
        let r =
            PdfRequest { content: Some("x".repeat(MAX_CONTENT_BYTES + 1)), ..Default::default() };
        let e = r.validate(UrlPolicy::PRODUCTION).unwrap_err();
        assert_eq!((e.status(), e.code), (400, ErrorCode::ValidationError));
        assert!(e.message.starts_with("`content` is 1048577 bytes"), "{}", e.message);
        assert!(e.message.contains("at most 1048576 bytes (1 MB)"), "{}", e.message);
    }

    #[test]
    fn content_of_one_mb_is_accepted_however_much_json_surrounds_it() {
        // Every character escaped as \u0078, as some encoders write: a 6 MiB body.
        let content = format!("<p>{}</p>", "x".repeat(MAX_CONTENT_BYTES - 7));
        let escaped: String = content.chars().map(|c| format!("\\u{:04x}", c as u32)).collect();
        let body = format!(r#"{{"content":"{escaped}","pdfOptions":{{"format":"a4"}}}}"#);
        assert!(body.len() > 6 * MAX_CONTENT_BYTES);
        assert_eq!(parse(&body).unwrap().spec.content, content);
        let over = format!(r#"{{"content":"{escaped}x"}}"#);
        assert_eq!(refused(&over).status(), 400);
    }

    #[test]
    fn unknown_fields_are_ignored_and_named() {
        let r = parse(
            r#"{"content":"x","asyn":true,"pdfOptions":{"timeout":30000,"omitBackground":true,"margin":{"middle":"1in"}}}"#,
        )
        .unwrap();
        assert_eq!(r.delivery, Delivery::Sync);
        assert_eq!(
            r.ignored,
            ["asyn", "pdfOptions.omitBackground", "pdfOptions.timeout", "pdfOptions.margin.middle"]
        );
        assert_eq!(
            r.spec.pdf_options,
            PdfOptions { margin: Some(Default::default()), ..Default::default() }
        );
    }

    #[test]
    fn what_the_php_client_sends_renders() {
        // mralston/tailpdf's TailPdfService::pdf() with its defaults: PHP's empty arrays are [].
        let r = parse(
            r#"{"content":"<h1>x</h1>","fonts":[],"config":[],"pdfOptions":{"format":"a4","landscape":false,"printBackground":true,"scale":1,"margin":[]}}"#,
        )
        .unwrap();
        assert!(r.spec.config.is_none() && r.spec.fonts.is_empty() && r.ignored.is_empty());
        let g = r.spec.pdf_options.validate().unwrap();
        assert_eq!((g.width, g.height, g.margin_top), (8.2677, 11.6929, 0.0));
        assert_eq!(r.spec.pdf_options.scale, Some(1.0));
        // Its Margin DTO: whole pixels as strings; its custom size: floats in pixels.
        let r = parse(
            r#"{"content":"x","fonts":["Inter"],"config":[],"pdfOptions":{"format":"custom","landscape":true,"scale":1.5,"margin":{"top":"10","right":"0","bottom":"20","left":"0"},"width":595.5,"height":842}}"#,
        )
        .unwrap();
        let g = r.spec.pdf_options.validate().unwrap();
        assert_eq!((g.width, g.height), (595.5 / 96.0, 842.0 / 96.0));
        assert_eq!((g.margin_top, g.margin_bottom), (10.0 / 96.0, 20.0 / 96.0));
        assert!(r.ignored.is_empty());
    }

    #[test]
    fn nulls_mean_not_given() {
        let r = parse(
            r#"{"content":"x","fonts":null,"config":null,"async":null,"webhook_url":null,"pdfOptions":{"margin":null,"format":null,"scale":null}}"#,
        )
        .unwrap();
        assert_eq!((r.delivery, r.spec.config, r.spec.fonts.len()), (Delivery::Sync, None, 0));
    }

    #[test]
    fn known_fields_of_the_wrong_type_stay_400_naming_the_field() {
        for (body, field) in [
            (r#"{"content":"x","config":[1]}"#, "`config`"),
            (r#"{"content":"x","fonts":{"a":1}}"#, "`fonts`"),
            (r#"{"content":"x","pdfOptions":{"margin":["1in"]}}"#, "`pdfOptions.margin`"),
            (r#"{"content":"x","pdfOptions":{"scale":"1"}}"#, "`pdfOptions.scale`"),
            (r#"{"content":"x","pdfOptions":{"landscape":1}}"#, "`pdfOptions.landscape`"),
            (r#"{"content":"x","pdfOptions":{"width":true}}"#, "`pdfOptions.width`"),
            (r#"{"content":"x","pdfOptions":"A4"}"#, "`pdfOptions`"),
            (r#"{"content":"x","async":"true"}"#, "`async`"),
        ] {
            let e = refused(body);
            assert_eq!(e.status(), 400, "{body}");
            assert!(e.message.starts_with(field), "{body}: {}", e.message);
        }
    }

    #[test]
    fn at_most_ten_fonts_and_each_valid() {
        let fonts: Vec<String> = (0..11).map(|i| format!("Font{i}")).collect();
        let e = refused(&serde_json::json!({"content": "x", "fonts": fonts}).to_string());
        assert!(e.message.contains("at most 10"));
        let e = refused(r#"{"content":"x","fonts":["Inter","Inter:wght@2000"]}"#);
        assert!(e.message.starts_with("`fonts[1]` has wght=2000"), "{}", e.message);
        let e = refused(r#"{"content":"x","fonts":"Inter"}"#);
        assert!(e.message.starts_with("`fonts`: invalid type"), "{}", e.message);
    }

    #[test]
    fn duplicate_fonts_are_merged() {
        let r = parse(r#"{"content":"x","fonts":["Inter:wght@400","Inter:wght@400"]}"#).unwrap();
        assert_eq!(r.spec.fonts.len(), 1);
    }

    #[test]
    fn config_is_data_only() {
        assert!(parse(r#"{"content":"x","config":{"theme":{"extend":{}},"darkMode":"class","important":true}}"#).is_ok());
        assert!(parse(r#"{"content":"x","config":{"plugins":[]}}"#).is_ok());
        assert!(refused(r#"{"content":"x","config":{"plugins":["forms"]}}"#)
            .message
            .starts_with("`config.plugins`"));
        assert!(refused(r#"{"content":"x","config":{"theme":[]}}"#)
            .message
            .starts_with("`config.theme`"));
        assert!(refused(r#"{"content":"x","config":{"theme":{"extend":1}}}"#)
            .message
            .starts_with("`config.theme.extend`"));
        assert!(refused(r#"{"content":"x","config":{"important":3}}"#)
            .message
            .starts_with("`config.important`"));
        assert!(refused(r#"{"content":"x","config":"tailwind.config.js"}"#)
            .message
            .starts_with("`config`: invalid type"));
        let deep = format!("{}1{}", "{\"a\":".repeat(20), "}".repeat(20));
        assert!(refused(&format!(r#"{{"content":"x","config":{deep}}}"#))
            .message
            .contains("nested"));
    }

    #[test]
    fn config_keys_that_reach_javascript_prototypes_are_refused() {
        // The compiler that reads `config` is shared by every account's renders: no key of
        // it may name an object's prototype.
        for (body, at) in [
            (r#"{"__proto__":{"x":1}}"#, "config.__proto__"),
            (
                r#"{"theme":{"extend":{"colors":{"constructor":{"prototype":{}}}}}}"#,
                "config.theme.extend.colors.constructor",
            ),
            (
                r#"{"theme":{"extend":{"spacing":[{"prototype":1}]}}}"#,
                "config.theme.extend.spacing[0].prototype",
            ),
        ] {
            let err = refused(&format!(r#"{{"content":"x","config":{body}}}"#));
            assert!(err.message.contains(at), "{}", err.message);
        }
        assert!(parse(
            r##"{"content":"x","config":{"theme":{"extend":{"colors":{"proto":"#000"}}}}}"##
        )
        .is_ok());
    }

    #[test]
    fn pdf_options_errors_carry_their_path() {
        let e = refused(r#"{"content":"x","pdfOptions":{"scale":5}}"#);
        assert!(e.message.starts_with("`pdfOptions.scale`"), "{}", e.message);
        let e = refused(r#"{"content":"x","pdfOptions":{"landscape":"yes"}}"#);
        assert!(e.message.starts_with("`pdfOptions.landscape`: invalid type"), "{}", e.message);
        for (body, expected) in [
            (
                r#"{"content":"x","pdfOptions":{"password":{"user":"u","permissions":{"printing":1}}}}"#,
                "`pdfOptions.password.permissions`: unknown field `printing`",
            ),
            (
                r#"{"content":"x","pdfOptions":{"metadata":{"tittle":"T"}}}"#,
                "`pdfOptions.metadata`: unknown field `tittle`",
            ),
            (
                r#"{"content":"x","pdfOptions":{"metadata":{"title":5}}}"#,
                "`pdfOptions.metadata.title`: invalid type",
            ),
            (
                r#"{"content":"x","pdfOptions":{"password":"pw"}}"#,
                "`pdfOptions.password`: invalid type",
            ),
            // Objects only (found by the schema fuzzer: serde fills structs from arrays too).
            (
                r#"{"content":"x","pdfOptions":{"metadata":[null,null]}}"#,
                "`pdfOptions.metadata` must be an object such as {\"title\": \"Invoice\"} (or [] for none).",
            ),
            (
                r#"{"content":"x","pdfOptions":{"password":["u"]}}"#,
                "`pdfOptions.password` must be an object such as {\"user\": \"...\"}.",
            ),
            (
                r#"{"content":"x","pdfOptions":{"password":[]}}"#,
                "`pdfOptions.password` must be an object",
            ),
            (
                r#"{"content":"x","pdfOptions":{"password":{"user":"u","permissions":[false]}}}"#,
                "`pdfOptions.password.permissions` must be an object such as {\"print\": false}.",
            ),
        ] {
            let e = refused(body);
            assert!(e.message.starts_with(expected), "{body}: {}", e.message);
        }
    }

    #[test]
    fn async_needs_an_upload_url() {
        let e = refused(r#"{"content":"x","async":true}"#);
        assert!(e.message.starts_with("`upload_url` is required when `async` is true"));
    }

    #[test]
    fn urls_without_async_are_ignored_and_the_pdf_is_the_answer() {
        let r = parse(&format!(r#"{{"content":"x","upload_url":"{UPLOAD}"}}"#)).unwrap();
        assert_eq!((r.delivery, r.ignored), (Delivery::Sync, vec![String::from("upload_url")]));
        let r = parse(&format!(
            r#"{{"content":"x","async":false,"upload_url":"{UPLOAD}","webhook_url":"https://a.example/h"}}"#
        ))
        .unwrap();
        assert_eq!(r.ignored, ["upload_url", "webhook_url"]);
        // Not checked either: they are not used.
        assert!(parse(r#"{"content":"x","webhook_url":"http://10.0.0.1/"}"#).is_ok());
    }

    #[test]
    fn an_empty_webhook_url_means_none() {
        let r = parse(&format!(
            r#"{{"content":"x","async":true,"upload_url":"{UPLOAD}","webhook_url":""}}"#
        ))
        .unwrap();
        assert!(matches!(r.delivery, Delivery::Async { webhook_url: None, .. }));
        assert!(r.ignored.is_empty());
        let r = parse(r#"{"content":"x","webhook_url":""}"#).unwrap();
        assert!(r.ignored.is_empty());
        let e = refused(r#"{"content":"x","async":true,"upload_url":""}"#);
        assert!(e.message.starts_with("`upload_url` is required"), "{}", e.message);
    }

    #[test]
    fn width_and_height_beside_a_paper_format_are_ignored_as_in_puppeteer() {
        let r = parse(r#"{"content":"x","pdfOptions":{"format":"A4","width":100,"height":"5in"}}"#)
            .unwrap();
        assert_eq!(r.ignored, ["pdfOptions.width", "pdfOptions.height"]);
        assert_eq!(r.spec.pdf_options.validate().unwrap().width, 8.2677);
    }

    #[test]
    fn urls_pass_the_ssrf_guard() {
        let e = refused(r#"{"content":"x","async":true,"upload_url":"https://169.254.169.254/x"}"#);
        assert_eq!((e.status(), e.code), (400, ErrorCode::UrlNotAllowed));
        let e = refused(&format!(
            r#"{{"content":"x","async":true,"upload_url":"{UPLOAD}","webhook_url":"https://10.0.0.8/hook"}}"#
        ));
        assert!(e.message.contains("`webhook_url` points to 10.0.0.8"), "{}", e.message);
        // http is allowed (as at TailPDF), private stays refused over it too.
        assert!(parse(
            r#"{"content":"x","async":true,"upload_url":"http://bucket.example.com/a"}"#
        )
        .is_ok());
        let e = refused(r#"{"content":"x","async":true,"upload_url":"http://192.168.0.2/a"}"#);
        assert_eq!(e.code, ErrorCode::UrlNotAllowed);
    }

    #[test]
    fn config_size_is_bounded() {
        let big = "a".repeat(MAX_CONFIG_BYTES);
        let e = refused(&format!(r#"{{"content":"x","config":{{"theme":{{"x":"{big}"}}}}}}"#));
        assert!(e.message.starts_with("`config` is"), "{}", e.message);
    }

    #[test]
    fn loopback_only_under_the_development_policy() {
        let body =
            br#"{"content":"x","async":true,"upload_url":"http://127.0.0.1:9000/pdfs/a.pdf"}"#;
        assert!(parse_pdf_request(body, UrlPolicy::DEVELOPMENT).is_ok());
        assert_eq!(
            parse_pdf_request(body, UrlPolicy::PRODUCTION).unwrap_err().code,
            ErrorCode::UrlNotAllowed
        );
    }

    #[test]
    fn idempotency_keys() {
        assert!(validate_idempotency_key("4f1c2a9e-7b7d-4d0e-9a43-2f8d8a6b1c11").is_ok());
        assert!(validate_idempotency_key("").is_err());
        assert!(validate_idempotency_key("has space").is_err());
        assert!(validate_idempotency_key(&"k".repeat(256)).is_err());
    }

    #[test]
    fn render_spec_round_trips() {
        let r = parse(r#"{"content":"x","fonts":["Inter:wght@400"],"pdfOptions":{"format":"A4"}}"#)
            .unwrap();
        let json = serde_json::to_string(&r.spec).unwrap();
        assert!(!json.contains("no_store"), "absent unless asked: older renderers read it");
        assert_eq!(serde_json::from_str::<RenderSpec>(&json).unwrap(), r.spec);
        let private = RenderSpec { no_store: true, ..r.spec };
        let json = serde_json::to_string(&private).unwrap();
        assert_eq!(serde_json::from_str::<RenderSpec>(&json).unwrap(), private);
    }

    #[test]
    fn the_no_store_header() {
        for (value, asked) in
            [(Some("true"), true), (Some("TRUE "), true), (Some("1"), true), (Some("false"), false)]
        {
            assert_eq!(no_store_requested(value), asked, "{value:?}");
        }
        assert!(!no_store_requested(None));
    }
}
