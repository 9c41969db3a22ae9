//! `GET /openapi.json`.

/// The OpenAPI document, as JSON.
pub(crate) fn document() -> &'static [u8] {
    b"{}"
}
