//! `POST /pdf/batch` (a tailpdf extension, not TailPDF's): many documents that share `fonts`,
//! `config` and `pdfOptions`, each rendered as an async job of its own; its validation
//! ([`parse_batch_request`]) and the JSON of `202` and `GET /batches/{id}`.
//!
//! The batch is ours, so it is strict where `POST /pdf` is lenient: an unknown key at the top
//! level or in a document is a 400 naming it, and a batch is accepted whole or not at all, the
//! first bad document named by its index (`documents[3].upload_url`). The shared parts go
//! through exactly the rules of `POST /pdf` ([`crate::request`]), `pdfOptions`' own leniency
//! (unknown keys ignored and named, PHP's `[]`) included, so a client's options mean the same
//! in both.
//!
//! A document's job id is its batch's id followed by its index ([`document_job_id`]): the edge
//! finds a document's job from the batch's one record, without a record per document.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use url::Url;

use crate::{
    client_shapes,
    job::status_path,
    limits::{MAX_BATCH_BODY_BYTES, MAX_BATCH_CONTENT_BYTES, MAX_BATCH_DOCUMENTS},
    postprocess::Metadata,
    request::{check_content, json_object, objects_only, typed, Common, METADATA_EXAMPLE},
    url_guard::{check_url, UrlPolicy},
    ApiError, ErrorCode, JobId, JobStatus, RenderSpec, Timestamp,
};

/// The length of the batch ids we make (ULIDs), and of a document's id without its index.
const BATCH_ID_CHARS: usize = 26;
/// A document's index in its job id: 4 characters of Crockford base32.
const INDEX_CHARS: u32 = 4;
/// The largest index a document's job id carries (32⁴ − 1).
pub const MAX_DOCUMENT_INDEX: u32 = 32u32.pow(INDEX_CHARS) - 1;
const _: () = assert!(MAX_BATCH_DOCUMENTS as u64 <= MAX_DOCUMENT_INDEX as u64 + 1);

/// The job id of document `index` of batch `batch_id`: the batch's 26 characters, then the
/// index as 4 Crockford base32 characters (30 characters, a valid [`JobId`]). `None` for an id
/// that is not one of our 26-character batch ids or an index over [`MAX_DOCUMENT_INDEX`].
pub fn document_job_id(batch_id: &JobId, index: u32) -> Option<JobId> {
    if batch_id.as_str().len() != BATCH_ID_CHARS || index > MAX_DOCUMENT_INDEX {
        return None;
    }
    let alphabet = crate::id::CROCKFORD.as_bytes();
    let mut id = String::with_capacity(BATCH_ID_CHARS + INDEX_CHARS as usize);
    id.push_str(batch_id.as_str());
    for shift in (0..INDEX_CHARS).rev().map(|i| i * 5) {
        id.push(char::from(alphabet[((index >> shift) & 31) as usize]));
    }
    JobId::parse(&id).ok()
}

/// The batch and the index of a document's job id ([`document_job_id`]); `None` for any other
/// id (a single job's 26 characters among them).
pub fn parse_document_job_id(id: &JobId) -> Option<(JobId, u32)> {
    let s = id.as_str();
    if s.len() != BATCH_ID_CHARS + INDEX_CHARS as usize {
        return None;
    }
    let (batch, index) = s.split_at(BATCH_ID_CHARS);
    let index = index.chars().try_fold(0u32, |n, c| {
        let digit = crate::id::CROCKFORD.find(c)?;
        Some(n * 32 + u32::try_from(digit).ok()?)
    })?;
    Some((JobId::parse(batch).ok()?, index))
}

/// What one document adds to its batch's shared spec: its `content`, and its own `metadata`
/// merged over the batch's (`None`: the batch's).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DocumentPart {
    pub content: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Metadata>,
}

impl DocumentPart {
    /// The document's whole spec over `shared` (a batch's spec without content).
    pub fn spec(&self, shared: &RenderSpec) -> RenderSpec {
        let mut spec = RenderSpec { content: self.content.clone(), ..shared.clone() };
        if self.metadata.is_some() {
            spec.pdf_options.metadata.clone_from(&self.metadata);
        }
        spec
    }
}

/// The top level of a batch body; the documents are read one by one, so that a refusal names
/// its index.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BatchBody {
    #[serde(default)]
    fonts: Option<Value>,
    #[serde(default)]
    config: Option<Value>,
    #[serde(default, rename = "pdfOptions")]
    pdf_options: Option<Value>,
    #[serde(default)]
    webhook_url: Option<String>,
    #[serde(default)]
    documents: Option<Vec<Value>>,
}

