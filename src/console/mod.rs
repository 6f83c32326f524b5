//! The console: a web page for operators, auditors and agencies, embedded in
//! the binary (no build step, nothing fetched from elsewhere: it works on a
//! laptop with no internet). The page is static; it signs in with a bearer
//! token kept in the tab's `sessionStorage` and reads everything through the
//! JSON API with that token, so the API's authorisation is the console's.
//!
//! Architecture invariant: every console response carries [`CSP`] (no
//! inline script or style, nothing from another origin, no framing) and the
//! assets are the files of `assets/`, byte for byte; the page renders with
//! `textContent` only, never `innerHTML`.

/// The Content-Security-Policy of every console response.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     connect-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; \
     form-action 'none'";

/// One embedded file of the console.
pub struct Asset {
    pub name: &'static str,
    pub content_type: &'static str,
    pub body: &'static [u8],
}

macro_rules! asset {
    ($name:literal, $type:literal) => {
        Asset {
            name: $name,
            content_type: $type,
            body: include_bytes!(concat!("assets/", $name)),
        }
    };
}

/// Every file the console serves; `index.html` is `/console/`.
pub const ASSETS: &[Asset] = &[
    asset!("index.html", "text/html; charset=utf-8"),
    asset!("console.css", "text/css; charset=utf-8"),
    asset!("app.js", "text/javascript; charset=utf-8"),
    asset!("verify.js", "text/javascript; charset=utf-8"),
    asset!("i18n.js", "text/javascript; charset=utf-8"),
    asset!("favicon.svg", "image/svg+xml"),
];

/// The asset of this name, if the console has one.
pub fn asset(name: &str) -> Option<&'static Asset> {
    ASSETS.iter().find(|a| a.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The page loads its scripts and style from files (the CSP refuses
    /// inline ones), and every file it names is served.
    #[test]
    fn the_page_names_only_served_files_and_holds_no_inline_code() {
        let html = std::str::from_utf8(asset("index.html").unwrap().body).unwrap();
        assert!(!html.contains("<style"), "inline style");
        assert!(!html.contains(" style="), "inline style attribute");
        let handler = html.split(" on").skip(1).find(|rest| {
            let name_end = rest.find(|c: char| !c.is_ascii_alphabetic()).unwrap_or(0);
            name_end > 0 && rest[name_end..].starts_with('=')
        });
        assert!(handler.is_none(), "inline event handler: on{handler:?}");
        for script in html.split("<script").skip(1) {
            let tag = &script[..script.find('>').unwrap()];
            assert!(tag.contains("src="), "inline script: <script{tag}>");
        }
        for reference in html.split("=\"./").skip(1) {
            let name = &reference[..reference.find('"').unwrap()];
            assert!(asset(name).is_some(), "{name} is named but not served");
        }
        for a in ASSETS {
            let text = String::from_utf8_lossy(a.body);
            assert!(!text.contains("innerHTML"), "{}: innerHTML", a.name);
            for elsewhere in [
                "src=\"http",
                "src=\"//",
                "href=\"http",
                "href=\"//",
                "from \"http",
                "url(http",
            ] {
                assert!(
                    !text.contains(elsewhere),
                    "{}: loads from another origin",
                    a.name
                );
            }
        }
    }
}
