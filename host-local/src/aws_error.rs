//! One readable line for an AWS SDK error (S3 and Lambda alike): what kind of failure,
//! the service's HTTP status, error code and message, and a hint where the cause is common
//! (no credentials, nothing listening at the endpoint). The SDK's own `Display` of an error
//! says only "service error", and its `DisplayErrorContext` appends the whole Debug chain
//! (request, response and body): thousands of characters. That chain is logged at debug
//! level (`IFP_LOG=debug`, `RUST_LOG=debug` or `ifp -v`) instead.

use std::error::Error;

use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};

/// What went wrong with one request, in one line (no request, response or Debug output).
pub fn describe<E>(e: &SdkError<E, HttpResponse>) -> String
where
    E: ProvideErrorMetadata + Error + 'static,
{
    tracing::debug!("AWS SDK error in full: {e:?}");
    match e {
        SdkError::ServiceError(s) => {
            let status = s.raw().status().as_u16();
            let code = e.code().unwrap_or_default();
            let message = e.message().unwrap_or_default();
            let body =
                s.raw().body().bytes().map(|b| String::from_utf8_lossy(b).trim().to_string()).unwrap_or_default();
            let mut line = format!("HTTP {status}");
            if !code.is_empty() {
                line.push_str(&format!(" {code}"));
            }
            match (message.is_empty(), body.is_empty() || body.len() > 200 || !code.is_empty()) {
                (false, _) => line.push_str(&format!(": {}", short(&one_line(message)))),
                (true, false) => line.push_str(&format!(": {}", one_line(&body))),
                (true, true) => {}
            }
            line
        }
        SdkError::TimeoutError(_) => "no response in time (timeout)".to_string(),
        other => {
            let chain = chain(other);
            if chain.contains("credentials") {
                // The provider chain lists every provider it tried: the full text is in the debug log.
                let why = if chain.contains("no credentials found in chain") {
                    "none in the environment, profiles or instance metadata".to_string()
                } else {
                    short(&chain_tail(other))
                };
                format!("no usable AWS credentials ({why}); set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE")
            } else if chain.contains("Connection refused")
                || chain.contains("dns error")
                || chain.contains("tcp connect")
            {
                format!(
                    "cannot connect to the endpoint: {}; is the address right and the service running?",
                    chain_tail(other)
                )
            } else {
                short(&chain)
            }
        }
    }
}

/// The error's messages, outermost first, joined, without the words that say nothing
/// ("dispatch failure", "io error", "other", "client error (Connect)").
fn chain(e: &dyn Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut cur: Option<&dyn Error> = Some(e);
    while let Some(err) = cur {
        let text = one_line(&err.to_string());
        let noise =
            ["dispatch failure", "io error", "other", "client error (Connect)", "unhandled error", "service error"];
        if !text.is_empty() && !noise.contains(&text.as_str()) && !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        cur = err.source();
    }
    parts.join(": ")
}

/// The innermost message: the cause itself (e.g. "Connection refused (os error 111)").
fn chain_tail(e: &dyn Error) -> String {
    let mut cur: &dyn Error = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    one_line(&cur.to_string())
}

/// At most 160 characters of a message, so that the line stays readable.
fn short(s: &str) -> String {
    match s.char_indices().nth(160) {
        Some((at, _)) => format!("{}...", &s[..at]),
        None => s.to_string(),
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_s3::error::ErrorMetadata;
    use aws_sdk_s3::operation::get_object::GetObjectError;
    use aws_sdk_s3::primitives::SdkBody;

    fn service(
        status: u16,
        code: Option<&str>,
        message: Option<&str>,
        body: &str,
    ) -> SdkError<GetObjectError, HttpResponse> {
        let mut meta = ErrorMetadata::builder();
        if let Some(c) = code {
            meta = meta.code(c);
        }
        if let Some(m) = message {
            meta = meta.message(m);
        }
        let raw = HttpResponse::new(status.try_into().unwrap(), SdkBody::from(body.to_string()));
        SdkError::service_error(GetObjectError::generic(meta.build()), raw)
    }

    #[test]
    fn service_errors_give_status_code_and_message_without_the_response() {
        let e = service(403, Some("AccessDenied"), Some("Access   Denied"), "<Error>...</Error>");
        assert_eq!(describe(&e), "HTTP 403 AccessDenied: Access Denied");
        // No code (the Lambda emulator's 404): the body, when short, says what happened.
        assert_eq!(describe(&service(404, None, None, "404 page not found\n")), "HTTP 404: 404 page not found");
        // A long body is not a message.
        assert_eq!(describe(&service(500, None, None, &"x".repeat(500))), "HTTP 500");
        let long = "m".repeat(400);
        let line = describe(&service(400, Some("Bad"), Some(&long), ""));
        assert!(line.len() < 200 && line.ends_with("..."), "{line}");
    }

    #[test]
    fn timeouts_are_named() {
        let e: SdkError<GetObjectError, HttpResponse> = SdkError::timeout_error("slow");
        assert_eq!(describe(&e), "no response in time (timeout)");
    }
}
