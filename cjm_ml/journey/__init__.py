"""The journey map: analytics on the canonical events and the HTML report built from them."""
