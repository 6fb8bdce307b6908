//! AES-256 encryption (PDF 2.0's revision 6) by qpdf, the reference implementation, run as a
//! process with the PDF and a QPDFJob JSON in a private directory. The passwords travel in
//! that JSON, never on the command line (where `ps` would show them): qpdf takes positional
//! passwords badly anyway (11.3 crashes on one that reads `--`). The directory is on
//! `/dev/shm` where it can be, so they need not touch a disk, and it is gone when the step
//! ends, however it ends.

use std::{path::Path, process::Stdio};

use serde_json::json;
use tailpdf_shared::postprocess::Password;

use crate::error::RenderError;

/// Bytes of qpdf's error output kept for the message.
const MAX_STDERR: usize = 600;

/// `pdf`, encrypted as `password` says.
pub(super) async fn encrypt(
    pdf: &[u8],
    password: &Password,
    qpdf: &Path,
) -> Result<Vec<u8>, RenderError> {
    let fail = |e: &dyn std::fmt::Display| super::failed("encrypt", e);
    let dir = private_dir().map_err(|e| fail(&e))?;
    let (input, output, job) =
        (dir.path().join("in.pdf"), dir.path().join("out.pdf"), dir.path().join("job.json"));
    tokio::fs::write(&input, pdf).await.map_err(|e| fail(&e))?;
    let job_json = job_json(&input, &output, password).map_err(|e| fail(&e))?;
    tokio::fs::write(&job, job_json.to_string()).await.map_err(|e| fail(&e))?;
    let run = tokio::process::Command::new(qpdf)
        .arg(format!("--job-json-file={}", job.display()))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        // The stage's deadline drops this future: qpdf goes with it.
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|e| fail(&format!("could not run {}: {e}", qpdf.display())))?;
    // 3: done, with warnings about the input (which qpdf repaired).
    if !matches!(run.status.code(), Some(0 | 3)) {
        let stderr = String::from_utf8_lossy(&run.stderr);
        let stderr: String = stderr.trim().chars().take(MAX_STDERR).collect();
        return Err(fail(&format!("qpdf ended with {}: {stderr}", run.status)));
    }
    tokio::fs::read(&output).await.map_err(|e| fail(&e))
}

/// A 0700 directory of this process, in memory where there is a writable `/dev/shm`.
fn private_dir() -> std::io::Result<tempfile::TempDir> {
    let builder = || {
        let mut b = tempfile::Builder::new();
        b.prefix("tailpdf-encrypt-");
        b
    };
    builder().tempdir_in("/dev/shm").or_else(|_| builder().tempdir())
}

/// The QPDFJob for `password` (qpdf's `--job-json-help`).
fn job_json(
    input: &Path,
    output: &Path,
    password: &Password,
) -> Result<serde_json::Value, getrandom::Error> {
    let allowed = password.allowed();
    let yes_no = |b: bool| if b { "y" } else { "n" };
    // Without an owner password, a random one nobody keeps: the permissions then hold for
    // every reader.
    let owner = match password.owner.as_deref() {
        Some(owner) if !owner.is_empty() => owner.to_owned(),
        _ => random_owner()?,
    };
    Ok(json!({
        "inputFile": input,
        "outputFile": output,
        "encrypt": {
            "userPassword": password.user,
            "ownerPassword": owner,
            "256bit": {
                "print": if allowed.print { "full" } else { "none" },
                "extract": yes_no(allowed.copy),
                // `modify`: assembly, forms and content, each named: qpdf's own "modify"
                // would also decide `annotate`, whichever came first.
                "assemble": yes_no(allowed.modify),
                "form": yes_no(allowed.modify),
                "modifyOther": yes_no(allowed.modify),
                "annotate": yes_no(allowed.annotate),
                // Screen readers may always read the text (PDF 2.0 ignores this bit anyway).
                "accessibility": "y"
            }
        }
    }))
}

fn random_owner() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 24];
    getrandom::fill(&mut bytes)?;
    Ok(hex::encode(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_job_carries_passwords_and_permissions_as_asked() {
        let p: Password = serde_json::from_str(
            r#"{"user":"u--x","permissions":{"print":false,"annotate":false}}"#,
        )
        .unwrap();
        let job = job_json(Path::new("/i"), Path::new("/o"), &p).unwrap();
        let e = &job["encrypt"];
        assert_eq!(e["userPassword"], "u--x");
        let owner = e["ownerPassword"].as_str().unwrap();
        assert_eq!(owner.len(), 48);
        assert_ne!(
            owner,
            job_json(Path::new("/i"), Path::new("/o"), &p).unwrap()["encrypt"]["ownerPassword"]
        );
        let bits = &e["256bit"];
        assert_eq!((&bits["print"], &bits["extract"]), (&json!("none"), &json!("y")));
        for modify in ["assemble", "form", "modifyOther"] {
            assert_eq!(bits[modify], "y", "{modify}");
        }
        assert!(bits.get("modify").is_none(), "qpdf's `modify` would override `annotate`");
        assert_eq!(bits["annotate"], "n");
    }
}
