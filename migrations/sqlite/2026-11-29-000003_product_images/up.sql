-- Product images: the downloaded bytes live in the database so that every node can serve
-- them. One row per (product, name): the same name on the same product replaces the image.
CREATE TABLE product_images (
    product_guid TEXT NOT NULL REFERENCES products (guid) ON DELETE CASCADE,
    eshop_id BIGINT NOT NULL,
    name TEXT NOT NULL,
    priority INTEGER NOT NULL,
    description TEXT,
    content_type TEXT NOT NULL,
    size BIGINT NOT NULL,
    md5 TEXT NOT NULL,
    source_url TEXT NOT NULL,
    created BIGINT NOT NULL,
    data BLOB NOT NULL,
    PRIMARY KEY (product_guid, name)
);
CREATE INDEX product_images_eshop ON product_images (eshop_id, product_guid);
