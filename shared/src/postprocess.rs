//! What the renderer does to a PDF after Chromium prints it: `pdfOptions.password` (AES-256),
//! `pdfOptions.metadata` (Info dictionary and XMP) and `pdfOptions.pdfa` (PDF/A-2b). These
//! options and their rules; the renderer's `postprocess` stage applies them.

use serde::{Deserialize, Serialize};

use crate::time::Timestamp;

/// AES-256 (revision 6) passwords are UTF-8 and readers use only their first 127 bytes: a
/// longer one would open with a prefix of itself.
pub const MAX_PASSWORD_BYTES: usize = 127;
/// Each metadata text, in bytes.
pub const MAX_METADATA_BYTES: usize = 2048;
/// Keywords given as a list.
pub const MAX_KEYWORDS: usize = 100;

/// `pdfOptions.password`: who may open the file, and what its readers may do.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Password {
    /// Needed to open the file. Empty: anyone may open it, `owner` guards the permissions.
    #[serde(default)]
    pub user: String,
    /// Lifts the permissions. Without one, a random one is made and never kept, so the
    /// permissions hold for everyone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permissions: Option<Permissions>,
}

/// Passwords never reach a log, even through `{:?}` of a whole spec.
impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Password")
            .field("user", &"<redacted>")
            .field("owner", &self.owner.as_ref().map(|_| "<redacted>"))
            .field("permissions", &self.permissions)
            .finish()
    }
}

/// What a reader without the owner password may do; each defaults to allowed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Permissions {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub print: Option<bool>,
    /// Copy text and images out of the file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub copy: Option<bool>,
    /// Change the content, insert, delete or rotate pages, fill forms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub modify: Option<bool>,
    /// Add or change comments (annotations).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotate: Option<bool>,
}

/// The permissions with their defaults filled in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Allowed {
    pub print: bool,
    pub copy: bool,
    pub modify: bool,
    pub annotate: bool,
}

impl Password {
    pub fn allowed(&self) -> Allowed {
        let p = self.permissions.unwrap_or_default();
        Allowed {
            print: p.print.unwrap_or(true),
            copy: p.copy.unwrap_or(true),
            modify: p.modify.unwrap_or(true),
            annotate: p.annotate.unwrap_or(true),
        }
    }

    fn validate(&self) -> Result<(), String> {
        for (field, value) in [("user", Some(&self.user)), ("owner", self.owner.as_ref())] {
            let Some(value) = value else { continue };
            // The message never repeats the password.
            if value.len() > MAX_PASSWORD_BYTES {
                return Err(format!(
                    "`pdfOptions.password.{field}` is {} bytes: AES-256 uses at most \
                     {MAX_PASSWORD_BYTES} bytes (UTF-8) of a password.",
                    value.len()
                ));
            }
            if value.chars().any(char::is_control) {
                return Err(format!(
                    "`pdfOptions.password.{field}` has a control character (a newline, a tab, \
                     ...): use characters a reader can type."
                ));
            }
        }
        match self.owner.as_deref() {
            None | Some("") if self.user.is_empty() => Err(String::from(
                "`pdfOptions.password` needs `user` (to open the file) or `owner` (to guard \
                 `permissions`); both are empty.",
            )),
            Some(owner) if owner == self.user => Err(String::from(
                "`pdfOptions.password.owner` equals `user`: anyone who can open the file could \
                 then change its permissions. Use a different owner password, or leave it out \
                 (a random one is made).",
            )),
            _ => Ok(()),
        }
    }
}

/// `pdfOptions.metadata`: the document's Info dictionary and XMP metadata.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Metadata {
    /// Default: the document's `<title>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keywords: Option<Keywords>,
    /// The application the document came from. Default: `tailpdf`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creator: Option<String>,
    /// The application that made the PDF. Default: `tailpdf <version>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub producer: Option<String>,
    /// RFC 3339, e.g. `2024-12-15T10:30:00Z`; default: the time of the render.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creation_date: Option<String>,
}

/// Keywords as one string (`"invoice, 2024"`) or a list (`["invoice", "2024"]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Keywords {
    One(String),
    Many(Vec<String>),
}

impl Keywords {
    /// As the Info dictionary and XMP's `pdf:Keywords` write them: one string.
    pub fn joined(&self) -> String {
        match self {
            Self::One(s) => s.clone(),
            Self::Many(list) => list.join(", "),
        }
    }
}

