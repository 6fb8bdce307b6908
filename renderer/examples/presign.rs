//! Prints a SigV4 presigned PUT URL for a bucket, like the AWS SDK's getSignedUrl: what a
//! client of tailpdf sends as `upload_url`. Used by `make demo` against the local s3s-fs.
//!
//!   cargo run -p tailpdf-renderer --example presign -- KEY [ENDPOINT] [BUCKET]

use std::time::Duration;

use rusty_s3::{Bucket, Credentials, S3Action, UrlStyle};

fn main() {
    let mut args = std::env::args().skip(1);
    let key = args.next().unwrap_or_else(|| String::from("demo/invoice.pdf"));
    let endpoint = args.next().unwrap_or_else(|| String::from("http://127.0.0.1:9000"));
    let bucket = args.next().unwrap_or_else(|| String::from("pdfs"));
    let access = std::env::var("S3_ACCESS_KEY").unwrap_or_else(|_| String::from("dev-access-key"));
    let secret = std::env::var("S3_SECRET_KEY").unwrap_or_else(|_| String::from("dev-secret-key"));
    let Ok(endpoint) = endpoint.parse() else {
        eprintln!("not a URL: {endpoint}");
        std::process::exit(2);
    };
    let Ok(bucket) = Bucket::new(endpoint, UrlStyle::Path, bucket, "us-east-1") else {
        eprintln!("not a bucket URL");
        std::process::exit(2);
    };
    let credentials = Credentials::new(access, secret);
    let mut action = bucket.put_object(Some(&credentials), &key);
    action.headers_mut().insert("content-type", "application/pdf");
    println!("{}", action.sign(Duration::from_secs(3600)));
}
