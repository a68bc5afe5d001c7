-- Search rows are found by rowid now: each product keeps its search row's rowid in
-- `search_rowid`, so keeping the index in step with the catalog is an index probe. (FTS5 looks
-- rows up by rowid only; deleting by an UNINDEXED product_id scanned the whole table, which
-- made storing a large catalog quadratic.) The products' own implicit rowid is not used: a
-- VACUUM may renumber it.
DROP TABLE products_fts;
CREATE VIRTUAL TABLE products_fts USING fts5(
    sku, name, brand, category, barcodes,
    tokenize = "unicode61 remove_diacritics 2", prefix = '2 3'
);
ALTER TABLE products ADD COLUMN search_rowid INTEGER;
UPDATE products SET search_rowid = rowid;
INSERT INTO products_fts (rowid, sku, name, brand, category, barcodes)
SELECT p.search_rowid, p.sku, p.name, p.brand, p.category,
       COALESCE((SELECT group_concat(b.barcode, ' ') FROM product_barcodes b WHERE b.product_id = p.id), '')
FROM products p;
CREATE UNIQUE INDEX products_search_rowid ON products(search_rowid);
-- Ranking: SKU and name weigh most, then barcode, brand, category (ORDER BY rank uses it).
INSERT INTO products_fts (products_fts, rank) VALUES ('rank', 'bm25(4.0, 8.0, 2.0, 1.0, 4.0)');
