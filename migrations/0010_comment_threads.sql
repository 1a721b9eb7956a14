-- Comment pagination (issue 18 item 10): a page lists the newest threads of an asset (top-level
-- comments) and then walks their replies. This index serves both: the roots of an asset
-- (`parent_id IS NULL`, newest first) and the replies of a comment within its asset.
CREATE INDEX comments_thread ON comments (asset_id, parent_id, id);
