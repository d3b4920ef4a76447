//! Following `marker`/`limit` pages: Nova and Cinder `*_links`, Neutron `next` links.
//!
//! # Guarantees
//! Every page is fetched until the service stops sending a `next` link; a `next`
//! link that repeats the previous marker ends the walk with an error instead of
//! looping. When the item a marker names is deleted while the walk goes on, Nova and
//! Cinder refuse the next page ("marker [...] not found", HTTP 400): the walk starts
//! again from the first page (at most [`MAX_RESTARTS`] times), so a listing never
//! fails because something else deleted an item meanwhile.

use protector_core::{BackendError, Service};
use serde::Deserialize;
use url::Url;

use crate::error::ParseError;
use crate::session::{parse_failure, Request, Session, MAX_PAGES};

/// A `{"rel", "href"}` link of a collection.
#[derive(Clone, Debug, Deserialize)]
pub(crate) struct LinkDto {
    #[serde(default)]
    pub(crate) rel: String,
    #[serde(default)]
    pub(crate) href: String,
}

/// One page of a collection.
#[derive(Clone, Debug, PartialEq)]
pub struct Page<T> {
    /// The items of this page.
    pub items: Vec<T>,
    /// The `marker` of the next page, when the service announced one.
    pub next_marker: Option<String>,
}

/// The `marker` query parameter of the `rel: next` link.
pub(crate) fn next_marker(links: &[LinkDto]) -> Option<String> {
    let link = links.iter().find(|l| l.rel == "next")?;
    let url = Url::parse(&link.href)
        .or_else(|_| Url::parse("http://relative.invalid/").and_then(|b| b.join(&link.href)))
        .ok()?;
    url.query_pairs()
        .find(|(k, _)| k == "marker")
        .map(|(_, v)| v.into_owned())
}

/// How many times a walk starts again after its marker vanished.
pub(crate) const MAX_RESTARTS: usize = 3;

/// Fetches every page of `base` (with `limit` and `marker` added) and concatenates
/// the items.
pub(crate) async fn collect_all<T>(
    session: &Session,
    service: Service,
    base: Url,
    headers: &[(&'static str, String)],
    parse: fn(&[u8]) -> Result<Page<T>, ParseError>,
) -> Result<Vec<T>, BackendError> {
    let limit = session.page_size().to_string();
    let mut out = Vec::new();
    let mut marker: Option<String> = None;
    let mut restarts = 0;
    for _ in 0..MAX_PAGES {
        let mut url = base.clone();
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("limit", &limit);
            if let Some(m) = &marker {
                q.append_pair("marker", m);
            }
        }
        let mut req = Request::new(reqwest::Method::GET, url);
        for (k, v) in headers {
            req = req.header(k, v.clone());
        }
        let resp = match session.send(service, req).await {
            Ok(resp) => resp,
            Err(e)
                if marker.is_some()
                    && matches!(e.status, Some(400 | 404))
                    && restarts < MAX_RESTARTS =>
            {
                restarts += 1;
                tracing::debug!(%service, error = %e, restarts, "page marker vanished, listing again from the start");
                out.clear();
                marker = None;
                continue;
            }
            Err(e) => return Err(e),
        };
        let page = parse(&resp.body).map_err(|e| parse_failure(service, &e))?;
        let empty = page.items.is_empty();
        out.extend(page.items);
        match page.next_marker {
            Some(next) if !empty => {
                if marker.as_deref() == Some(next.as_str()) {
                    return Err(BackendError::invalid(
                        service,
                        format!("pagination did not advance past marker {next}"),
                    ));
                }
                marker = Some(next);
            }
            _ => return Ok(out),
        }
    }
    Err(BackendError::invalid(
        service,
        format!("more than {MAX_PAGES} pages; refusing to follow more"),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_marker_is_read_from_the_next_link() {
        let links = vec![
            LinkDto {
                rel: "previous".into(),
                href: "http://n/v2.1/servers?marker=a".into(),
            },
            LinkDto {
                rel: "next".into(),
                href: "http://n/v2.1/servers/detail?limit=2&marker=b%2Fc".into(),
            },
        ];
        assert_eq!(next_marker(&links).as_deref(), Some("b/c"));
        assert_eq!(next_marker(&links[..1]), None);
    }
}
