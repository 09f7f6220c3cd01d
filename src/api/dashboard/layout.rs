//! The pages' frame and the small pieces they share: navigation, times and ages, status
//! badges, the paginator and the CSRF field. maud escapes every `(value)` it renders, so a
//! product name, log line or URL holding `<script>` shows as text.

use super::session::Operator;
use crate::model::{time, Micros, Zone};
use maud::{html, Markup, DOCTYPE};

/// Which section of the navigation is open.
#[derive(Clone, Copy, PartialEq)]
pub(crate) enum Section {
    Overview,
    Jobs,
    Webhooks,
    None,
}

/// The frame of a signed-in page. `live` marks the part the script refreshes every 2 s.
pub(crate) fn page(title: &str, section: Section, operator: &Operator, body: Markup) -> Markup {
    let nav = |s: Section, href: &str, label: &str| {
        html! { a href=(href) class=[(s == section).then_some("open")] { (label) } }
    };
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(title))
            body {
                header {
                    strong.brand { "jobline" }
                    nav {
                        (nav(Section::Overview, "/dashboard", "Overview"))
                        (nav(Section::Jobs, "/dashboard/jobs", "Jobs"))
                        (nav(Section::Webhooks, "/dashboard/webhooks", "Webhooks"))
                    }
                    form.signout method="post" action="/dashboard/logout" {
                        (csrf_field(operator))
                        span.who { (operator.name) }
                        button type="submit" { "Sign out" }
                    }
                }
                main { (body) }
                script src="/dashboard/static/dashboard.js" {}
            }
        }
    }
}

fn head(title: &str) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            title { (title) " · jobline" }
            link rel="stylesheet" href="/dashboard/static/dashboard.css";
        }
    }
}

/// A page with a message only (errors), shown with or without a session.
pub(crate) fn message_page(status: u16, message: &str) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            (head("Error"))
            body {
                main.narrow {
                    h1 { "Error " (status) }
                    p { (message) }
                    p { a href="/dashboard" { "Back to the dashboard" } }
                }
            }
        }
    }
}

/// The hidden field every form of a session carries.
pub(crate) fn csrf_field(operator: &Operator) -> Markup {
    html! { input type="hidden" name="csrf" value=(operator.csrf); }
}

/// A time in the API's format and zone, or a dash.
pub(crate) fn at(zone: &Zone, t: Option<Micros>) -> String {
    t.map(|t| zone.format(t)).unwrap_or_else(|| "—".into())
}

/// A duration in words: `42 s`, `3 min 5 s`, `2 h 4 min`, `3 d 1 h`.
pub(crate) fn age(micros: Micros) -> String {
    let s = (micros / time::SECOND).max(0);
    match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{} min {} s", s / 60, s % 60),
        3600..86400 => format!("{} h {} min", s / 3600, s % 3600 / 60),
        _ => format!("{} d {} h", s / 86400, s % 86400 / 3600),
    }
}

/// A status as a coloured badge.
pub(crate) fn badge(status: &str) -> Markup {
    html! { span class={ "badge " (status) } { (status) } }
}

/// Previous / next links for a list; `more` when a later page exists.
pub(crate) fn pager(base_query: &str, page: i64, more: bool) -> Markup {
    let link = |p: i64| {
        if base_query.is_empty() {
            format!("?page={p}")
        } else {
            format!("?{base_query}&page={p}")
        }
    };
    html! {
        nav.pager {
            @if page > 1 { a href=(link(page - 1)) { "← newer" } }
            span { "page " (page) }
            @if more { a href=(link(page + 1)) { "older →" } }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_read_naturally() {
        assert_eq!(age(42 * time::SECOND), "42 s");
        assert_eq!(age(185 * time::SECOND), "3 min 5 s");
        assert_eq!(age(7440 * time::SECOND), "2 h 4 min");
        assert_eq!(age(90000 * time::SECOND), "1 d 1 h");
    }

    #[test]
    fn badges_escape_what_they_show() {
        let m = badge("<script>").into_string();
        assert!(!m.contains("<script>"), "{m}");
        assert!(m.contains("&lt;script&gt;"), "{m}");
    }
}