impl Metadata {
    /// `creationDate`, parsed.
    pub fn creation_date(&self) -> Result<Option<Timestamp>, String> {
        self.creation_date_at("pdfOptions.metadata")
    }

    fn creation_date_at(&self, path: &str) -> Result<Option<Timestamp>, String> {
        self.creation_date
            .as_deref()
            .map(|s| {
                Timestamp::parse(s.trim())
                    .map_err(|e| format!("`{path}.creationDate` {s:?}: {e} (offsets allowed)."))
            })
            .transpose()
    }

    /// These fields where set, `base`'s elsewhere: a batch document's metadata over the
    /// batch's, field by field.
    pub fn merged_over(self, base: Option<&Metadata>) -> Metadata {
        let Some(base) = base else { return self };
        Metadata {
            title: self.title.or_else(|| base.title.clone()),
            author: self.author.or_else(|| base.author.clone()),
            subject: self.subject.or_else(|| base.subject.clone()),
            keywords: self.keywords.or_else(|| base.keywords.clone()),
            creator: self.creator.or_else(|| base.creator.clone()),
            producer: self.producer.or_else(|| base.producer.clone()),
            creation_date: self.creation_date.or_else(|| base.creation_date.clone()),
        }
    }

    fn validate(&self) -> Result<(), String> {
        self.validate_at("pdfOptions.metadata")
    }

    /// Every rule of each field, on its own: metadata merged from checked parts is checked.
    /// Messages name the fields under `path` (`documents[2].metadata`).
    pub fn validate_at(&self, path: &str) -> Result<(), String> {
        let texts = [
            ("title", &self.title),
            ("author", &self.author),
            ("subject", &self.subject),
            ("creator", &self.creator),
            ("producer", &self.producer),
        ];
        let keywords = match &self.keywords {
            None => Vec::new(),
            Some(Keywords::One(s)) => vec![s.as_str()],
            Some(Keywords::Many(list)) => {
                if list.len() > MAX_KEYWORDS {
                    return Err(format!(
                        "`{path}.keywords` has {} entries; at most {MAX_KEYWORDS}.",
                        list.len()
                    ));
                }
                list.iter().map(String::as_str).collect()
            }
        };
        let all = texts
            .iter()
            .filter_map(|(name, v)| v.as_deref().map(|v| (*name, v)))
            .chain(keywords.into_iter().map(|k| ("keywords", k)));
        for (name, value) in all {
            if value.len() > MAX_METADATA_BYTES {
                return Err(format!(
                    "`{path}.{name}` is {} bytes; at most {MAX_METADATA_BYTES}.",
                    value.len()
                ));
            }
            if value.chars().any(|c| c.is_control() && !matches!(c, '\n' | '\t')) {
                return Err(format!(
                    "`{path}.{name}` has a control character; only text, newlines and tabs \
                     are kept."
                ));
            }
        }
        if matches!(&self.keywords, Some(Keywords::Many(list)) if list.iter().any(|k| k.contains(',')))
        {
            return Err(format!(
                "`{path}.keywords`: an entry of the list has a comma, which would split it in \
                 two; send one string instead."
            ));
        }
        self.creation_date_at(path).map(|_| ())
    }
}

/// The PDF/A conformance levels made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PdfA {
    /// ISO 19005-2, level B: the look of the pages is preserved (fonts embedded, colours
    /// device-independent through an sRGB output intent, XMP identification).
    A2b,
}

impl PdfA {
    pub fn part(self) -> u8 {
        2
    }

    /// XMP's `pdfaid:conformance`.
    pub fn conformance(self) -> &'static str {
        "B"
    }

    pub(crate) fn parse(name: &str) -> Result<Self, String> {
        let n = name.trim().to_ascii_lowercase();
        match n.strip_prefix("pdf/a-").unwrap_or(&n) {
            "2b" => Ok(Self::A2b),
            _ => {
                Err(format!("`pdfOptions.pdfa` {name:?} is not made here: use \"2b\" (PDF/A-2b)."))
            }
        }
    }
}

