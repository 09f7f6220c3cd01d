//! The JSON shapes of stored rows that more than one layer writes: a product appears the
//! same in `GET /api/products/{guid}` and in every line of a products snapshot.

use crate::config::Config;
use crate::db::images::ImageMeta;
use crate::db::products::Product;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde_json::{json, Value};

/// What a path segment must escape: everything but RFC 3986's unreserved characters.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// A product as the API shows it, with its images (by priority, then name).
pub fn product(p: &Product, images: &[ImageMeta], config: &Config) -> Value {
    let zone = &config.timezone;
    let images: Vec<Value> = images.iter().map(|i| image(i, config)).collect();
    json!({
        "guid": p.guid,
        "code": p.code,
        "name": p.name,
        "visibility": p.visibility,
        "creationTime": zone.format(p.creation_time),
        "changeTime": zone.format(p.change_time),
        "images": images,
    })
}

/// Where an image's bytes are served.
pub fn image_url(config: &Config, product_guid: &str, name: &str) -> String {
    format!(
        "{}/api/products/{}/images/{}",
        config.public_url(),
        utf8_percent_encode(product_guid, SEGMENT),
        utf8_percent_encode(name, SEGMENT)
    )
}

/// An image as the API shows it.
pub fn image(i: &ImageMeta, config: &Config) -> Value {
    json!({
        "name": i.name,
        "priority": i.priority,
        "description": i.description,
        "contentType": i.content_type,
        "size": i.size,
        "md5": i.md5,
        "sourceUrl": i.source_url,
        "url": image_url(config, &i.product_guid, &i.name),
        "created": config.timezone.format(i.created),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_urls_escape_the_name() {
        let config = Config {
            public_url: Some("https://api.example.com/".into()),
            ..Config::default()
        };
        assert_eq!(
            image_url(&config, "g-1", "přední strana/1.jpg"),
            "https://api.example.com/api/products/g-1/images/p%C5%99edn%C3%AD%20strana%2F1.jpg"
        );
    }
}