/// One entry of `documents`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DocumentBody {
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    upload_url: Option<String>,
    #[serde(default)]
    webhook_url: Option<String>,
    #[serde(default)]
    metadata: Option<Metadata>,
}

/// A valid batch. What the documents share is kept once ([`Self::spec`] assembles a document's
/// whole spec when it is needed): a `config` and templates of up to 256 KiB each, copied into
/// a thousand specs at once, would not fit in a Worker's memory.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidBatch {
    /// Every document's `fonts`, `config` and `pdfOptions` (the batch's `metadata`); no
    /// content.
    pub shared: RenderSpec,
    pub documents: Vec<ValidDocument>,
    /// Where `batch.completed` goes.
    pub webhook_url: Option<Url>,
    /// `pdfOptions` fields that play no part, for `X-TailPDF-Ignored`.
    pub ignored: Vec<String>,
}

/// One document of a valid batch.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidDocument {
    pub content: String,
    /// Its own `metadata` merged over the batch's `pdfOptions.metadata`; `None`: the batch's.
    pub metadata: Option<Metadata>,
    pub upload_url: Url,
    /// Where this document's `render.*` webhook goes.
    pub webhook_url: Option<Url>,
}

impl ValidBatch {
    /// The whole render spec of document `index` (< `documents.len()`).
    pub fn spec(&self, index: usize) -> RenderSpec {
        self.documents[index].part().spec(&self.shared)
    }
}

impl ValidDocument {
    /// What the document adds to the batch's shared spec.
    pub fn part(&self) -> DocumentPart {
        DocumentPart { content: self.content.clone(), metadata: self.metadata.clone() }
    }
}

/// Parses and validates a `POST /pdf/batch` body, all or nothing.
pub fn parse_batch_request(body: &[u8], policy: UrlPolicy) -> Result<ValidBatch, ApiError> {
    let object = json_object(
        body,
        MAX_BATCH_BODY_BYTES,
        r#"{"documents": [{"content": "<h1>Hello</h1>", "upload_url": "https://..."}]}"#,
    )?;
    let top: BatchBody = typed(Value::Object(object), "")?;

    // The shared parts, exactly as POST /pdf reads them.
    let mut shared = Map::new();
    for (key, value) in
        [("fonts", top.fonts), ("config", top.config), ("pdfOptions", top.pdf_options)]
    {
        if let Some(value) = value {
            shared.insert(key.to_owned(), value);
        }
    }
    let ignored = client_shapes::normalize(&mut shared);
    objects_only(&shared)?;
    let shared: crate::request::PdfRequest = typed(Value::Object(shared), "")?;
    let common = Common::validate(shared.fonts, shared.config, shared.pdf_options)?;
    let webhook_url = optional_url("webhook_url", top.webhook_url, policy)?;

    let documents = top.documents.ok_or_else(|| {
        ApiError::validation(
            "`documents` is required: send a list of {\"content\", \"upload_url\"} objects.",
        )
    })?;
    if documents.is_empty() || documents.len() > MAX_BATCH_DOCUMENTS {
        return Err(ApiError::validation(format!(
            "`documents` has {} entries; send 1 to {MAX_BATCH_DOCUMENTS} (split larger batches).",
            documents.len()
        )));
    }
    let base_metadata = common.pdf_options.metadata.clone();
    let mut valid = Vec::with_capacity(documents.len());
    let mut total_content = 0usize;
    // Taken one by one: each document's parsed JSON is dropped as soon as it is read.
    for (i, document) in documents.into_iter().enumerate() {
        let at = format!("documents[{i}]");
        let document = parse_document(&at, document, base_metadata.as_ref(), policy)?;
        total_content += document.content.len();
        if total_content > MAX_BATCH_CONTENT_BYTES {
            return Err(ApiError::new(
                ErrorCode::PayloadTooLarge,
                format!(
                    "The documents' `content` comes to more than {MAX_BATCH_CONTENT_BYTES} bytes \
                     by `{at}`: split the batch into smaller ones."
                ),
            ));
        }
        valid.push(document);
    }
    let mut ignored = ignored;
    ignored.extend(common.ignored);
    let shared = RenderSpec {
        content: String::new(),
        fonts: common.fonts,
        config: common.config,
        pdf_options: common.pdf_options,
        no_store: false,
    };
    Ok(ValidBatch { shared, documents: valid, webhook_url, ignored })
}

