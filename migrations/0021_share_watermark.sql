-- Watermarked previews (issue 22 part 7): a preview-only link (`allow_download` 0) may ask for its
-- images to be served with a tiled, semi-transparent text and its PDF pages shown under the same
-- text in the viewer. A flag 0/1 like the link's other options; existing links stay unmarked.
ALTER TABLE shares ADD COLUMN watermark BIGINT NOT NULL DEFAULT 0;
