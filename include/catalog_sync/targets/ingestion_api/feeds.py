"""The feeds of the Catalog Data Ingestion API (contract: catalog-data-ingestion-v1.yaml).

Each feed's key is exactly the body of its delete request, so a delete needs nothing but the
key kept in the snapshot. Order matters: metadata and price books before the products and
prices that use them, categories before the products whose routes name them, products before their layers; deletes in the reverse
order (the contract deletes a price book's prices with it, and ignores a price whose book does not
exist yet). Within the categories feed, the target sends parents before children and deletes
children before parents, one level at a time (target.py), since deleting a category deletes its children.
"""

from __future__ import annotations

from catalog_sync.targets.base import FeedScope, FeedSpec, Requirement

METADATA = FeedSpec("metadata", ("code", "source.locale"), FeedScope.CATALOG)
PRICE_BOOKS = FeedSpec("price_books", ("priceBookId",), FeedScope.CATALOG)
# The contract creates categories with POST and updates them with PATCH (target.py).
CATEGORIES = FeedSpec("categories", ("slug", "source.locale"), FeedScope.CATALOG, patched=True)
PRODUCTS = FeedSpec("products", ("sku", "source.locale"), FeedScope.PRODUCT, primary=True)
# A store view sharing its locale with the locale's base view: what it changes of the base product (layers.py).
PRODUCT_LAYERS = FeedSpec("product_layers", ("sku", "source.locale", "source.layer"), FeedScope.PRODUCT)
PRICES = FeedSpec("prices", ("sku", "priceBookId"), FeedScope.PRODUCT,
                  requires=Requirement("price_books", (("priceBookId", "priceBookId"),)))

FEEDS = (METADATA, PRICE_BOOKS, CATEGORIES, PRODUCTS, PRODUCT_LAYERS, PRICES)

# feed -> (create-or-replace path, delete path)
ENDPOINTS: dict[str, tuple[str, str]] = {
    METADATA.name: ("/v1/catalog/products/metadata", "/v1/catalog/products/metadata/delete"),
    PRICE_BOOKS.name: ("/v1/catalog/price-books", "/v1/catalog/price-books/delete"),
    CATEGORIES.name: ("/v1/catalog/categories", "/v1/catalog/categories/delete"),
    PRODUCTS.name: ("/v1/catalog/products", "/v1/catalog/products/delete"),
    PRODUCT_LAYERS.name: ("/v1/catalog/products/layers", "/v1/catalog/products/layers/delete"),
    PRICES.name: ("/v1/catalog/products/prices", "/v1/catalog/products/prices/delete"),
}