fn parse_document(
    at: &str,
    document: Value,
    base_metadata: Option<&Metadata>,
    policy: UrlPolicy,
) -> Result<ValidDocument, ApiError> {
    let example = r#"{"content": "<h1>Hello</h1>", "upload_url": "https://..."}"#;
    let Value::Object(object) = document else {
        return Err(ApiError::validation(format!("`{at}` must be an object such as {example}.")));
    };
    if object.get("metadata").is_some_and(Value::is_array) {
        return Err(ApiError::validation(format!(
            "`{at}.metadata` must be an object such as {METADATA_EXAMPLE}."
        )));
    }
    let document: DocumentBody = typed(Value::Object(object), at)?;
    let content = check_content(&format!("{at}.content"), document.content)?;
    let upload_url = document.upload_url.filter(|u| !u.trim().is_empty()).ok_or_else(|| {
        ApiError::validation(format!(
            "`{at}.upload_url` is required: send a presigned PUT URL to your storage."
        ))
    })?;
    let upload_url = check_url(&format!("{at}.upload_url"), &upload_url, policy)?;
    let webhook_url = optional_url(&format!("{at}.webhook_url"), document.webhook_url, policy)?;
    let metadata = match document.metadata {
        Some(own) => {
            // Its own fields are checked; the batch's were, with pdfOptions.
            own.validate_at(&format!("{at}.metadata")).map_err(ApiError::validation)?;
            Some(own.merged_over(base_metadata))
        }
        None => None,
    };
    Ok(ValidDocument { content, metadata, upload_url, webhook_url })
}

/// A webhook URL: none when absent or empty (as `POST /pdf` reads it), else checked.
fn optional_url(
    field: &str,
    raw: Option<String>,
    policy: UrlPolicy,
) -> Result<Option<Url>, ApiError> {
    raw.filter(|u| !u.trim().is_empty()).map(|u| check_url(field, &u, policy)).transpose()
}

/// `/batches/{id}`: the `status_url` and the `Location` header.
pub fn batch_status_path(batch_id: &JobId) -> String {
    format!("/batches/{batch_id}")
}

/// The `202 Accepted` body of `POST /pdf/batch`: the batch and its jobs, in the order of
/// `documents`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchAccepted {
    pub batch_id: JobId,
    pub status_url: String,
    pub jobs: Vec<BatchJobAccepted>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchJobAccepted {
    pub job_id: JobId,
    pub status_url: String,
}

impl BatchAccepted {
    pub fn new(batch_id: JobId, job_ids: &[JobId]) -> Self {
        let jobs = job_ids
            .iter()
            .map(|id| BatchJobAccepted { job_id: id.clone(), status_url: status_path(id) })
            .collect();
        Self { status_url: batch_status_path(&batch_id), batch_id, jobs }
    }
}

/// A batch as a whole: `processing` until every document has ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BatchStatus {
    Processing,
    Completed,
}

/// How many documents are in each state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchCounts {
    pub pending: u32,
    pub processing: u32,
    pub uploading: u32,
    pub completed: u32,
    pub failed: u32,
}

impl BatchCounts {
    pub fn of(states: impl IntoIterator<Item = JobStatus>) -> Self {
        let mut counts = Self::default();
        for status in states {
            *match status {
                JobStatus::Pending => &mut counts.pending,
                JobStatus::Processing => &mut counts.processing,
                JobStatus::Uploading => &mut counts.uploading,
                JobStatus::Completed => &mut counts.completed,
                JobStatus::Failed => &mut counts.failed,
            } += 1;
        }
        counts
    }
}

/// A document's job and its state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchJobState {
    pub job_id: JobId,
    pub status: JobStatus,
}

/// `GET /batches/{id}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchView {
    pub batch_id: JobId,
    pub status: BatchStatus,
    pub created_at: Timestamp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<Timestamp>,
    pub total: u32,
    pub counts: BatchCounts,
    pub jobs: Vec<BatchJobState>,
}

