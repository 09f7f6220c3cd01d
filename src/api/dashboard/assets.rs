//! The dashboard's stylesheet and script, compiled into the binary and served by the node
//! itself (the page fetches nothing from elsewhere; the Content-Security-Policy allows only
//! these). They need no session: they hold nothing but code.

use actix_web::http::header;
use actix_web::{web, HttpResponse};

const CSS: &str = include_str!("assets/dashboard.css");
const JS: &str = include_str!("assets/dashboard.js");

/// `GET /dashboard/static/{file}`.
pub(crate) async fn serve(file: web::Path<String>) -> HttpResponse {
    let (body, content_type) = match file.as_str() {
        "dashboard.css" => (CSS, "text/css; charset=utf-8"),
        "dashboard.js" => (JS, "text/javascript; charset=utf-8"),
        _ => return HttpResponse::NotFound().finish(),
    };
    HttpResponse::Ok()
        .content_type(content_type)
        .insert_header((header::CACHE_CONTROL, "public, max-age=300"))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .body(body)
}
