//! A [`Page`] as a response: `pages` makes the markup and its policy, this turns it into the
//! HTTP response with the headers every page carries.

use http::{HeaderValue, Response, StatusCode, header};

use super::{Body, full};
use crate::pages::Page;

/// Renders a page as a response.
pub trait PageResponse {
    /// The page as a response with `status`. `frame_ancestors` lists origins allowed to embed it
    /// (the request form and the answers to it, for the sites that embed it); with none, it
    /// refuses to be framed.
    fn response(&self, status: StatusCode, frame_ancestors: &[String]) -> Response<Body>;
}

impl PageResponse for Page {
    fn response(&self, status: StatusCode, frame_ancestors: &[String]) -> Response<Body> {
        let mut response = Response::new(full(self.render()));
        *response.status_mut() = status;
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        );
        if let Ok(policy) = HeaderValue::try_from(self.policy(frame_ancestors)) {
            headers.insert(header::CONTENT_SECURITY_POLICY, policy);
        }
        headers.insert(
            "x-robots-tag",
            HeaderValue::from_static("noindex, nofollow"),
        );
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        // A page's own form posts carry its origin (`no-referrer` would make it `null`); other
        // sites still learn nothing, not even the origin.
        headers.insert(
            header::REFERRER_POLICY,
            HeaderValue::from_static("same-origin"),
        );
        if frame_ancestors.is_empty() {
            headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pages::{Form, outcome};

    #[test]
    fn a_page_is_framed_only_where_allowed() {
        let page = outcome("link_used", "Used", "This link was used.", String::new());
        let response = page.response(StatusCode::GONE, &[]);
        assert_eq!(response.status(), StatusCode::GONE);
        let headers = response.headers();
        assert_eq!(headers[header::CONTENT_SECURITY_POLICY], page.policy(&[]));
        assert_eq!(headers[header::X_FRAME_OPTIONS], "DENY");
        assert_eq!(headers[header::REFERRER_POLICY], "same-origin");

        let form = Form::default().page();
        let origins = ["https://www.example.com".to_owned()];
        let framed = form.response(StatusCode::OK, &origins);
        assert_eq!(
            framed.headers()[header::CONTENT_SECURITY_POLICY],
            form.policy(&origins)
        );
        assert!(!framed.headers().contains_key(header::X_FRAME_OPTIONS));
    }
}