impl BatchView {
    /// The view of `batch_id`, its jobs in order with their states; completed when it has a
    /// completion time.
    pub fn new(
        batch_id: JobId,
        created_at: Timestamp,
        completed_at: Option<Timestamp>,
        jobs: Vec<BatchJobState>,
    ) -> Self {
        let counts = BatchCounts::of(jobs.iter().map(|j| j.status));
        let status =
            if completed_at.is_some() { BatchStatus::Completed } else { BatchStatus::Processing };
        let total = u32::try_from(jobs.len()).unwrap_or(u32::MAX);
        Self { batch_id, status, created_at, completed_at, total, counts, jobs }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::postprocess::Keywords;

    const UPLOAD: &str = "https://my-bucket.s3.amazonaws.com/pdfs/a.pdf?X-Amz-Signature=abc";

    fn doc(content: &str) -> Value {
        json!({"content": content, "upload_url": UPLOAD})
    }

    fn parse(body: &Value) -> Result<ValidBatch, ApiError> {
        parse_batch_request(body.to_string().as_bytes(), UrlPolicy::PRODUCTION)
    }

    fn refused(body: &Value) -> ApiError {
        parse(body).expect_err("refused")
    }

    #[test]
    fn a_valid_batch_shares_its_options_and_keeps_each_document_s_own() {
        let body = json!({
            "fonts": ["Inter:wght@400"],
            "config": {"theme": {"extend": {"colors": {"brand": "#0f766e"}}}},
            "pdfOptions": {"format": "A4", "width": 100, "timeout": 5},
            "webhook_url": "https://api.example.com/batch-done",
            "documents": [
                doc("<p>one</p>"),
                {"content": "<p>two</p>", "upload_url": UPLOAD, "webhook_url": "https://api.example.com/doc"},
                {"content": "<p>three</p>", "upload_url": UPLOAD, "webhook_url": ""},
            ]
        });
        let b = parse(&body).unwrap();
        assert_eq!(b.documents.len(), 3);
        assert_eq!(b.webhook_url.as_ref().unwrap().path(), "/batch-done");
        assert_eq!(b.ignored, ["pdfOptions.timeout", "pdfOptions.width"]);
        let spec = b.spec(1);
        assert_eq!(spec.content, "<p>two</p>");
        assert_eq!(spec.fonts[0].to_string(), "Inter:wght@400");
        assert_eq!(spec.pdf_options.format.as_deref(), Some("A4"));
        assert!(spec.config.is_some());
        assert_eq!(b.documents[1].webhook_url.as_ref().unwrap().path(), "/doc");
        assert_eq!(b.documents[2].webhook_url, None, "empty means none, as in POST /pdf");
        assert_eq!(b.documents[0].upload_url.as_str(), UPLOAD);
    }

    #[test]
    fn one_to_a_thousand_documents() {
        let e = refused(&json!({"documents": []}));
        assert!(e.message.starts_with("`documents` has 0 entries"), "{}", e.message);
        let e = refused(&json!({}));
        assert!(e.message.starts_with("`documents` is required"), "{}", e.message);
        let many: Vec<Value> = (0..=MAX_BATCH_DOCUMENTS).map(|_| doc("x")).collect();
        let e = refused(&json!({ "documents": many }));
        assert_eq!(e.code, ErrorCode::ValidationError);
        assert!(e.message.starts_with("`documents` has 1001 entries"), "{}", e.message);
        let most: Vec<Value> = (0..MAX_BATCH_DOCUMENTS).map(|_| doc("x")).collect();
        assert_eq!(parse(&json!({ "documents": most })).unwrap().documents.len(), 1000);
    }

    #[test]
    fn the_first_bad_document_is_named_by_index_and_field() {
        let mut documents: Vec<Value> = (0..5).map(|_| doc("x")).collect();
        documents[2]["upload_url"] = json!("not a url");
        documents[3]["upload_url"] = json!("also bad");
        let e = refused(&json!({ "documents": documents }));
        assert_eq!(e.code, ErrorCode::ValidationError);
        assert!(
            e.message.starts_with("`documents[2].upload_url` is not a valid URL"),
            "{}",
            e.message
        );
        // The same guard as POST /pdf's: a private address is url_not_allowed.
        documents[2]["upload_url"] = json!("https://169.254.169.254/x");
        let e = refused(&json!({ "documents": documents }));
        assert_eq!(e.code, ErrorCode::UrlNotAllowed);
        assert!(e.message.contains("`documents[2].upload_url` points to 169.254.169.254"));
        for (i, field, value, expected) in [
            (0, "upload_url", Value::Null, "`documents[0].upload_url` is required"),
            (1, "content", json!("  "), "`documents[1].content` is empty"),
            (1, "content", json!(7), "`documents[1].content`: invalid type"),
            (
                4,
                "webhook_url",
                json!("http://10.0.0.1/h"),
                "Internal/private URLs not allowed: `documents[4].webhook_url`",
            ),
        ] {
            let mut documents: Vec<Value> = (0..5).map(|_| doc("x")).collect();
            documents[i][field] = value;
            let e = refused(&json!({ "documents": documents }));
            assert!(e.message.starts_with(expected), "{}", e.message);
        }
        let big = "x".repeat(crate::limits::MAX_CONTENT_BYTES + 1);
        let e = refused(&json!({"documents": [doc("x"), doc(&big)]}));
        assert!(e.message.starts_with("`documents[1].content` is 1048577 bytes"), "{}", e.message);
    }

    #[test]
    fn unknown_keys_are_refused_with_their_path() {
        let e = refused(&json!({"documents": [doc("x")], "async": true}));
        assert!(e.message.starts_with("Unknown field `async`"), "{}", e.message);
        let mut d = doc("x");
        d["pdfOptions"] = json!({});
        let e = refused(&json!({"documents": [doc("x"), d]}));
        assert!(
            e.message.starts_with("`documents[1]`: unknown field `pdfOptions`"),
            "{}",
            e.message
        );
        let mut d = doc("x");
        d["metadata"] = json!({"tittle": "T"});
        let e = refused(&json!({ "documents": [d] }));
        assert!(
            e.message.starts_with("`documents[0].metadata`: unknown field `tittle`"),
            "{}",
            e.message
        );
    }

    #[test]
    fn a_document_s_metadata_is_merged_over_the_batch_s_field_by_field() {
        let body = json!({
            "pdfOptions": {"metadata": {"title": "Batch", "author": "ACME", "keywords": ["a", "b"]}},
            "documents": [
                {"content": "x", "upload_url": UPLOAD, "metadata": {"title": "Invoice 7", "subject": "April"}},
                doc("y"),
            ]
        });
        let b = parse(&body).unwrap();
        let own = b.spec(0).pdf_options.metadata.unwrap();
        assert_eq!(own.title.as_deref(), Some("Invoice 7"), "the document wins");
        assert_eq!(own.author.as_deref(), Some("ACME"), "the batch fills the rest");
        assert_eq!(own.subject.as_deref(), Some("April"));
        assert_eq!(own.keywords, Some(Keywords::Many(vec!["a".into(), "b".into()])));
        assert_eq!(b.spec(1).pdf_options.metadata.unwrap().title.as_deref(), Some("Batch"));
        // A document's own metadata follows the rules of pdfOptions.metadata, named by path.
        let body = json!({"documents": [doc("x"), {"content": "x", "upload_url": UPLOAD, "metadata": {"title": "a\u{7}b"}}]});
        let e = refused(&body);
        assert!(
            e.message.starts_with("`documents[1].metadata.title` has a control character"),
            "{}",
            e.message
        );
    }

    #[test]
    fn arrays_where_objects_are_expected_and_documents_that_are_not_objects() {
        for (body, expected) in [
            (json!({"documents": [doc("x"), "x"]}), "`documents[1]` must be an object"),
            (json!({"documents": [[1]]}), "`documents[0]` must be an object"),
            (
                json!({"documents": [{"content": "x", "upload_url": UPLOAD, "metadata": [null]}]}),
                "`documents[0].metadata` must be an object",
            ),
            (
                json!({"documents": [doc("x")], "pdfOptions": {"margin": ["1in"]}}),
                "`pdfOptions.margin` must be an object",
            ),
            (json!({"documents": {"0": doc("x")}}), "`documents`: invalid type"),
            (json!({"documents": [doc("x")], "config": [1]}), "`config`: invalid type"),
            (json!([doc("x")]), "The request body must be a JSON object"),
        ] {
            let e = refused(&body);
            assert_eq!(e.status(), 400, "{body}");
            assert!(e.message.starts_with(expected), "{body}: {}", e.message);
        }
    }

    #[test]
    fn the_shared_parts_follow_post_pdf_s_rules() {
        let e = refused(&json!({"documents": [doc("x")], "pdfOptions": {"scale": 5}}));
        assert!(e.message.starts_with("`pdfOptions.scale`"), "{}", e.message);
        let e = refused(&json!({"documents": [doc("x")], "fonts": ["Inter:wght@2000"]}));
        assert!(e.message.starts_with("`fonts[0]`"), "{}", e.message);
        let e = refused(&json!({"documents": [doc("x")], "webhook_url": "ftp://a.example/x"}));
        assert!(e.message.starts_with("`webhook_url` must be an https://"), "{}", e.message);
        // PHP's empty arrays mean none, as in POST /pdf.
        assert!(parse(&json!({"documents": [doc("x")], "config": [], "fonts": [], "pdfOptions": {"margin": []}})).is_ok());
    }

    #[test]
    fn the_body_and_the_sum_of_contents_are_bounded() {
        let body = vec![b' '; MAX_BATCH_BODY_BYTES + 1];
        let e = parse_batch_request(&body, UrlPolicy::PRODUCTION).unwrap_err();
        assert_eq!((e.status(), e.code), (413, ErrorCode::PayloadTooLarge));
        let mb = "x".repeat(crate::limits::MAX_CONTENT_BYTES);
        let n = MAX_BATCH_CONTENT_BYTES / mb.len() + 1;
        let documents: Vec<Value> = (0..n).map(|_| doc(&mb)).collect();
        let e = refused(&json!({ "documents": documents }));
        assert_eq!((e.status(), e.code), (413, ErrorCode::PayloadTooLarge));
        assert!(e.message.contains(&format!("`documents[{}]`", n - 1)), "{}", e.message);
    }

    #[test]
    fn a_document_s_job_id_is_its_batch_s_id_and_its_index() {
        let batch = JobId::from_parts(1_734_258_600_000, 0xDEAD_BEEF);
        for index in [0, 1, 31, 32, 999, MAX_DOCUMENT_INDEX] {
            let id = document_job_id(&batch, index).unwrap();
            assert_eq!(id.as_str().len(), 30);
            assert!(id.as_str().starts_with(batch.as_str()));
            assert_eq!(JobId::parse(id.as_str()).as_ref(), Ok(&id), "a valid job id");
            assert_eq!(parse_document_job_id(&id), Some((batch.clone(), index)));
        }
        assert_eq!(&document_job_id(&batch, 0).unwrap().as_str()[26..], "0000");
        assert_eq!(&document_job_id(&batch, 33).unwrap().as_str()[26..], "0011");
        assert_eq!(&document_job_id(&batch, 999).unwrap().as_str()[26..], "00Z7");
        // Lower case comes back as the same document.
        let lower = JobId::parse(&document_job_id(&batch, 7).unwrap().as_str().to_lowercase());
        assert_eq!(parse_document_job_id(&lower.unwrap()), Some((batch.clone(), 7)));
        // Indices past 4 characters, and ids that are not a 26-character batch's: none.
        assert_eq!(document_job_id(&batch, MAX_DOCUMENT_INDEX + 1), None);
        assert_eq!(MAX_DOCUMENT_INDEX, 1_048_575);
        let seed = JobId::parse("01JFXYZ123456789ABCDEFGH").unwrap();
        assert_eq!(document_job_id(&seed, 0), None, "24 characters");
        // A plain id is no document's, whatever its length.
        assert_eq!(parse_document_job_id(&batch), None);
        assert_eq!(parse_document_job_id(&seed), None);
        for len in [16, 29, 31, 32] {
            let id = JobId::parse(&"0".repeat(len)).unwrap();
            assert_eq!(parse_document_job_id(&id), None, "{len} characters");
        }
        // Documents of different batches, or of one at different indices, never share an id.
        let other = JobId::from_parts(1_734_258_600_000, 0xDEAD_BEF0);
        assert_ne!(document_job_id(&batch, 1), document_job_id(&other, 1));
        assert_ne!(document_job_id(&batch, 1), document_job_id(&batch, 32));
    }

    #[test]
    fn the_answers_json() {
        let id = JobId::parse("01JFXYZ123456789ABCDEFGH").unwrap();
        let job = JobId::parse("01JFXYZ123456789ABCDEFGJ").unwrap();
        let accepted = BatchAccepted::new(id.clone(), std::slice::from_ref(&job));
        assert_eq!(
            serde_json::to_value(&accepted).unwrap(),
            json!({"batch_id": id.as_str(), "status_url": format!("/batches/{id}"),
                   "jobs": [{"job_id": job.as_str(), "status_url": format!("/jobs/{job}")}]})
        );
        let at = Timestamp::from_unix(1_734_258_600).unwrap();
        let view = BatchView::new(
            id,
            at,
            None,
            vec![BatchJobState { job_id: job, status: JobStatus::Uploading }],
        );
        let v = serde_json::to_value(&view).unwrap();
        assert_eq!(v["status"], "processing");
        assert_eq!(v["total"], 1);
        assert_eq!(
            v["counts"],
            json!({"pending":0,"processing":0,"uploading":1,"completed":0,"failed":0})
        );
        assert!(v.get("completed_at").is_none());
    }
}