/// The options of the post-processing stage, checked together (the caller has checked each
/// field's shape through serde).
pub(crate) fn validate(
    password: Option<&Password>,
    metadata: Option<&Metadata>,
    pdfa: Option<&str>,
) -> Result<Option<PdfA>, String> {
    if let Some(p) = password {
        p.validate()?;
    }
    if let Some(m) = metadata {
        m.validate()?;
    }
    let pdfa = pdfa.map(PdfA::parse).transpose()?;
    if pdfa.is_some() && password.is_some() {
        return Err(String::from(
            "`pdfOptions.pdfa` and `pdfOptions.password` cannot go together: PDF/A forbids \
             encryption (an archive must open without a password). Send one of them.",
        ));
    }
    Ok(pdfa)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn password(json: &str) -> Password {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn passwords_and_their_rules() {
        let p = password(r#"{"user":"open sesame","permissions":{"copy":false}}"#);
        assert_eq!(p.validate(), Ok(()));
        assert_eq!(p.allowed(), Allowed { print: true, copy: false, modify: true, annotate: true });
        // Permissions only: anyone opens it, the owner password guards the rest.
        assert_eq!(
            password(r#"{"owner":"boss","permissions":{"print":false}}"#).validate(),
            Ok(())
        );
        for (json, needle) in [
            (r#"{}"#, "both are empty"),
            (r#"{"user":"","owner":""}"#, "both are empty"),
            (r#"{"user":"same","owner":"same"}"#, "equals `user`"),
            (r#"{"user":"line\nbreak"}"#, "password.user` has a control character"),
            (r#"{"user":"u","owner":"tab\there"}"#, "password.owner` has a control"),
        ] {
            let e = password(json).validate().unwrap_err();
            assert!(e.contains(needle), "{json}: {e}");
        }
        let long = format!(r#"{{"user":"{}"}}"#, "é".repeat(64));
        let e = password(&long).validate().unwrap_err();
        assert!(e.contains("128 bytes") && e.contains("127"), "{e}");
        assert_eq!(password(&format!(r#"{{"user":"{}"}}"#, "x".repeat(127))).validate(), Ok(()));
        // Unknown permission names are refused, not ignored.
        assert!(serde_json::from_str::<Password>(
            r#"{"user":"u","permissions":{"printing":true}}"#
        )
        .is_err());
    }

    #[test]
    fn a_password_never_shows_in_debug_output_or_errors() {
        let p = password(r#"{"user":"hunter2-secret","owner":"owner-secret\n"}"#);
        let debug = format!("{p:?}");
        assert!(!debug.contains("secret"), "{debug}");
        let e = p.validate().unwrap_err();
        assert!(!e.contains("secret"), "{e}");
    }

    #[test]
    fn metadata_and_its_rules() {
        let m: Metadata = serde_json::from_str(
            r#"{"title":"Invoice 42","author":"ACME","keywords":["invoice","2024"],
                "creationDate":"2024-12-15T11:30:00+01:00"}"#,
        )
        .unwrap();
        assert_eq!(m.validate(), Ok(()));
        assert_eq!(m.keywords.as_ref().unwrap().joined(), "invoice, 2024");
        assert_eq!(m.creation_date().unwrap().unwrap().to_string(), "2024-12-15T10:30:00Z");
        let bad =
            |json: &str| serde_json::from_str::<Metadata>(json).unwrap().validate().unwrap_err();
        assert!(bad(r#"{"creationDate":"yesterday"}"#).contains("metadata.creationDate"));
        assert!(bad(r#"{"keywords":["a,b"]}"#).contains("has a comma"));
        assert!(bad(&format!(r#"{{"title":"{}"}}"#, "t".repeat(2049))).contains("metadata.title"));
        assert!(bad(r#"{"author":"nul\u0000"}"#).contains("metadata.author"));
        let many: Vec<String> = (0..101).map(|i| i.to_string()).collect();
        assert!(bad(&serde_json::json!({ "keywords": many }).to_string()).contains("101 entries"));
        assert!(serde_json::from_str::<Metadata>(r#"{"tittle":"x"}"#).is_err());
    }

    #[test]
    fn pdfa_levels_and_what_they_exclude() {
        for name in ["2b", "2B", "PDF/A-2b", " pdf/a-2B "] {
            assert_eq!(validate(None, None, Some(name)), Ok(Some(PdfA::A2b)), "{name}");
        }
        for name in ["1b", "3b", "2u", ""] {
            let e = validate(None, None, Some(name)).unwrap_err();
            assert!(e.contains("`pdfOptions.pdfa`") && e.contains("\"2b\""), "{name}: {e}");
        }
        let p = password(r#"{"user":"u"}"#);
        let e = validate(Some(&p), None, Some("2b")).unwrap_err();
        assert!(e.contains("forbids encryption"), "{e}");
        assert_eq!(validate(Some(&p), None, None), Ok(None));
    }
}
